// The NMS suppression test shared by the CPU and CUDA kernels.
//
// torchvision suppresses box j when `inter / union > iou_threshold`, with
// inter and union computed in the box dtype and the quotient (a float for
// float boxes) compared with the threshold as a double. We reproduce that
// decision exactly, without the division, for float arithmetic:
//
//   fl32(inter / union) > t   <=>   fl32(q) >= f, f the smallest float > t
//                             <=>   q > m, or q == m and f's last bit is 0
//
// where m is the midpoint between f and the float below it (round to
// nearest even sends q == m to the even one of the two). With union > 0 that
// is inter > m * union (or ==), and m * union is exact in double (25 + 24
// significant bits), so the test is exact. It needs t >= 0 (then only boxes
// that really overlap can suppress, which the CPU's spatial grid relies on);
// for t < 0, a NaN t, and float64 boxes the kernels divide, as torchvision.
//
// The products that feed inter and union are rounded explicitly (mul_rn)
// so that nvcc cannot fuse them into an FMA: CPU and CUDA then compute
// bitwise the same inter and union and keep the same boxes.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/macros.h"

namespace vo {

VO_HOST_DEVICE_INLINE float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;  // CPU sources build with -ffp-contract=off
#endif
}

VO_HOST_DEVICE_INLINE double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// xyxy box with its area, as NMS reads it (in float for float, half and
// bfloat16 boxes, in double for double).
template <typename T>
struct NmsBox {
  T x1, y1, x2, y2, area;
};

template <typename T>
VO_HOST_DEVICE_INLINE NmsBox<T> make_nms_box(T x1, T y1, T x2, T y2) {
  return {x1, y1, x2, y2, mul_rn(x2 - x1, y2 - y1)};
}

// Box j of a structure of arrays: the fields x1, y1, x2, y2 and area, each
// `cap` values apart (the CPU kernels' layout of kept boxes).
template <typename T>
VO_HOST_DEVICE_INLINE NmsBox<T> soa_nms_box(const T* f, int64_t cap, int64_t j) {
  return {f[j], f[cap + j], f[2 * cap + j], f[3 * cap + j], f[4 * cap + j]};
}

// Whether the box can ever take part in a suppression when t >= 0: a finite
// box of positive width, height and area. Others (empty, inverted, NaN or
// infinite) have no positive overlap with anything.
template <typename T>
VO_HOST_DEVICE_INLINE bool nms_box_is_proper(const NmsBox<T>& b) {
  return b.x1 < b.x2 && b.y1 < b.y2 && b.area > T(0) && b.area < T(INFINITY) && b.x1 > T(-INFINITY) &&
         b.x2 < T(INFINITY) && b.y1 > T(-INFINITY) && b.y2 < T(INFINITY);
}

struct NmsPredicate {
  double threshold;    // t as given
  double midpoint;     // m above
  bool tie_suppresses; // q == m rounds up to f
  bool division_free;  // t >= 0: the test above applies
};

// Host side: the constants of the test for threshold t.
inline NmsPredicate make_nms_predicate(double t) {
  NmsPredicate p{t, 0.0, false, t >= 0.0};
  if (!p.division_free) return p;
  const float ft = static_cast<float>(t);
  const float f = static_cast<double>(ft) > t ? ft : std::nextafter(ft, INFINITY);
  const float below = std::nextafter(f, -INFINITY);
  p.midpoint = (static_cast<double>(below) + static_cast<double>(f)) * 0.5;
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  p.tie_suppresses = (bits & 1u) == 0u;
  return p;
}

// Intersection and union of two boxes, in torchvision's order of operations.
template <typename T>
VO_HOST_DEVICE_INLINE void nms_inter_union(const NmsBox<T>& a, const NmsBox<T>& b, T& inter, T& uni) {
  const T w = clamp_min(min(a.x2, b.x2) - max(a.x1, b.x1), T(0));
  const T h = clamp_min(min(a.y2, b.y2) - max(a.y1, b.y1), T(0));
  inter = mul_rn(w, h);
  uni = a.area + b.area - inter;
}

// 1 when the float quotient inter / uni is above t (t >= 0), given
// m = p.midpoint and tie = p.tie_suppresses: the division-free test above.
// Integer and branch-free, so that CPU loops over many boxes vectorize.
VO_HOST_DEVICE_INLINE int nms_quotient_exceeds(float inter, float uni, double midpoint, int tie) {
  const double lhs = static_cast<double>(inter);
  const double rhs = mul_rn(midpoint, static_cast<double>(uni));  // exact
  return static_cast<int>(uni > 0.0f) & (static_cast<int>(lhs > rhs) | (tie & static_cast<int>(lhs == rhs)));
}

// float64 boxes: torchvision's division, in double.
VO_HOST_DEVICE_INLINE int nms_quotient_exceeds(double inter, double uni, double threshold) {
  return static_cast<int>(inter / uni > threshold);
}

