#!/usr/bin/env bash
# Every chapter timed one at a time on a lent GPU (the setup page's table), across consecutive
# 10-minute calls on the warm machine:
#   SHORTCUT_MINI_COMMIT=<sha> SHORTCUT_MINI_DIRTY=<0|1> bash benchmarks/chapter_times.sh [WAIT_S] \
#     [PROFILES...]
# (default WAIT_S 540; PROFILES "gpu small_gpu": the large-GPU profile first, then the small one).
# The first call installs the carried wheels (.carry/whl, as benchmarks/gpu_batch.sh) and starts
# scripts/time_chapters.py in its own process session, so it outlives the call; every call then
# waits up to WAIT_S seconds and copies the record, rewritten after each chapter, and the log into
# $OUT. A record carried back as .carry/chapter_times_gpu.json is copied in first: on a fresh
# machine the script skips the chapters it already holds. Copy the final record to
# book/results/chapter_times_gpu.json and run `python scripts/chapter_costs.py` for the page.
WAIT=${1:-540}; shift
PROFILES=${*:-gpu small_gpu}
W=/tmp/chapter_times; mkdir -p $W $OUT
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
[ -f $W/rc ] && [ "$(cat $W/rc)" != 0 ] && rm -f $W/started $W/rc  # failures: run the rest again
if [ ! -f $W/started ]; then
  if ls .carry/whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
      .carry/whl/*.whl || exit 1
  fi
  python3 -m ipykernel install --user --name python3 >/dev/null 2>&1
  [ -f .carry/chapter_times_gpu.json ] && [ ! -f $W/chapter_times_gpu.json ] && \
    cp .carry/chapter_times_gpu.json $W/
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
    python3 -c "import torch; print('torch', torch.__version__)"
    echo "commit ${SHORTCUT_MINI_COMMIT:-unknown} dirty ${SHORTCUT_MINI_DIRTY:-unknown}"; } | tee $W/device.txt
  date +%s > $W/started
  setsid nohup bash -c "python3 scripts/time_chapters.py --profiles $PROFILES \
    --out $W/chapter_times_gpu.json >> $W/times.log 2>&1; echo \$? > $W/rc" >/dev/null 2>&1 < /dev/null &
fi
T0=$(date +%s)
while [ ! -f $W/rc ] && [ $(( $(date +%s) - T0 )) -lt $WAIT ]; do sleep 5; done
echo "chapter times: $(( $(date +%s) - $(cat $W/started) )) s since start, rc=$(cat $W/rc 2>/dev/null || echo running)"
tail -n 20 $W/times.log
cp $W/chapter_times_gpu.json $W/times.log $W/device.txt $OUT/ 2>/dev/null
ls -la $OUT
