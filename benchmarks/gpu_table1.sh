#!/usr/bin/env bash
# The `table1` preset on one lent GPU, in parts that run side by side (each its own runner and
# folder /tmp/batch/table1_PART, see benchmarks/gpu_batch.sh). Run the same command in
# consecutive calls on the warm machine; every call starts what has not started, waits up to
# WAIT_S seconds for all parts and returns each part's folder (records, grids, logs) in $OUT:
#   SHORTCUT_MINI_COMMIT=<sha> SHORTCUT_MINI_DIRTY=<0|1> bash benchmarks/gpu_table1.sh WAIT_S PARTS
# PARTS (default "a b c"):
#   a  flow matching seeds 0 and 1 and the three students that distil seed 0 (a teacher's folder
#      does not outlive its machine, so its students train beside it)
#   b  shortcut seeds 0 and 1, the 16,000-step shortcut row, diffusion, consistency training,
#      live reflow
#   c  the CUDA-graph check: flow matching seed 0 in torch.compile's default mode, to compare with
#      part a's (reduce-overhead) run of the same seed
#   m  MeanFlow seeds 0 and 1
#   d  part b without the 16,000-step row, plus flow matching (records of finished runs carried
#      in .carry/done/ are skipped): for a machine that has time for these runs only
WAIT=${1:-540}; PARTS=${2:-a b c}
args_of() {
  case $1 in
    a) echo --methods flow_matching consistency_distillation progressive_distillation reflow ;;
    b) echo --methods shortcut shortcut_16k diffusion consistency_training live_reflow ;;
    c) echo --methods flow_matching --seeds 0 --set compile_mode=default ;;
    m) echo --methods meanflow ;;
    d) echo --methods shortcut diffusion consistency_training live_reflow flow_matching ;;
  esac
}
for p in $PARTS; do
  [ -f /tmp/batch/table1_$p/started ] && [ ! -f /tmp/batch/table1_$p/rc ] && continue
  PART=$p bash benchmarks/gpu_batch.sh table1 0 $(args_of $p) > /tmp/batch_start_$p.log 2>&1
  tail -n 3 /tmp/batch_start_$p.log
done
T0=$(date +%s)
all_done() { for p in $PARTS; do [ -f /tmp/batch/table1_$p/rc ] || return 1; done; }
while ! all_done && [ $(( $(date +%s) - T0 )) -lt $WAIT ]; do sleep 5; done
for p in $PARTS; do
  W=/tmp/batch/table1_$p
  echo "== part $p: $(( $(date +%s) - $(cat $W/started) )) s since start, rc=$(cat $W/rc 2>/dev/null || echo running)"
  grep -E "^\[|finished|failed|Error" $W/batch.log | tail -n 8
  (cd $W && tar czf $OUT/table1_$p.tgz --exclude='*.pt' --exclude=./cache --exclude=reflow_pairs .)
done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
ls -la $OUT
