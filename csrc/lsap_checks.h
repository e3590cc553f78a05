// Argument checks of linear_sum_assignment, shared by the CPU and CUDA
// kernels (the fake kernel in visionops/_registrations.py repeats them).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "checks.h"

namespace vo {

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

}  // namespace vo
