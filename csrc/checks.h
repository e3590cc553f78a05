// Argument checks shared by the CPU and CUDA kernels. Every message names the
// op, the argument and what was expected, and the Python fake kernels in
// visionops/_registrations.py raise the same text (tests/test_errors.py keeps
// the two in step).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string>
#include <string_view>

#include "common/box.h"

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

// torchvision raises ValueError for an unknown format and we do too; rotated
// formats are known to torchvision but not implemented here yet.
inline BoxFormat parse_box_format(std::string_view fmt, const char* op, const char* arg) {
  if (fmt == "xyxy") return BoxFormat::XYXY;
  if (fmt == "xywh") return BoxFormat::XYWH;
  if (fmt == "cxcywh") return BoxFormat::CXCYWH;
  TORCH_CHECK_NOT_IMPLEMENTED(fmt != "xywhr" && fmt != "cxcywhr" && fmt != "xyxyxyxy", "visionops.", op,
                              ": rotated box format '", std::string(fmt), "' for ", arg,
                              " is not supported; use torchvision.ops for rotated boxes");
  TORCH_CHECK_VALUE(false, "visionops.", op, ": ", arg, " must be one of 'xyxy', 'xywh', 'cxcywh', got '",
                    std::string(fmt), "'");
}

enum class Reduction : int { None = 0, Mean = 1, Sum = 2 };

inline Reduction parse_reduction(std::string_view reduction, const char* op) {
  if (reduction == "none") return Reduction::None;
  if (reduction == "mean") return Reduction::Mean;
  if (reduction == "sum") return Reduction::Sum;
  TORCH_CHECK_VALUE(false, "visionops.", op, ": reduction must be one of 'none', 'mean', 'sum', got '",
                    std::string(reduction), "'");
}

inline IouVariant parse_iou_variant(std::string_view variant, const char* op) {
  if (variant == "iou") return IouVariant::IoU;
  if (variant == "giou") return IouVariant::GIoU;
  if (variant == "diou") return IouVariant::DIoU;
  if (variant == "ciou") return IouVariant::CIoU;
  TORCH_CHECK_VALUE(false, "visionops.", op, ": variant must be one of 'iou', 'giou', 'diou', 'ciou', got '",
                    std::string(variant), "'");
}

}  // namespace vo
