#!/usr/bin/env bash
# The tuning sweep (benchmarks/tuning_sweep.py) on a lent GPU machine, across 10-minute calls:
# the counterpart of gpu_batch.sh for the sweep. Run the same command in consecutive calls:
#   SHORTCUT_MINI_COMMIT=<sha> SHORTCUT_MINI_DIRTY=<0|1> bash benchmarks/gpu_sweep.sh WAIT_S \
#     [tuning_sweep args...]
# The first call installs the carried wheels (.carry/whl), unpacks the carried data (.carry/data),
# trains the FD classifier of Fashion-MNIST and starts the sweep in its own process session, one
# variant per GPU (all GPUs of the machine); every call then waits up to WAIT_S seconds and tars
# the records, grids, logs and the sweep table (checkpoints stay there) into $OUT.
WAIT=${1:-540}; shift 1
W=/tmp/sweep; mkdir -p $W $OUT
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
export SHORTCUT_MINI_DATA=/tmp/sweep_data SHORTCUT_MINI_CACHE=/tmp/sweep_cache
[ -f $W/rc ] && rm -f $W/started $W/rc  # a finished sweep with failures: run it again
if [ ! -f $W/started ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .carry/whl/*.whl || exit 1
  mkdir -p $SHORTCUT_MINI_DATA && cp -r .carry/data/* $SHORTCUT_MINI_DATA/
  for f in $SHORTCUT_MINI_DATA/*/raw/*.gz; do gunzip -kf "$f"; done
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch; print('torch', torch.__version__)"
    echo "commit $SHORTCUT_MINI_COMMIT dirty ${SHORTCUT_MINI_DIRTY:-unknown}"; } | tee $W/device.txt
  [ -f $W/classifier.json ] || python3 -m shortcut_mini.metrics.classifier \
    --dataset fashion_mnist --device cuda > $W/classifier.json; cat $W/classifier.json
  GPUS=$(seq -s ' ' 0 $(( $(nvidia-smi -L | wc -l) - 1 )))
  date +%s > $W/started
  setsid nohup bash -c "python3 benchmarks/tuning_sweep.py --out $W --gpus $GPUS $* \
    >> $W/sweep.log 2>&1; echo \$? > $W/rc" >/dev/null 2>&1 < /dev/null &
fi
T0=$(date +%s)
while [ ! -f $W/rc ] && [ $(( $(date +%s) - T0 )) -lt $WAIT ]; do sleep 5; done
echo "sweep: $(( $(date +%s) - $(cat $W/started) )) s since start, rc=$(cat $W/rc 2>/dev/null || echo running)"
tail -n 25 $W/sweep.log
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
(cd $W && tar czf $OUT/tuning_sweep.tgz --exclude='*.pt' --exclude='./*/cache' .)
ls -la $OUT
