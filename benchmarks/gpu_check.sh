#!/usr/bin/env bash
# The GPU check: one script for a machine with an NVIDIA GPU and torch and
# torchvision installed (nothing else of ours: no pycocotools, scipy, smp or
# MONAI, no network). Two phases, each one device call of at most 10 minutes:
#
#   bash benchmarks/gpu_check.sh build-test [out_dir]   # build for sm_90, run the CUDA tests,
#                                                       # copy the built library to out_dir/lib
#   bash benchmarks/gpu_check.sh bench [out_dir]        # benchmarks against torchvision (GPU);
#                                                       # uses the library from phase 1
#   bash benchmarks/gpu_check.sh [out_dir]              # both, one after the other
#
# Carrying the library from the first call to the second: the first leaves
# visionops/_C*.so in the tree and a copy in out_dir/lib; on a fresh machine,
# put that copy back in visionops/ (an ignored path) and pass it to the
# device call with carry. The bench phase refuses a library without CUDA.
# The log and the JSON results go into $OUT (or out_dir). Sized for an H100
# or H200: phase 1 about 4 minutes (the build is most of it), phase 2 about 5.
set -uo pipefail
cd "$(dirname "$0")/.."
phase="all"
case "${1:-}" in
  build-test|bench|all) phase="$1"; shift ;;
esac
out="${1:-${OUT:-results/gpu_check}}"
mkdir -p "$out"
exec > >(tee -a "$out/gpu_check_${phase}.log") 2>&1
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Tests whose reference package is missing skip there instead of failing;
# the CUDA tests need only torch (and torchvision for parity).
export VISIONOPS_ALLOW_MISSING_REFERENCES=1
status=0

step() { echo; echo "== $* ($(date +%T))"; }

step "environment ($phase)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
"$PY" -c "import torchvision; print('torchvision', torchvision.__version__)" || true

has_cuda_library() {
  "$PY" -c "import visionops, sys; sys.exit(0 if visionops.WITH_CUDA else 1)" 2>/dev/null
}

build_and_test() {
  step "build (CUDA kernels for sm_90)"
  export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
  export MAX_JOBS="${MAX_JOBS:-16}"
  if ! VISIONOPS_CUDA=1 "$PY" setup.py build_ext --inplace > "$out/build.log" 2>&1; then
    tail -50 "$out/build.log"
    echo "gpu_check: BUILD FAILED"
    exit 1
  fi
  grep "visionops: building" "$out/build.log"
  mkdir -p "$out/lib" && cp visionops/_C*.so "$out/lib/"

  step "CUDA tests"
  # Every test with a CUDA case: the parametrized device cases, and the
  # CUDA-only tests (named cuda, or marked requires_cuda).
  "$PY" -m pytest tests -q -k "cuda" -p no:cacheprovider --junitxml="$out/cuda_tests.xml" || status=1
}

benchmarks() {
  if ! has_cuda_library; then
    echo "gpu_check: visionops has no CUDA kernels here; run the build-test phase first (or carry its library)"
    exit 1
  fi
  step "GPU benchmarks against torchvision"
  for dtype in float32 float16; do
    "$PY" -m visionops.bench boxes --device cuda --dtype "$dtype" --sizes 1000,4000,10000 --elements 1000000 \
      --min-run-time 0.2 --json "$out/bench_boxes_cuda_${dtype}.json" || status=1
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
  # nms and batched_nms, padded_nms (batch of 16) and soft_nms, float32.
  "$PY" -m visionops.bench nms --device cuda --sizes 1000,20000 --min-run-time 0.2 \
    --json "$out/bench_nms_cuda.json" || status=1
  "$PY" -m visionops.bench hungarian --device cuda --min-run-time 0.2 --json "$out/bench_hungarian_cuda.json" || status=1
  "$PY" -m visionops.bench nms-profile --device cuda --sizes 1000,10000,100000 --classes 1,80 \
    --layouts uniform,clustered --min-run-time 0.2 --json "$out/nms_profile_cuda.json" \
    --png "$out/nms_profile_cuda.png" || status=1
}

if [ "$phase" = "build-test" ] || [ "$phase" = "all" ]; then build_and_test; fi
if [ "$phase" = "bench" ] || [ "$phase" = "all" ]; then benchmarks; fi

step "done: $phase, status $status"
exit $status
