// The matching cost of DETR (Carion et al. 2020, "End-to-End Object Detection
// with Transformers", section 3.1) between one query and one target, shared
// by the CPU and CUDA kernels:
//
//   class_weight * (-p(target class)) + bbox_weight * L1(boxes, cxcywh)
//     + giou_weight * (-GIoU(boxes))
//
// where p is the query's softmax probability. The softmax denominator is
// computed once per query (SoftmaxStats) and the box records once per box.
#pragma once

#include <cmath>
#include <limits>

#include "../macros.h"
#include "box.h"
#include "fast_math.h"

namespace vo {

template <typename T>
struct MatchingWeights {
  T class_weight, bbox_weight, giou_weight;
};

// max and sum(exp(l - max)) of a query's logits, in the accumulation type.
template <typename T>
struct SoftmaxStats {
  T max, sum;
};

template <typename scalar_t, typename T>
VO_HOST_DEVICE_INLINE SoftmaxStats<T> softmax_stats(const scalar_t* logits, int64_t K) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t k = 0; k < K; ++k) m = max(m, static_cast<T>(logits[k]));
  T s = T(0);
  for (int64_t k = 0; k < K; ++k) s += exp_(static_cast<T>(logits[k]) - m);
  return {m, s};
}

template <typename T>
VO_HOST_DEVICE_INLINE T matching_cost(T logit, SoftmaxStats<T> stats, const Box4<T>& pred,
                                      const BoxRecord<T>& pred_record, const Box4<T>& target,
                                      const BoxRecord<T>& target_record, MatchingWeights<T> w) {
  const T prob = exp_(logit - stats.max) / stats.sum;
  const T l1 = (std::abs(pred.x1 - target.x1) + std::abs(pred.y1 - target.y1)) +
               (std::abs(pred.x2 - target.x2) + std::abs(pred.y2 - target.y2));
  const T giou = pairwise_iou<IouVariant::GIoU>(pred_record, target_record, T(0));
  return w.bbox_weight * l1 - w.class_weight * prob - w.giou_weight * giou;
}

}  // namespace vo
