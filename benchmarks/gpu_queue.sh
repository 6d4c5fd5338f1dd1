#!/usr/bin/env bash
# Batches of benchmarks/gpu_batch.sh one after another on one lent GPU, so that no call boundary
# leaves the GPU idle and only one runner trains at a time (two runners side by side on one H200
# each ran 2-3x slower than alone: see benchmarks/results/README.md). Run the same command in
# consecutive calls on the warm machine:
#   SHORTCUT_MINI_COMMIT=<sha> SHORTCUT_MINI_DIRTY=<0|1> bash benchmarks/gpu_queue.sh WAIT_S QUEUE
# QUEUE is a file of lines "PART PRESET [runner args...]" ("-" for no part), one batch each, in
# the folder /tmp/batch/PRESET_PART. The first call starts the queue in its own process session
# (it survives the call); every call then waits up to WAIT_S seconds for the whole queue and
# returns each started batch's folder (records, grids, logs; no checkpoints) in $OUT.
# A line's arguments may hold $(...): it is evaluated when that batch starts, so a batch can take
# settings chosen from an earlier batch's records (benchmarks/meanflow_choice.py). A line
# "! NAME command..." runs the command in /tmp/batch/NAME's place (log, rc) instead of a batch,
# e.g. "! speed PYTHONPATH=. python3 benchmarks/speed.py ... --out /tmp/batch/speed/speed.json".
WAIT=${1:-540}; QUEUE=${2:?usage: gpu_queue.sh WAIT_S QUEUE_FILE}
Q=/tmp/batch_queue; mkdir -p $Q /tmp/batch $OUT
if [ ! -f $Q/started ]; then
  cp "$QUEUE" $Q/queue.txt; date +%s > $Q/started
  setsid nohup bash -c "
    while read -r part preset args; do
      [ \"\$part\" = - ] && part=
      if [ \"\$part\" = '!' ]; then
        W=/tmp/batch/\$preset; mkdir -p \$W; date +%s > \$W/started
        (eval \"\$args\") > \$W/batch.log 2>&1 < /dev/null; echo \$? > \$W/rc; continue
      fi
      args=\$(eval echo \"\$args\" < /dev/null)
      W=/tmp/batch/\$preset\${part:+_\$part}
      OUT=/tmp/batch/unused PART=\$part bash ${BATCH:-benchmarks/gpu_batch.sh} \$preset 0 \$args \
        > /tmp/batch/start_\$preset\${part:+_\$part}.log 2>&1
      [ -f \$W/started ] || continue  # it failed before its runner started: see start_*.log
      while [ ! -f \$W/rc ]; do sleep 5; done
    done < $Q/queue.txt; touch $Q/done" > $Q/queue.log 2>&1 < /dev/null &
fi
# Each started batch's folder, tarred into $OUT (written beside and renamed, so a call killed at
# its limit still brings back the last complete copy: what is under $OUT comes back even then).
collect() {
  for W in /tmp/batch/*/; do
    [ -f $W/started ] || continue
    n=$(basename $W)
    (cd $W && tar czf $OUT/.$n.tgz --exclude='*.pt' --exclude=./cache --exclude=reflow_pairs . \
      && mv $OUT/.$n.tgz $OUT/$n.tgz)
  done
}
T0=$(date +%s); LAST=$T0
while [ ! -f $Q/done ] && [ $(( $(date +%s) - T0 )) -lt $WAIT ]; do
  sleep 5
  [ $(( $(date +%s) - LAST )) -ge 60 ] && { collect; LAST=$(date +%s); }
done
echo "queue: $(( $(date +%s) - $(cat $Q/started) )) s since start$([ -f $Q/done ] && echo ', done')"
for W in /tmp/batch/*/; do
  [ -f $W/started ] || continue
  echo "== $(basename $W): $(( $(date +%s) - $(cat $W/started) )) s since start, rc=$(cat $W/rc 2>/dev/null || echo running)"
  grep -E "^\[|finished|failed|Error" $W/batch.log | tail -n 12
done
collect
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
ls -la $OUT
