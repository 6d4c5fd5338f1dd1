#!/usr/bin/env bash
# Every chapter timed one at a time on a lent GPU (the setup page's table), across consecutive
# 10-minute calls on the warm machine.
#
# The next GPU session, step by step:
#   1. Here, once (the device has no Jupyter stack and no package index):
#        bash benchmarks/notebook_wheels.sh          # 31 wheels, about 15 MB, into .carry/whl
#   2. On the device (the run tool, carry [".carry/whl"]; SHA: `git rev-parse HEAD`, committed):
#        SHORTCUT_MINI_COMMIT=SHA SHORTCUT_MINI_DIRTY=0 bash benchmarks/chapter_times.sh 540 gpu
#      then the same command again (same machine, still warm) until it prints rc=0; each call
#      returns after at most 540 s with the record so far in $OUT. Then the same with small_gpu.
#   3. Here: copy the fetched chapter_times_gpu.json to book/results/ and run
#      `python scripts/chapter_costs.py` for the page. On the same warm machine, small_gpu's runs
#      join gpu's in one record; on a fresh one, copy the fetched record to
#      .carry/chapter_times_gpu.json and carry it too.
# Expected duration (device time): the sum of the chapters' modelled H200 times in
# book/results/chapter_flops.json (21 s each plus the counted operators at the seconds per
# operator measured when seven chapters ran at once on one H200: 17.5 us for the 2D chapters,
# 25.6 for chapter 5; scripts/flop_count.py), an upper bound for one chapter at a time: `gpu`
# at most 758 s (12.6 min, 2 calls of 540 s) for the eight chapters, `small_gpu` at most 1,574 s
# (26 min, 3 calls), plus a minute or two to start the machine. Both do not fit one session's
# 30 minutes unless the chapters run faster alone than together: time `gpu` first, and
# `small_gpu` with what is left (the script resumes where a call stopped).
#
#   SHORTCUT_MINI_COMMIT=<sha> SHORTCUT_MINI_DIRTY=<0|1> bash benchmarks/chapter_times.sh [WAIT_S] \
#     [PROFILES...]
# (default WAIT_S 540; PROFILES "gpu small_gpu": the large-GPU profile first, then the small one;
# CHAPTERS="01_flow_matching_2d ..." in the environment times only those).
# The first call installs the carried wheels (.carry/whl) into /tmp/site, checks that the
# notebook stack imports, and starts scripts/time_chapters.py in its own process session, so it
# outlives the call; every call then waits up to WAIT_S seconds and copies the record, rewritten
# after each chapter, and the log into $OUT. A record carried back as .carry/chapter_times_gpu.json
# is copied in first: on a fresh machine the script skips the chapters it already holds.
WAIT=${1:-540}; shift
PROFILES=${*:-gpu small_gpu}
W=/tmp/chapter_times; mkdir -p $W ${OUT:?"run on the device (\$OUT is its output folder)"}
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
[ -f $W/rc ] && [ "$(cat $W/rc)" != 0 ] && rm -f $W/started $W/rc  # failures: run the rest again
ASKED="$PROFILES | ${CHAPTERS:-all}"
[ -f $W/rc ] && [ "$(cat $W/asked 2>/dev/null)" != "$ASKED" ] && rm -f $W/started $W/rc  # new ask
if [ ! -f $W/started ]; then
  if ls .carry/whl/*.whl >/dev/null 2>&1 && [ ! -d /tmp/site ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
      .carry/whl/*.whl || exit 1
  fi
  if ! python3 -c "import nbclient, nbformat, ipykernel, matplotlib, sklearn" 2>$W/import.err; then
    cat $W/import.err
    echo "the notebook stack does not import here: run 'bash benchmarks/notebook_wheels.sh' on" \
      "the development machine and name .carry/whl in the call's carry" | tee -a $W/import.err
    cp $W/import.err $OUT/; exit 1
  fi
  python3 -m ipykernel install --user --name python3 >/dev/null || exit 1
  [ -f .carry/chapter_times_gpu.json ] && [ ! -f $W/chapter_times_gpu.json ] && \
    cp .carry/chapter_times_gpu.json $W/
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
    python3 -c "import torch; print('torch', torch.__version__)"
    echo "commit ${SHORTCUT_MINI_COMMIT:-unknown} dirty ${SHORTCUT_MINI_DIRTY:-unknown}"; } | tee $W/device.txt
  date +%s > $W/started; echo "$ASKED" > $W/asked
  setsid nohup bash -c "python3 scripts/time_chapters.py --profiles $PROFILES \
    ${CHAPTERS:+--chapters $CHAPTERS} --out $W/chapter_times_gpu.json >> $W/times.log 2>&1; echo \$? > $W/rc" >/dev/null 2>&1 < /dev/null &
fi
T0=$(date +%s)
while [ ! -f $W/rc ] && [ $(( $(date +%s) - T0 )) -lt $WAIT ]; do sleep 5; done
echo "chapter times: $(( $(date +%s) - $(cat $W/started) )) s since start, rc=$(cat $W/rc 2>/dev/null || echo running)"
tail -n 20 $W/times.log
cp $W/chapter_times_gpu.json $W/times.log $W/device.txt $OUT/ 2>/dev/null
ls -la $OUT
