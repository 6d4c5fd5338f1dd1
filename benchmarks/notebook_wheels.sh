#!/usr/bin/env bash
# Run HERE (a machine with pip and the internet), not on the device: the Jupyter stack that the
# lent GPU machine lacks (nbclient, nbformat, ipykernel and what they need; the device has no
# package index), as Python 3.12 x86-64 wheels in .carry/whl (ignored by git), for
# benchmarks/chapter_times.sh and benchmarks/gpu_batch.sh, which install them on the device:
#   bash benchmarks/notebook_wheels.sh [DEST] [EXTRA_PACKAGES...]   (DEST: .carry/whl; e.g. papermill)
# Then name .carry in the device call's carry. Packages the device's image already holds
# (/work/.library/device/KINDS.md, "Python packages already there": matplotlib, scikit-learn,
# pyyaml, pygments, psutil, ...) are left out, so that the device keeps its own versions.
set -euo pipefail
DEST=${1:-.carry/whl}; shift || true
ON_DEVICE="attrs certifi charset-normalizer idna jinja2 markupsafe packaging pygments psutil \
python-dateutil pyyaml requests six typing-extensions urllib3 matplotlib numpy pillow scikit-learn \
scipy torch tqdm rich markdown-it-py mdurl"
mkdir -p "$DEST"
platforms=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
  manylinux1_x86_64; do platforms+=" --platform $p"; done
# shellcheck disable=SC2086
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  $platforms -d "$DEST" nbclient nbformat ipykernel "$@"
for f in "$DEST"/*.whl; do
  name=$(basename "$f" | cut -d- -f1 | tr 'A-Z_.' 'a-z--')
  for have in $ON_DEVICE; do [ "$name" = "$have" ] && rm -f "$f"; done
done
ls "$DEST"
echo "$(ls "$DEST"/*.whl | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $DEST"
