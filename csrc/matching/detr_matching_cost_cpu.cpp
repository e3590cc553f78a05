// CPU kernel of detr_matching_cost: each image's own block [Q, T_b] of DETR's
// matching cost (matching/math.h), written into a padded [B, Q, T]
// batch. Unlike DETR's reference, which builds the [B*Q, sum T_b] matrix of
// every query against every target of the batch and throws most of it away,
// only the blocks the assignment uses are computed. (image, query) rows run
// in parallel.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "matching/args.h"
#include "matching/math.h"

namespace vo {
namespace {

at::Tensor detr_matching_cost_cpu(const at::Tensor& logits, const at::Tensor& pred_boxes,
                                  const at::Tensor& target_labels, const at::Tensor& target_boxes,
                                  c10::IntArrayRef target_counts, double class_weight, double bbox_weight,
                                  double giou_weight) {
  const int64_t T = check_matching_args(logits, pred_boxes, target_labels, target_boxes, target_counts);
  const int64_t B = logits.size(0), Q = logits.size(1), K = logits.size(2);
  const at::ScalarType acc_type = logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor out = at::zeros({B, Q, T}, logits.options().dtype(acc_type));
  if (B == 0 || Q == 0 || T == 0) return out;
  const at::Tensor labels = target_labels.to(at::kLong).contiguous();
  const int64_t* lab = labels.data_ptr<int64_t>();
  std::vector<int64_t> offsets(B + 1, 0);
  for (int64_t b = 0; b < B; ++b) offsets[b + 1] = offsets[b] + target_counts[b];
  const at::Tensor l = logits.contiguous(), p = pred_boxes.contiguous(), tb = target_boxes.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "detr_matching_cost", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* lp = l.const_data_ptr<scalar_t>();
    const scalar_t* pp = p.const_data_ptr<scalar_t>();
    const scalar_t* tp = tb.const_data_ptr<scalar_t>();
    acc_t* o = out.data_ptr<acc_t>();
    const MatchingWeights<acc_t> w{static_cast<acc_t>(class_weight), static_cast<acc_t>(bbox_weight),
                                   static_cast<acc_t>(giou_weight)};
    auto load = [](const scalar_t* b) {
      return Box4<acc_t>{static_cast<acc_t>(b[0]), static_cast<acc_t>(b[1]), static_cast<acc_t>(b[2]),
                         static_cast<acc_t>(b[3])};
    };
    at::parallel_for(0, B * Q, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / Q;
        const scalar_t* row_logits = lp + r * K;
        const SoftmaxStats<acc_t> stats = softmax_stats<scalar_t, acc_t>(row_logits, K);
        const Box4<acc_t> pred = load(pp + 4 * r);
        const BoxRecord<acc_t> pred_record = make_box_record(pred, BoxFormat::CXCYWH, false);
        acc_t* orow = o + r * T;
        for (int64_t t = offsets[b]; t < offsets[b + 1]; ++t) {
          const Box4<acc_t> target = load(tp + 4 * t);
          const BoxRecord<acc_t> target_record = make_box_record(target, BoxFormat::CXCYWH, false);
          orow[t - offsets[b]] = matching_cost(class_logit<scalar_t, acc_t>(row_logits, lab[t], K), stats, pred,
                                               pred_record, target, target_record, w);
        }
      }
    });
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) { m.impl("detr_matching_cost", &vo::detr_matching_cost_cpu); }
