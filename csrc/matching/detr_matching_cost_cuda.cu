// CUDA kernel of detr_matching_cost: a first pass computes each query's
// softmax denominator once, a second fills the padded [B, Q, T] cost, one
// thread per entry, with the shared formula (matching/math.h). A target
// label outside [0, K) gives a NaN cost (class_logit), as on the CPU.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <limits>

#include "core/cuda_launch.h"
#include "matching/args.h"
#include "matching/math.h"

namespace vo {
namespace {

template <typename scalar_t, typename acc_t>
__global__ void softmax_stats_kernel(const scalar_t* __restrict__ logits, int64_t rows, int64_t K,
                                     acc_t* __restrict__ stats) {
  VO_CUDA_1D_KERNEL_LOOP(r, rows) {
    const SoftmaxStats<acc_t> s = softmax_stats<scalar_t, acc_t>(logits + r * K, K);
    stats[2 * r] = s.max;
    stats[2 * r + 1] = s.sum;
  }
}

template <typename scalar_t, typename acc_t>
__global__ void detr_matching_cost_kernel(const scalar_t* __restrict__ logits, const scalar_t* __restrict__ pred,
                                          const int64_t* __restrict__ labels, const scalar_t* __restrict__ targets,
                                          const int64_t* __restrict__ offsets, const acc_t* __restrict__ stats,
                                          int64_t B, int64_t Q, int64_t K, int64_t T, MatchingWeights<acc_t> w,
                                          acc_t* __restrict__ out) {
  VO_CUDA_1D_KERNEL_LOOP(e, B * Q * T) {
    const int64_t t = e % T, r = e / T, b = r / Q;
    const int64_t first = offsets[b], count = offsets[b + 1] - first;
    if (t >= count) {
      out[e] = acc_t(0);
      continue;
    }
    const int64_t ti = first + t;
    const acc_t logit = class_logit<scalar_t, acc_t>(logits + r * K, labels[ti], K);
    const Box4<acc_t> p{static_cast<acc_t>(pred[4 * r]), static_cast<acc_t>(pred[4 * r + 1]),
                        static_cast<acc_t>(pred[4 * r + 2]), static_cast<acc_t>(pred[4 * r + 3])};
    const Box4<acc_t> g{static_cast<acc_t>(targets[4 * ti]), static_cast<acc_t>(targets[4 * ti + 1]),
                        static_cast<acc_t>(targets[4 * ti + 2]), static_cast<acc_t>(targets[4 * ti + 3])};
    out[e] = matching_cost(logit, SoftmaxStats<acc_t>{stats[2 * r], stats[2 * r + 1]}, p,
                           make_box_record(p, BoxFormat::CXCYWH, false), g,
                           make_box_record(g, BoxFormat::CXCYWH, false), w);
  }
}

at::Tensor detr_matching_cost_cuda(const at::Tensor& logits, const at::Tensor& pred_boxes,
                                   const at::Tensor& target_labels, const at::Tensor& target_boxes,
                                   c10::IntArrayRef target_counts, double class_weight, double bbox_weight,
                                   double giou_weight) {
  const int64_t T = check_matching_args(logits, pred_boxes, target_labels, target_boxes, target_counts);
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t B = logits.size(0), Q = logits.size(1), K = logits.size(2);
  const at::ScalarType acc_type = logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor out = at::empty({B, Q, T}, logits.options().dtype(acc_type));
  if (out.numel() == 0) return out;
  // The offsets go from pinned memory with a non-blocking copy, ordered on
  // the stream: no host sync (a pageable source would make the copy wait
  // for the device). The caching host allocator keeps the pinned block until
  // the copy has run.
  at::Tensor offsets = at::empty({B + 1}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
  int64_t* o = offsets.data_ptr<int64_t>();
  o[0] = 0;
  for (int64_t b = 0; b < B; ++b) o[b + 1] = o[b] + target_counts[b];
  const at::Tensor dev_offsets = offsets.to(logits.device(), /*non_blocking=*/true);
  const at::Tensor labels = target_labels.to(at::kLong).contiguous();
  const at::Tensor l = logits.contiguous(), p = pred_boxes.contiguous(), tb = target_boxes.contiguous();
  at::Tensor stats = at::empty({B * Q, 2}, logits.options().dtype(acc_type));
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "detr_matching_cost", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    softmax_stats_kernel<scalar_t, acc_t><<<cuda::blocks_for(B * Q), cuda::kThreads, 0, stream>>>(
        l.const_data_ptr<scalar_t>(), B * Q, K, stats.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const MatchingWeights<acc_t> w{static_cast<acc_t>(class_weight), static_cast<acc_t>(bbox_weight),
                                   static_cast<acc_t>(giou_weight)};
    detr_matching_cost_kernel<scalar_t, acc_t><<<cuda::blocks_for(out.numel()), cuda::kThreads, 0, stream>>>(
        l.const_data_ptr<scalar_t>(), p.const_data_ptr<scalar_t>(), labels.const_data_ptr<int64_t>(),
        tb.const_data_ptr<scalar_t>(), dev_offsets.const_data_ptr<int64_t>(), stats.const_data_ptr<acc_t>(), B, Q,
        K, T, w, out.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) { m.impl("detr_matching_cost", &vo::detr_matching_cost_cuda); }
