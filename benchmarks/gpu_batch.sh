#!/usr/bin/env bash
# A reproduction batch on a lent GPU that outlives one 10-minute call. Run the same command in
# consecutive calls on the warm machine:
#   SHORTCUT_MINI_COMMIT=<sha> SHORTCUT_MINI_DIRTY=<0|1> [PART=a] bash benchmarks/gpu_batch.sh \
#     PRESET WAIT_S [runner args...]
# (the copy there has no repository: the records take the commit and its state from these).
# PART names one part of a preset run in its own folder (/tmp/batch/PRESET_PART), so that parts
# can run side by side (benchmarks/gpu_table1.sh). WAIT_S 0 starts the batch and returns.
# The first call installs the carried wheels (.carry/whl; without them the runner falls back to
# its python engine), unpacks the carried data (.carry/data),
# trains the FD classifier and starts `shortcut-mini reproduce PRESET` in its own process session
# (it survives the end of the call); every call then waits up to WAIT_S seconds and tars the
# finished records, notebooks, grids and logs (checkpoints stay there) into $OUT. Records carried
# back in .carry/done/ are copied in first, so the runner skips those runs on a fresh machine.
PRESET=$1; WAIT=${2:-540}; shift 2
NAME=$PRESET${PART:+_$PART}
W=/tmp/batch/$NAME; mkdir -p $W $OUT
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
# data unpacked outside the tree: a later call's copy of the tree replaces .carry/
export SHORTCUT_MINI_DATA=/tmp/batch/data SHORTCUT_MINI_CACHE=/tmp/batch/cache
[ -f $W/rc ] && rm -f $W/started $W/rc  # a finished batch with failures: run it again
if [ ! -f $W/started ]; then
  if ls .carry/whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
      .carry/whl/*.whl || exit 1
  fi
  mkdir -p /tmp/batch/data && cp -rn .carry/data/* /tmp/batch/data/
  for f in /tmp/batch/data/*/raw/*.gz; do gunzip -kf "$f"; done
  python3 -m ipykernel install --user --name python3 >/dev/null 2>&1
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch; print('torch', torch.__version__)"
    python3 -c "import papermill; print('papermill', papermill.__version__)" 2>/dev/null
    echo "commit $SHORTCUT_MINI_COMMIT dirty ${SHORTCUT_MINI_DIRTY:-unknown}"; } | tee $W/device.txt
  cp .carry/done/*.json $W/ 2>/dev/null
  data=$(python3 -c "from shortcut_mini.reproduce import PRESETS as P; print(P['$PRESET']['config']['data'])")
  [ -f $W/classifier.json ] || python3 -m shortcut_mini.metrics.classifier --dataset $data --device cuda > $W/classifier.json; cat $W/classifier.json
  echo "python3 -m shortcut_mini.cli reproduce $PRESET --out $W --no-progress $*" > $W/command.txt
  date +%s > $W/started
  setsid nohup bash -c "python3 -m shortcut_mini.cli reproduce $PRESET --out $W --no-progress $* \
    >> $W/batch.log 2>&1; echo \$? > $W/rc" >/dev/null 2>&1 < /dev/null &
fi
T0=$(date +%s)
while [ ! -f $W/rc ] && [ $(( $(date +%s) - T0 )) -lt $WAIT ]; do sleep 5; done
echo "batch: $(( $(date +%s) - $(cat $W/started) )) s since start, rc=$(cat $W/rc 2>/dev/null || echo running)"
tail -n 25 $W/batch.log
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
(cd $W && tar czf $OUT/$NAME.tgz --exclude='*.pt' --exclude=./cache --exclude=reflow_pairs .)
ls -la $OUT
