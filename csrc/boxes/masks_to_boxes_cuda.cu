// CUDA kernel of masks_to_boxes: one block per mask; each thread scans a
// strided share of its pixels and the block combines minima and maxima in
// shared memory (order-independent, so deterministic). Empty masks give
// (0, 0, 0, 0), as on the CPU.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <limits>

#include "boxes/args.h"
#include "core/cuda_launch.h"

namespace vo {
namespace {

template <typename scalar_t>
__global__ void masks_to_boxes_kernel(const scalar_t* __restrict__ masks, int64_t H, int64_t W,
                                      float* __restrict__ out) {
  __shared__ long long ext[4];  // x1, y1, -x2, -y2 as minima
  if (threadIdx.x < 4) ext[threadIdx.x] = std::numeric_limits<long long>::max();
  __syncthreads();
  const int64_t n = blockIdx.x;
  const scalar_t* m = masks + n * H * W;
  long long x1 = std::numeric_limits<long long>::max(), y1 = x1, nx2 = x1, ny2 = x1;
  for (int64_t i = threadIdx.x; i < H * W; i += blockDim.x) {
    if (!(m[i] != scalar_t(0))) continue;
    const long long y = i / W, x = i % W;
    x1 = x < x1 ? x : x1;
    y1 = y < y1 ? y : y1;
    nx2 = -x < nx2 ? -x : nx2;
    ny2 = -y < ny2 ? -y : ny2;
  }
  atomicMin(&ext[0], x1);
  atomicMin(&ext[1], y1);
  atomicMin(&ext[2], nx2);
  atomicMin(&ext[3], ny2);
  __syncthreads();
  if (threadIdx.x == 0) {
    const bool empty = ext[0] == std::numeric_limits<long long>::max();
    out[4 * n] = empty ? 0.0f : static_cast<float>(ext[0]);
    out[4 * n + 1] = empty ? 0.0f : static_cast<float>(ext[1]);
    out[4 * n + 2] = empty ? 0.0f : static_cast<float>(-ext[2]);
    out[4 * n + 3] = empty ? 0.0f : static_cast<float>(-ext[3]);
  }
}

at::Tensor masks_to_boxes_cuda(const at::Tensor& masks) {
  constexpr const char* op = "masks_to_boxes";
  check_masks_to_boxes_args(masks, op);
  const c10::cuda::CUDAGuard guard(masks.device());
  const int64_t N = masks.size(0), H = masks.size(1), W = masks.size(2);
  at::Tensor out = at::zeros({N, 4}, masks.options().dtype(at::kFloat));
  if (N == 0 || H == 0 || W == 0) return out;
  TORCH_CHECK(N <= std::numeric_limits<int32_t>::max(), "visionops.", op, ": too many masks, got ", N);
  const at::Tensor m = masks.contiguous();
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, m.scalar_type(), "masks_to_boxes", [&] {
    masks_to_boxes_kernel<scalar_t><<<static_cast<unsigned int>(N), 512, 0, at::cuda::getCurrentCUDAStream()>>>(
        m.const_data_ptr<scalar_t>(), H, W, out.mutable_data_ptr<float>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) { m.impl("masks_to_boxes", &vo::masks_to_boxes_cuda); }
