#!/usr/bin/env bash
# CUDA smoke run (bench/gpu_smoke.py) for the lent GPU machine of the device tool.
#
#   bash bench/gpu_smoke.sh download   # HERE, on the CPU machine: the wheels the GPU image
#                                      # lacks, into .whl/ (ignored by git; ~15 MB, or more
#                                      # with NF4=1 for bitsandbytes)
#   bash bench/gpu_smoke.sh run        # THERE (device tool run, carry [".whl"]): installs
#                                      # the wheels into /tmp/site and runs the smoke script
#
# The GPU image has torch, transformers, accelerate, peft, safetensors, tokenizers, pandas,
# pyarrow, pyyaml, psutil (see the device notes' package list); selfguide's other runtime
# needs are carried as wheels built for CPython 3.12 (the image's python3). The project
# itself is not installed there: it runs from the copied work tree (PYTHONPATH).
# Device call (one prepared command, leave time for a rerun):
#   run(command="bash bench/gpu_smoke.sh run 2>&1 | tee $OUT/smoke.log", carry=[".whl"],
#       timeout_s=420)
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl
PKGS=(datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 nltk==3.10.4 gguf==0.19.0
      rapidfuzz==3.14.6)
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

case "${1:-run}" in
download)
  mkdir -p "$WHEELS"
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]}" -d "$WHEELS" "${PKGS[@]}"
  # rouge-score ships as an sdist only: build its pure-Python wheel here.
  python3 -m pip wheel -q --no-deps -w "$WHEELS" rouge-score==0.1.2
  if [ "${NF4:-0}" = 1 ]; then  # large: check the 64 MiB carry limit (du below)
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp "${PLATFORMS[@]}" -d "$WHEELS" bitsandbytes==0.50.2
  fi
  du -sh "$WHEELS"; ls "$WHEELS"
  ;;
run)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "$WHEELS"/*.whl
  fi
  export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
  python3 bench/gpu_smoke.py "${@:2}"
  ;;
*)
  echo "usage: bash bench/gpu_smoke.sh download|run [gpu_smoke.py options]" >&2; exit 2 ;;
esac
