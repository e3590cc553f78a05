// Which dtype the box-taking ops return and which type they compute in. These
// rules are torchvision's (its Python upcasts), written down once for the CPU
// and CUDA kernels; visionops/_checks.py repeats them for the fake kernels.
// And vectorizable_cast: the kernels' conversions to and from the 16-bit
// floating types, in arithmetic the compiler vectorizes.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>

#include <type_traits>

#include "core/float16_bits.h"

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

// Floating point accumulation type: float for half, bfloat16 and float; double
// for double and for integers (exact for integer coordinates below 2^26).
template <typename scalar_t>
using box_acc_t = std::conditional_t<std::is_integral_v<scalar_t>, double, at::opmath_type<scalar_t>>;

// box_area's accumulation: integers multiply in int64 (then wrap to int32
// exactly as torchvision's int32 arithmetic does), floats in their opmath
// type.
template <typename scalar_t>
using area_acc_t = std::conditional_t<std::is_integral_v<scalar_t>, int64_t, at::opmath_type<scalar_t>>;

// box_convert's: integer to integer conversions (xyxy <-> xywh) are exact in
// int64; the others compute in the floating accumulation type and round once.
template <typename scalar_t, typename out_t>
using convert_acc_t = std::conditional_t<std::is_integral_v<out_t>, int64_t, box_acc_t<scalar_t>>;

// v as out_t, rounded as c10 rounds it; a float to half or bfloat16, and a
// half to float, through core/float16_bits.h's arithmetic, which GCC
// vectorizes (c10's own conversions keep such a loop a lane at a time).
template <typename out_t, typename T>
inline out_t vectorizable_cast(const T& v) {
  if constexpr (std::is_same_v<out_t, c10::BFloat16> && std::is_same_v<T, float>) {
    return c10::BFloat16(bfloat16_bits(v), c10::BFloat16::from_bits());
  } else if constexpr (std::is_same_v<out_t, c10::Half> && std::is_same_v<T, float>) {
    return c10::Half(half_bits(v), c10::Half::from_bits());
  } else if constexpr (std::is_same_v<out_t, float> && std::is_same_v<T, c10::Half>) {
    return half_to_float(v.x);
  } else {
    return static_cast<out_t>(v);
  }
}

// The type a vector loop (core/simd.h) reads elements of T as: T itself,
// or for bfloat16 and half their bits (core/float16_bits.h), so that the
// loops need no torch.
template <typename T>
struct simd_storage {
  using type = T;
};
template <>
struct simd_storage<c10::BFloat16> {
  using type = bfloat16_storage;
};
template <>
struct simd_storage<c10::Half> {
  using type = half_storage;
};
template <typename T>
using simd_storage_t = typename simd_storage<T>::type;
static_assert(sizeof(c10::BFloat16) == 2 && sizeof(c10::Half) == 2, "16-bit types read as their bits");

// p as simd_storage_t's pointer (the same bytes).
template <typename T>
inline auto simd_storage_ptr(T* p) {
  using S = std::conditional_t<std::is_const_v<T>, const simd_storage_t<std::remove_const_t<T>>,
                               simd_storage_t<T>>;
  return reinterpret_cast<S*>(p);
}

}  // namespace vo

// Every dtype the box ops accept: the four floating types and the integers.
#define VO_DISPATCH_BOX_TYPES(TYPE, NAME, ...) \
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

#define VO_DISPATCH_FLOAT_BOX_TYPES(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)
