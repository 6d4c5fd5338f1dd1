#!/usr/bin/env bash
# GPU call: the fashion_mnist preset, 2 methods x 2 seeds, run as 4 concurrent runner processes
# on one GPU (the machine's GPU time was short), then aggregated. Usage on the device machine:
#   bash benchmarks/gpu_reproduce.sh STEPS EVAL_N TIMEOUT_S      (results tarred into $OUT)
STEPS=${1:-8000}; EVAL_N=${2:-5000}; TMO=${3:-600}
W=/tmp/fm; mkdir -p $W $OUT
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .carry/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
export SHORTCUT_MINI_DATA=$PWD/.carry/data SHORTCUT_MINI_CACHE=$W/cache
gunzip -kf .carry/data/FashionMNIST/raw/*.gz
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > $W/gpu.txt
python3 -m ipykernel install --user --name python3 >/dev/null 2>&1
ENGINE=papermill
python3 - <<'PY' || ENGINE=python
import nbformat, papermill
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1 + 1")])
nbformat.write(nb, "/tmp/t.ipynb"); papermill.execute_notebook("/tmp/t.ipynb", "/tmp/t_out.ipynb", kernel_name="python3", progress_bar=False)
PY
echo "engine: $ENGINE" | tee -a $W/gpu.txt
python3 -m shortcut_mini.metrics.classifier --dataset fashion_mnist --device cuda | tee $W/classifier.json
T0=$(date +%s)
for m in flow_matching shortcut; do for s in 0 1; do
  timeout $TMO python3 -m shortcut_mini.cli reproduce fashion_mnist --methods $m --seeds $s --out $W \
    --set steps=$STEPS --set compile=false --eval-set n=$EVAL_N --engine $ENGINE --no-progress \
    > $W/log_${m}_$s.txt 2>&1 &
done; done
wait
echo "batch wall: $(( $(date +%s) - T0 )) s" | tee -a $W/gpu.txt
tail -3 $W/log_*.txt
cat $W/summary.md
cd $W && tar czf $OUT/fashion_mnist.tgz --exclude=runs --exclude=cache . ; ls -la $OUT
