#!/usr/bin/env bash
# The GPU check: one script for a machine with an NVIDIA GPU. It builds
# visionops against the torch installed there (no network needed), runs the
# CUDA tests, and benchmarks visionops against torchvision on the GPU. The log
# and the JSON results go into $OUT (or the folder given as $1).
#
#   bash benchmarks/gpu_check.sh [out_dir]
#
# Sized to finish well under 8 minutes on an H200 (the build is most of it).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-results/gpu_check}}"
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# The GPU image has torch and torchvision only: tests whose reference package
# (pycocotools, scipy, smp, MONAI) is missing skip there instead of failing.
export VISIONOPS_ALLOW_MISSING_REFERENCES=1
status=0

step() { echo; echo "== $* ($(date +%T))"; }

step "environment"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
"$PY" -c "import torchvision; print('torchvision', torchvision.__version__)" || true

step "build (CUDA kernels for sm_90)"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-16}"
if ! VISIONOPS_CUDA=1 "$PY" setup.py build_ext --inplace > "$out/build.log" 2>&1; then
  tail -50 "$out/build.log"
  echo "gpu_check: BUILD FAILED"
  exit 1
fi
grep "visionops: building" "$out/build.log"

step "CUDA tests"
"$PY" -m pytest tests -q -k "cuda" -p no:cacheprovider --junitxml="$out/cuda_tests.xml" || status=1

step "GPU benchmarks against torchvision"
for dtype in float32 float16; do
  "$PY" -m visionops.bench boxes --device cuda --dtype "$dtype" --sizes 1000,4000,10000 --elements 1000000 \
    --min-run-time 0.2 --json "$out/bench_boxes_cuda_${dtype}.json" || status=1
done
for dtype in float32 float16; do
  "$PY" -m visionops.bench roi --device cuda --dtype "$dtype" --min-run-time 0.2 \
    --json "$out/bench_roi_cuda_${dtype}.json" || status=1
  "$PY" -m visionops.bench coding --device cuda --dtype "$dtype" --sizes 200000,2000000 --min-run-time 0.2 \
    --json "$out/bench_coding_cuda_${dtype}.json" || status=1
  "$PY" -m visionops.bench losses --device cuda --dtype "$dtype" --sizes 20000,100000 --min-run-time 0.2 \
    --json "$out/bench_losses_cuda_${dtype}.json" || status=1
  "$PY" -m visionops.bench dice --device cuda --dtype "$dtype" --min-run-time 0.2 \
    --json "$out/bench_dice_cuda_${dtype}.json" || status=1
  "$PY" -m visionops.bench yolo --device cuda --dtype "$dtype" --min-run-time 0.2 \
    --json "$out/bench_yolo_cuda_${dtype}.json" || status=1
done
"$PY" -m visionops.bench hungarian --device cuda --min-run-time 0.2 --json "$out/bench_hungarian_cuda.json" || status=1
"$PY" -m visionops.bench nms-profile --device cuda --sizes 1000,10000,100000 --classes 1,80 --layouts uniform,clustered \
  --min-run-time 0.2 --json "$out/nms_profile_cuda.json" --png "$out/nms_profile_cuda.png" || status=1

step "done: status $status"
exit $status
