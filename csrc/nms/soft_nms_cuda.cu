// CUDA kernel of soft_nms: one block walks the picks (soft-NMS is
// sequential), each pick a block-wide argmax (ties to the lowest index, as on
// the CPU) and a parallel decay of every box still in play. Weight and IoU
// are nms/math.h's. The number picked is read back to size the result.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <string_view>
#include <tuple>

#include "core/checks.h"
#include "core/cuda_launch.h"
#include "core/dtypes.h"
#include "nms/args.h"
#include "nms/math.h"

namespace vo {
namespace {

constexpr int kSoftThreads = 1024;

template <typename scalar_t, typename T>
__global__ void soft_nms_prepare_kernel(const scalar_t* __restrict__ boxes, const scalar_t* __restrict__ scores,
                                        int64_t n, double score_threshold, NmsBox<T>* __restrict__ box,
                                        T* __restrict__ score, uint8_t* __restrict__ alive) {
  VO_CUDA_1D_KERNEL_LOOP(i, n) {
    const scalar_t* q = boxes + 4 * i;
    box[i] = make_nms_box<T>(static_cast<T>(q[0]), static_cast<T>(q[1]), static_cast<T>(q[2]), static_cast<T>(q[3]));
    score[i] = static_cast<T>(scores[i]);
    alive[i] = static_cast<double>(score[i]) >= score_threshold;  // NaN: false
  }
}

template <typename T>
__global__ void soft_nms_kernel(const NmsBox<T>* __restrict__ box, T* __restrict__ score, uint8_t* __restrict__ alive,
                                int64_t n, SoftNmsMethod method, T iou_threshold, T sigma, double score_threshold,
                                int64_t* __restrict__ picked, T* __restrict__ picked_score, int64_t* __restrict__ count) {
  __shared__ T best_score[kSoftThreads];
  __shared__ int64_t best_index[kSoftThreads];
  const int tid = threadIdx.x;
  int64_t k = 0;
  while (true) {
    T bs = T(0);
    int64_t bi = -1;
    for (int64_t i = tid; i < n; i += blockDim.x) {
      if (alive[i] && (bi < 0 || score[i] > bs)) {  // ascending i: the first maximum wins
        bs = score[i];
        bi = i;
      }
    }
    best_score[tid] = bs;
    best_index[tid] = bi;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (tid < stride) {
        const int64_t oi = best_index[tid + stride];
        const T os = best_score[tid + stride];
        const int64_t mi = best_index[tid];
        if (oi >= 0 && (mi < 0 || os > best_score[tid] || (os == best_score[tid] && oi < mi))) {
          best_score[tid] = os;
          best_index[tid] = oi;
        }
      }
      __syncthreads();
    }
    const int64_t top_index = best_index[0];
    if (top_index < 0) break;
    const NmsBox<T> top = box[top_index];
    if (tid == 0) {
      picked[k] = top_index;
      picked_score[k] = best_score[0];
      alive[top_index] = 0;
    }
    __syncthreads();
    for (int64_t i = tid; i < n; i += blockDim.x) {
      if (!alive[i]) continue;
      const T s = score[i] * soft_nms_weight(nms_iou(top, box[i]), method, iou_threshold, sigma);
      if (static_cast<double>(s) >= score_threshold) {
        score[i] = s;
      } else {
        alive[i] = 0;
      }
    }
    ++k;
    __syncthreads();
  }
  if (tid == 0) *count = k;
}

std::tuple<at::Tensor, at::Tensor> soft_nms_cuda(const at::Tensor& boxes, const at::Tensor& scores,
                                                 double iou_threshold, double sigma, double score_threshold,
                                                 std::string_view method) {
  const SoftNmsMethod m = check_soft_nms_args(boxes, scores, sigma, method);
  const c10::cuda::CUDAGuard guard(boxes.device());
  const auto opts = boxes.options();
  const int64_t n = boxes.size(0);
  if (n == 0) return {at::empty({0}, opts.dtype(at::kLong)), at::empty({0}, scores.options())};
  std::tuple<at::Tensor, at::Tensor> out;
  VO_DISPATCH_FLOAT_BOX_TYPES(boxes.scalar_type(), "soft_nms", [&] {
    using T = box_acc_t<scalar_t>;
    const auto acc = opts.dtype(c10::CppTypeToScalarType<T>::value);
    at::Tensor box = at::empty({n, 5}, acc);
    at::Tensor score = at::empty({n}, acc);
    at::Tensor alive = at::empty({n}, opts.dtype(at::kByte));
    at::Tensor picked = at::empty({n}, opts.dtype(at::kLong));
    at::Tensor picked_score = at::empty({n}, acc);
    at::Tensor count = at::empty({1}, opts.dtype(at::kLong));
    const auto stream = at::cuda::getCurrentCUDAStream();
    auto* bp = reinterpret_cast<NmsBox<T>*>(box.data_ptr<T>());
    soft_nms_prepare_kernel<scalar_t, T><<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(
        boxes.contiguous().data_ptr<scalar_t>(), scores.contiguous().data_ptr<scalar_t>(), n, score_threshold, bp,
        score.data_ptr<T>(), alive.data_ptr<uint8_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    soft_nms_kernel<T><<<1, kSoftThreads, 0, stream>>>(bp, score.data_ptr<T>(), alive.data_ptr<uint8_t>(), n, m,
                                                      static_cast<T>(iou_threshold), static_cast<T>(sigma),
                                                      score_threshold, picked.data_ptr<int64_t>(),
                                                      picked_score.data_ptr<T>(), count.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const int64_t K = count.item<int64_t>();
    out = {picked.slice(0, 0, K), picked_score.slice(0, 0, K).to(scores.scalar_type())};
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("soft_nms", &vo::soft_nms_cuda);
}