// Does kept box a suppress box b, when p.division_free (t >= 0)?
VO_HOST_DEVICE_INLINE bool nms_suppresses_division_free(const NmsBox<float>& a, const NmsBox<float>& b,
                                                        const NmsPredicate& p) {
  float inter, uni;
  nms_inter_union(a, b, inter, uni);
  return nms_quotient_exceeds(inter, uni, p.midpoint, static_cast<int>(p.tie_suppresses)) != 0;
}

VO_HOST_DEVICE_INLINE bool nms_suppresses_division_free(const NmsBox<double>& a, const NmsBox<double>& b,
                                                        const NmsPredicate& p) {
  double inter, uni;
  nms_inter_union(a, b, inter, uni);
  return nms_quotient_exceeds(inter, uni, p.threshold) != 0;
}

// Does kept box a suppress box b? Any threshold.
template <typename T>
VO_HOST_DEVICE_INLINE bool nms_suppresses(const NmsBox<T>& a, const NmsBox<T>& b, const NmsPredicate& p) {
  if (p.division_free) return nms_suppresses_division_free(a, b, p);
  T inter, uni;
  nms_inter_union(a, b, inter, uni);
  return static_cast<double>(inter / uni) > p.threshold;
}

// ---------------------------------------------------------------- soft-NMS

enum class SoftNmsMethod : int { Linear = 0, Gaussian = 1 };

// The factor by which soft-NMS scales a box's score after a box overlapping
// it by `iou` is picked (Bodla et al., 2017, as mmcv and ensemble-boxes
// implement it): linear, 1 - iou above the threshold; gaussian,
// exp(-iou^2 / sigma). A NaN overlap (an empty or NaN box) decays nothing.
// exp(x) for x <= 0, from IEEE operations that round the same everywhere
// (each product rounded on its own by mul_rn, no FMA): the CPU and CUDA give
// the same bits, so soft-NMS decays scores alike and picks the same boxes.
// libm's exp and the device's differ in the last bit for some x; this one is
// within 1.2 ulp of the exact value (csrc/tests/test_nms_math.cpp). Cody and
// Waite's reduction x = n ln 2 + r, |r| <= ln 2 / 2, then Taylor's series to
// the degree the type needs (r^8 / 8! < 2^-26 for float, r^14 / 14! < 2^-55
// for double) and an exact scaling by 2^n.
template <typename T>
VO_HOST_DEVICE_INLINE T rint_(T x) {
#if defined(__CUDA_ARCH__)
  return ::rint(x);
#else
  return std::rint(x);
#endif
}

template <typename T>
VO_HOST_DEVICE_INLINE T ldexp_(T x, int n) {
#if defined(__CUDA_ARCH__)
  return ::ldexp(x, n);
#else
  return std::ldexp(x, n);
#endif
}

template <typename T>
VO_HOST_DEVICE_INLINE T soft_nms_exp(T x) {
  constexpr bool kFloat = sizeof(T) == 4;
  constexpr int kDegree = kFloat ? 7 : 13;
  const T lowest = kFloat ? T(-104) : T(-746);  // exp(lowest) rounds to 0
  if (!(x > lowest)) return x == x ? T(0) : x;
  if (x > T(0)) x = T(0);
  // ln 2 split so that n * hi is exact for every n here (|n| < 2^11).
  const T ln2_hi = kFloat ? T(0.693359375) : T(6.93147180369123816490e-01);
  const T ln2_lo = kFloat ? T(-2.12194440e-4) : T(1.90821492927058770002e-10);
  const T n = rint_(mul_rn(x, T(1.44269504088896340736)));
  const T r = (x - mul_rn(n, ln2_hi)) - mul_rn(n, ln2_lo);
  T p = T(1);
  for (int k = kDegree; k >= 1; --k) p = T(1) + mul_rn(p, r) / T(k);  // 1 + r/1 (1 + r/2 (1 + ...))
  return ldexp_(p, static_cast<int>(n));
}

template <typename T>
VO_HOST_DEVICE_INLINE T soft_nms_weight(T iou, SoftNmsMethod method, T iou_threshold, T sigma) {
  if (!(iou == iou)) return T(1);
  if (method == SoftNmsMethod::Linear) return iou > iou_threshold ? T(1) - iou : T(1);
  return soft_nms_exp(-(mul_rn(iou, iou)) / sigma);
}

// The IoU soft-NMS decays by: inter / union in the box type.
template <typename T>
VO_HOST_DEVICE_INLINE T nms_iou(const NmsBox<T>& a, const NmsBox<T>& b) {
  T inter, uni;
  nms_inter_union(a, b, inter, uni);
  return inter / uni;
}

// Scores in descending order with NaN first, as torch.sort(descending=True)
// orders them; callers sort stably, so ties keep index order.
template <typename T>
VO_HOST_DEVICE_INLINE bool score_before(T a, T b) {
  if (a != a) return b == b;  // NaN before any number
  if (b != b) return false;
  return a > b;
}

}  // namespace vo
