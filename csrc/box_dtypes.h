// Which dtype each box op returns and which type it computes in. These rules
// are torchvision's (its Python upcasts), written down once for the CPU and
// CUDA kernels; visionops/_registrations.py repeats them for the fake kernels.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>

#include <type_traits>

#include "common/box.h"

namespace vo {

// Pairwise IoU family and the IoU losses: float64 stays float64, everything
// else (half, bfloat16, float32, integers) gives float32.
inline at::ScalarType iou_out_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// box_area: floats as above; int64 stays int64, smaller integers give int32.
inline at::ScalarType area_out_dtype(at::ScalarType t) {
  if (at::isFloatingType(t)) return iou_out_dtype(t);
  return t == at::kLong ? at::kLong : at::kInt;
}

// box_convert keeps the dtype, except that integer boxes become float32 when
// a centre is computed or consumed (torchvision divides by 2 or scales by 0.5).
inline at::ScalarType convert_out_dtype(at::ScalarType t, BoxFormat in_fmt, BoxFormat out_fmt) {
  const bool halves = in_fmt != out_fmt && (in_fmt == BoxFormat::CXCYWH || out_fmt == BoxFormat::CXCYWH);
  return (!at::isFloatingType(t) && halves) ? at::kFloat : t;
}

// Floating point accumulation type: float for half, bfloat16 and float; double
// for double and for integers (exact for integer coordinates below 2^26).
template <typename scalar_t>
using box_acc_t = std::conditional_t<std::is_integral_v<scalar_t>, double, at::opmath_type<scalar_t>>;

}  // namespace vo

// Every dtype the box ops accept: the four floating types and the integers.
#define VO_DISPATCH_BOX_TYPES(TYPE, NAME, ...) \
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

#define VO_DISPATCH_FLOAT_BOX_TYPES(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)
