// Argument checks of the NMS ops, shared by the CPU and CUDA kernels (and
// mirrored in visionops/_registrations.py).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <string_view>

#include "checks.h"
#include "common/nms.h"

namespace vo {

inline void check_nms_args(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor* idxs,
                           std::optional<int64_t> max_output, const char* op) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "visionops.", op, ": boxes must have shape [N, 4], got ",
              shape_str(boxes));
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()), "visionops.", op,
              ": boxes must be a floating point tensor, got ", boxes.scalar_type());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0), "visionops.", op, ": scores must have shape [",
              boxes.size(0), "] (one per box), got ", shape_str(scores));
  TORCH_CHECK(scores.scalar_type() == boxes.scalar_type(), "visionops.", op,
              ": scores must have the same dtype as boxes, got ", scores.scalar_type(), " and ", boxes.scalar_type());
  TORCH_CHECK(scores.device() == boxes.device(), "visionops.", op,
              ": scores must be on the same device as boxes, got ", scores.device(), " and ", boxes.device());
  if (idxs) {
    TORCH_CHECK(idxs->dim() == 1 && idxs->size(0) == boxes.size(0), "visionops.", op, ": idxs must have shape [",
                boxes.size(0), "] (one per box), got ", shape_str(*idxs));
    TORCH_CHECK(at::isIntegralType(idxs->scalar_type(), /*includeBool=*/false), "visionops.", op,
                ": idxs must be an integer tensor, got ", idxs->scalar_type());
    TORCH_CHECK(idxs->device() == boxes.device(), "visionops.", op,
                ": idxs must be on the same device as boxes, got ", idxs->device(), " and ", boxes.device());
  }
  TORCH_CHECK_VALUE(!max_output || *max_output >= 0, "visionops.", op, ": max_output must be >= 0, got ",
                    max_output.value_or(0));
}

inline void check_padded_nms_args(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor* idxs,
                                  int64_t max_output) {
  constexpr const char* op = "padded_nms";
  TORCH_CHECK(boxes.dim() == 3 && boxes.size(2) == 4, "visionops.", op, ": boxes must have shape [B, N, 4], got ",
              shape_str(boxes));
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()), "visionops.", op,
              ": boxes must be a floating point tensor, got ", boxes.scalar_type());
  TORCH_CHECK(scores.dim() == 2 && scores.size(0) == boxes.size(0) && scores.size(1) == boxes.size(1), "visionops.",
              op, ": scores must have shape [", boxes.size(0), ", ", boxes.size(1), "] (one per box), got ",
              shape_str(scores));
  TORCH_CHECK(scores.scalar_type() == boxes.scalar_type(), "visionops.", op,
              ": scores must have the same dtype as boxes, got ", scores.scalar_type(), " and ", boxes.scalar_type());
  TORCH_CHECK(scores.device() == boxes.device(), "visionops.", op,
              ": scores must be on the same device as boxes, got ", scores.device(), " and ", boxes.device());
  if (idxs) {
    TORCH_CHECK(idxs->dim() == 2 && idxs->size(0) == boxes.size(0) && idxs->size(1) == boxes.size(1), "visionops.",
                op, ": idxs must have shape [", boxes.size(0), ", ", boxes.size(1), "] (one per box), got ",
                shape_str(*idxs));
    TORCH_CHECK(at::isIntegralType(idxs->scalar_type(), /*includeBool=*/false), "visionops.", op,
                ": idxs must be an integer tensor, got ", idxs->scalar_type());
    TORCH_CHECK(idxs->device() == boxes.device(), "visionops.", op,
                ": idxs must be on the same device as boxes, got ", idxs->device(), " and ", boxes.device());
  }
  TORCH_CHECK_VALUE(max_output >= 0, "visionops.", op, ": max_output must be >= 0, got ", max_output);
}

inline SoftNmsMethod check_soft_nms_args(const at::Tensor& boxes, const at::Tensor& scores, double sigma,
                                         std::string_view method) {
  check_nms_args(boxes, scores, nullptr, std::nullopt, "soft_nms");
  SoftNmsMethod m = SoftNmsMethod::Linear;
  if (method == "gaussian") {
    m = SoftNmsMethod::Gaussian;
  } else {
    TORCH_CHECK_VALUE(method == "linear", "visionops.soft_nms: method must be 'linear' or 'gaussian', got '",
                      std::string(method), "'");
  }
  TORCH_CHECK_VALUE(m != SoftNmsMethod::Gaussian || sigma > 0, "visionops.soft_nms: sigma must be > 0, got ", sigma);
  return m;
}

}  // namespace vo
