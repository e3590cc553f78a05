// Arguments of the NMS family (nms, batched_nms, padded_nms, soft_nms):
// checks shared by the CPU and CUDA entry points. visionops/ops/nms.py's
// fake kernels raise the same messages.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/checks.h"
#include "core/limits.h"
#include "nms/math.h"

namespace vo {

// boxes [N, 4] (dims 2) or [B, N, 4] (dims 3), floating point; scores, and
// idxs when given, one per box: the boxes' shape without its last dimension.
inline void check_nms_inputs(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor* idxs,
                             int64_t dims, const char* op) {
  TORCH_CHECK(boxes.dim() == dims && boxes.size(-1) == 4, "visionops.", op, ": boxes must have shape ",
              dims == 2 ? "[N, 4]" : "[B, N, 4]", ", got ", shape_str(boxes));
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()), "visionops.", op,
              ": boxes must be a floating point tensor, got ", boxes.scalar_type());
  const at::IntArrayRef per_box = boxes.sizes().slice(0, dims - 1);
  TORCH_CHECK(scores.sizes() == per_box, "visionops.", op, ": scores must have shape ", per_box,
              " (one per box), got ", shape_str(scores));
  TORCH_CHECK(scores.scalar_type() == boxes.scalar_type(), "visionops.", op,
              ": scores must have the same dtype as boxes, got ", scores.scalar_type(), " and ", boxes.scalar_type());
  TORCH_CHECK(scores.device() == boxes.device(), "visionops.", op,
              ": scores must be on the same device as boxes, got ", scores.device(), " and ", boxes.device());
  if (idxs) {
    TORCH_CHECK(idxs->sizes() == per_box, "visionops.", op, ": idxs must have shape ", per_box,
                " (one per box), got ", shape_str(*idxs));
    TORCH_CHECK(at::isIntegralType(idxs->scalar_type(), /*includeBool=*/false), "visionops.", op,
                ": idxs must be an integer tensor, got ", idxs->scalar_type());
    TORCH_CHECK(idxs->device() == boxes.device(), "visionops.", op,
                ": idxs must be on the same device as boxes, got ", idxs->device(), " and ", boxes.device());
  }
}

inline void check_max_output(std::optional<int64_t> max_output, const char* op) {
  TORCH_CHECK_VALUE(!max_output || *max_output >= 0, "visionops.", op, ": max_output must be >= 0, got ",
                    max_output.value_or(0));
}

inline void check_nms_args(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor* idxs,
                           std::optional<int64_t> max_output, const char* op) {
  check_nms_inputs(boxes, scores, idxs, 2, op);
  check_max_output(max_output, op);
}

inline void check_padded_nms_args(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor* idxs,
                                  int64_t max_output) {
  check_nms_inputs(boxes, scores, idxs, 3, "padded_nms");
  check_max_output(max_output, "padded_nms");
  // The output is [B, max_output] whatever N is (for nms and batched_nms,
  // max_output only caps a result of at most N, so it needs no bound).
  check_at_most(max_output, kMaxFixedOutputs, "padded_nms", "max_output", "the fixed output size per image");
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
