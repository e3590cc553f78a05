// Check helpers shared by every family's args.h. Every message names the op,
// the argument and what was expected; the Python fake kernels raise the same
// text through visionops/_checks.py (tests/test_errors.py keeps the two in
// step).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string>
#include <string_view>

namespace vo {

// "[10, 5]" rather than ATen's "[10, 5]"-or-"(10, 5)" depending on the type.
inline std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d) s += ", ";
    s += std::to_string(t.size(d));
  }
  return s + "]";
}

// boxes of shape [..., 4] with at least min_dim dimensions.
inline void check_boxes(const at::Tensor& t, const char* op, const char* arg, int64_t min_dim,
                        const char* expected) {
  TORCH_CHECK(t.dim() >= min_dim && t.size(-1) == 4, "visionops.", op, ": ", arg, " must have shape ", expected,
              ", got ", shape_str(t));
  TORCH_CHECK(at::isFloatingType(t.scalar_type()) || at::isIntegralType(t.scalar_type(), /*includeBool=*/false),
              "visionops.", op, ": ", arg, " must be a floating point or integer tensor, got ", t.scalar_type());
}

inline void check_same_dtype_device(const at::Tensor& a, const at::Tensor& b, const char* op, const char* name_a,
                                    const char* name_b) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "visionops.", op, ": ", name_a, " and ", name_b,
              " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(a.device() == b.device(), "visionops.", op, ": ", name_a, " and ", name_b,
              " must be on the same device, got ", a.device(), " and ", b.device());
}

enum class Reduction : int { None = 0, Mean = 1, Sum = 2 };

inline Reduction parse_reduction(std::string_view reduction, const char* op) {
  if (reduction == "none") return Reduction::None;
  if (reduction == "mean") return Reduction::Mean;
  if (reduction == "sum") return Reduction::Sum;
  // "Invalid", as torchvision's message has it: code that checks the error
  // matches that word.
  TORCH_CHECK_VALUE(false, "visionops.", op, ": Invalid reduction '", std::string(reduction),
                    "': must be one of 'none', 'mean', 'sum'");
}

// The upstream gradient of a backward op must be on its inputs' device (a
// kernel would otherwise read another device's memory).
inline void check_grad_device(const at::Tensor& grad, const at::Tensor& like, const char* op) {
  TORCH_CHECK(grad.device() == like.device(), "visionops.", op, ": grad must be on ", like.device(), ", got ",
              grad.device());
}

}  // namespace vo
