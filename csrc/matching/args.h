// Arguments of the matching family (linear_sum_assignment,
// detr_matching_cost): checks shared by the CPU and CUDA entry points.
// visionops/ops/matching.py's fake kernels raise the same messages.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <optional>

#include "core/checks.h"

namespace vo {

// ---- linear_sum_assignment

inline void check_lsap_args(const at::Tensor& cost, const std::optional<at::Tensor>& row_counts,
                            const std::optional<at::Tensor>& col_counts) {
  constexpr const char* op = "linear_sum_assignment";
  TORCH_CHECK_VALUE(cost.dim() == 3, "visionops.", op, ": cost must have shape [B, R, C], got ", shape_str(cost));
  TORCH_CHECK(at::isFloatingType(cost.scalar_type()) || at::isIntegralType(cost.scalar_type(), false), "visionops.",
              op, ": cost must be a floating point or integer tensor, got ", cost.scalar_type());
  const std::pair<const std::optional<at::Tensor>*, const char*> counts[] = {{&row_counts, "row_counts"},
                                                                             {&col_counts, "col_counts"}};
  for (const auto& [t, name] : counts) {
    if (!t->has_value()) continue;
    const at::Tensor& c = t->value();
    TORCH_CHECK_VALUE(c.dim() == 1 && c.size(0) == cost.size(0), "visionops.", op, ": ", name,
                      " must have shape [B] = [", cost.size(0), "], got ", shape_str(c));
    TORCH_CHECK(c.scalar_type() == at::kLong || c.scalar_type() == at::kInt, "visionops.", op, ": ", name,
                " must be an int64 or int32 tensor, got ", c.scalar_type());
    TORCH_CHECK(c.device() == cost.device(), "visionops.", op, ": ", name, " and cost must be on the same device, got ",
                c.device(), " and ", cost.device());
  }
}

// ---- detr_matching_cost

// Returns the largest target count (the cost matrices' column count).
inline int64_t check_matching_args(const at::Tensor& logits, const at::Tensor& pred_boxes,
                                   const at::Tensor& target_labels, const at::Tensor& target_boxes,
                                   c10::IntArrayRef target_counts) {
  constexpr const char* op = "detr_matching_cost";
  TORCH_CHECK(logits.dim() == 3 && logits.size(2) > 0, "visionops.", op,
              ": logits must have shape [B, Q, K] with K >= 1, got ", shape_str(logits));
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()), "visionops.", op,
              ": logits must be a floating point tensor, got ", logits.scalar_type());
  TORCH_CHECK(pred_boxes.dim() == 3 && pred_boxes.size(0) == logits.size(0) && pred_boxes.size(1) == logits.size(1) &&
                  pred_boxes.size(2) == 4,
              "visionops.", op, ": pred_boxes must have shape [B, Q, 4] = [", logits.size(0), ", ", logits.size(1),
              ", 4], got ", shape_str(pred_boxes));
  check_same_dtype_device(logits, pred_boxes, op, "logits", "pred_boxes");
  TORCH_CHECK(target_boxes.dim() == 2 && target_boxes.size(1) == 4, "visionops.", op,
              ": target_boxes must have shape [T, 4], got ", shape_str(target_boxes));
  check_same_dtype_device(logits, target_boxes, op, "logits", "target_boxes");
  TORCH_CHECK(target_labels.dim() == 1 && target_labels.size(0) == target_boxes.size(0), "visionops.", op,
              ": target_labels must have shape [T] = [", target_boxes.size(0), "], got ", shape_str(target_labels));
  TORCH_CHECK(target_labels.scalar_type() == at::kLong || target_labels.scalar_type() == at::kInt, "visionops.", op,
              ": target_labels must be an int64 or int32 tensor, got ", target_labels.scalar_type());
  TORCH_CHECK(target_labels.device() == logits.device(), "visionops.", op,
              ": target_labels and logits must be on the same device, got ", target_labels.device(), " and ",
              logits.device());
  TORCH_CHECK(static_cast<int64_t>(target_counts.size()) == logits.size(0), "visionops.", op,
              ": target_counts must have one count per image (", logits.size(0), "), got ", target_counts.size());
  int64_t total = 0, most = 0;
  for (const int64_t c : target_counts) {
    TORCH_CHECK(c >= 0, "visionops.", op, ": target_counts must be non-negative, got ", c);
    total += c;
    most = std::max(most, c);
  }
  TORCH_CHECK(total == target_boxes.size(0), "visionops.", op, ": target_counts must sum to the number of targets (",
              target_boxes.size(0), "), got ", total);
  return most;
}

}  // namespace vo
