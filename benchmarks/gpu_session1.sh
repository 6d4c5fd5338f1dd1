#!/usr/bin/env bash
# GPU call 1: classifier accuracies (issue 3) and training throughput (the book's design notes).
# Usage on the device machine: bash benchmarks/gpu_session1.sh OUTDIR   (data carried in .carry/data)
set -x
OUT=${1:-/tmp/out}; mkdir -p $OUT
export SHORTCUT_MINI_DATA=$PWD/.carry/data SHORTCUT_MINI_CACHE=$OUT/cache PYTHONUNBUFFERED=1
gunzip -kf .carry/data/MNIST/raw/*.gz .carry/data/FashionMNIST/raw/*.gz
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
python -c "import torch; print(torch.__version__)" | tee -a $OUT/gpu.txt
for d in mnist fashion_mnist; do
  python -m shortcut_mini.metrics.classifier --dataset $d --device cuda | tee -a $OUT/classifier.jsonl
done
python benchmarks/train_throughput.py --model dit-mini --shape 1 28 28 --batch 256 | tee $OUT/throughput.jsonl
