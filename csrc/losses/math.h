// The losses family's math, shared by the CPU and CUDA kernels: the soft
// Dice loss's per-pixel statistics and gradient, and the sigmoid focal loss.
//
// Soft Dice:
// For class c, over the batch and every pixel not ignored (p the predicted
// probability, t the target, m the ignore mask):
//   I = sum m p t,  P = sum m p (or p^2 when squared),  T = sum m t (or t^2)
//   dice = (2 I + smooth) / max(P + T + smooth, eps)
//   loss = 1 - dice, or -log(max(dice, eps)) with log_loss
// and a class without target pixels (T == 0) contributes 0, as in
// segmentation_models_pytorch (its Dice is undefined there). The classic
// formula, so it equals smp's for smooth = 0 and MONAI's (batch=True) with
// smooth_nr = smooth_dr = smooth.
#pragma once

#include "core/fast_math.h"
#include "core/macros.h"

namespace vo {

struct DiceParams {
  double smooth, eps;
  bool squared, log_loss;
};

// exp(r) for |r| <= ln 2 / 2 in the Dice kernels: 1 + r + c2 r^2 + ... +
// c6 r^6 in Horner form, with c2..c6 fitted here for the least largest
// relative error (Lawson's iteration on 4001 Chebyshev points): 3.1e-9 in
// exact arithmetic, 0.72 ulp evaluated in float with multiply-adds (checked
// on 2e6 points against float64). Two operations fewer than
// core/fast_math.h's exp_poly_ (degree 7 through r^2, for the ops that match
// torchvision), and the fused Dice loops are bound by this arithmetic: on
// AMD Zen 4 the sigmoid is most of each pixel's work. (Degree 5 saves one
// more but is 2.1 ulp, which puts the sigmoid past 3.)
VO_HOST_DEVICE_INLINE float dice_exp_poly(float r) {
  float p = 1.3814612757e-3f;
  p = p * r + 8.3687100559e-3f;
  p = p * r + 4.1668388993e-2f;
  p = p * r + 1.6666521132e-1f;
  p = p * r + 4.9999994040e-1f;
  p = p * r + 1.0f;
  return p * r + 1.0f;
}

// exp(z) = dice_exp_poly(r) * scale for z in [-86, 88] (or NaN), as
// core/fast_math.h's exp_normal_range_ (2^n a normal float from the
// rounding sum's bits); the factors come apart so that the sigmoid can fuse
// 1 + exp(r) 2^n into one multiply-add.
VO_HOST_DEVICE_INLINE float dice_exp_factors(float z, float& scale) {
  float t;
  const float r = exp_reduce_(z, t);
  scale = bits_to_float((float_to_bits(t) + (127u - 0x4B400000u)) << 23);
  return dice_exp_poly(r);
}

// The Dice kernels' sigmoid, 1 / (1 + exp(-x)): one exp and one division,
// without stable_sigmoid's select on the sign (the fused Dice loops are bound
// by this arithmetic). In float, on the CPU, x is first clamped to
// [-88, 86], so that exp(-x) is dice_exp_factors' (a normal float, 2^n
// applied exactly); the result is within 3 ulp of the exact sigmoid. Above
// 86 it is 1 either way (exp(-86) < 2^-124); below -88 it is 1 / (1 + e^88) =
// 6.1e-39 instead of the exact, smaller value: an absolute error under
// 6.1e-39, a relative one no Dice statistic or gradient can show. NaN stays
// NaN. The fused vector loops (losses/dice_sigmoid_simd.h) use
// dice_sigmoid_eighths below instead, with fewer operations.
VO_HOST_DEVICE_INLINE float dice_sigmoid(float x) {
#if defined(__CUDA_ARCH__)
  return 1.0f / (1.0f + ::expf(-x));
#else
  const float xc = x > 86.0f ? 86.0f : (x < -88.0f ? -88.0f : x);  // NaN stays NaN
  float scale;
  const float er = dice_exp_factors(-xc, scale);
  return 1.0f / (er * scale + 1.0f);
#endif
}

VO_HOST_DEVICE_INLINE double dice_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// The fused Dice loops' sigmoid (losses/dice_sigmoid_simd.h, for float
// logits where every pixel counts): dice_sigmoid with fewer multiply-adds.
// exp(-x) = 2^(n / 8) exp(r), with n = round(-8 x / ln 2) and
// |r| <= ln 2 / 16: 2^(j / 8) for j = n mod 8 comes from a table of eight
// (one permute of a register in the vector loops) and 2^floor(n / 8) goes
// into its exponent bits, so exp(r) needs degree 4 (dice_sigmoid_exp_poly)
// where dice_exp_poly's |r| <= ln 2 / 2 needs degree 6: two multiply-adds
// fewer for the permute. Those loops are bound by this arithmetic on AVX2:
// there the binary forward of (16, 1, 512, 512) went from 1.52 to 1.34 ms
// and its backward from 1.81 to 1.72 (AMD Zen 4 with AVX2 forced, 1 thread,
// best of 6; with AVX-512 1.18 to 1.11 and 1.44 to 1.32). Not for the scalar loops that the compiler vectorizes
// (dice_sigmoid): a table lookup stops GCC vectorizing them, which made
// them 4 to 5 times slower.
//
// Entry j of the table is the bits of 2^(j / 8) rounded to float (checked
// against 40 digits) less j << 20: t's bits shifted left by 20 are
// floor(n / 8) << 23 plus j << 20.
inline constexpr uint32_t kDiceExp2Eighths[8] = {0x3f800000u, 0x3f7b95c2u, 0x3f7837f0u, 0x3f75fed7u,
                                                 0x3f7504f3u, 0x3f75672au, 0x3f7744fdu, 0x3f7ac0c7u};

// a b + c, rounded once where kFused (std::fma, as the vector loops'
// multiply-adds round) and twice where not (as the file's compile flags
// allow: the C++ tests are built without contraction).
template <bool kFused>
inline float dice_mad(float a, float b, float c) {
  if constexpr (kFused) {
    return std::fma(a, b, c);
  } else {
    return a * b + c;
  }
}

// exp(r) for |r| <= ln 2 / 16: 1 + r + r^2 / 2 + c3 r^3 + c4 r^4 in Horner
// form, c3 and c4 fitted here for the least largest relative error
// (Lawson's iteration on 4001 Chebyshev points): 1.7e-10 in exact
// arithmetic, below float's rounding.
template <bool kFused = false>
inline float dice_sigmoid_exp_poly(float r) {
  float p = dice_mad<kFused>(4.166686534881592e-2f, r, 1.666802018880844e-1f);
  p = dice_mad<kFused>(p, r, 0.5f);
  p = dice_mad<kFused>(p, r, 1.0f);
  return dice_mad<kFused>(p, r, 1.0f);
}

// The same clamp as dice_sigmoid (2^floor(n / 8) a normal float, applied
// exactly; 1 from 86 up, 1 / (1 + e^88) = 6.1e-39 below -88; NaN stays NaN:
// t's bits are then no number, but exp(r) is NaN and so is the result).
// Within 2.5 ulp of the exact sigmoid with multiply-adds fused (kFused, as
// the vector loops compute it, which give the same bits: the C++ tests
// compare every 7th float), and within 3.1 without (2.45 for dice_sigmoid;
// the table's rounding, up to half an ulp of 2^(j / 8), makes the
// difference): measured on every second float below 88 of either sign
// against float64.
template <bool kFused = false>
inline float dice_sigmoid_eighths(float x) {
  const float xc = x > 86.0f ? 86.0f : (x < -88.0f ? -88.0f : x);  // NaN stays NaN
  const float t = dice_mad<kFused>(xc, -11.5415603271f, 12582912.0f);  // 1.5 * 2^23 + n: rounds -8 xc / ln 2 to n
  const float n = t - 12582912.0f;
  // -xc - n ln 2 / 8, ln 2 / 8 in two parts (Cody and Waite)
  const float r = dice_mad<kFused>(n, 2.6524305e-5f, dice_mad<kFused>(n, -0.086669921875f, -xc));
  const uint32_t tb = float_to_bits(t);  // 0x4B400000 + n
  const float scale = bits_to_float(kDiceExp2Eighths[tb & 7u] + (tb << 20));
  return 1.0f / dice_mad<kFused>(dice_sigmoid_exp_poly<kFused>(r), scale, 1.0f);
}

// exp(d) for the Dice softmax's d = x - max <= 0 (or NaN): d is clamped at
// -86 for dice_exp_factors, so below it the result is exp(-86) = 4.4e-38
// rather than smaller, next to the max's own exp(0) = 1 in the sum: an
// absolute error under 4.4e-38 in a probability.
VO_HOST_DEVICE_INLINE float dice_softmax_exp(float d) {
#if defined(__CUDA_ARCH__)
  return ::expf(d);
#else
  float scale;
  const float er = dice_exp_factors(d < -86.0f ? -86.0f : d, scale);  // NaN stays NaN
  return er * scale;
#endif
}

VO_HOST_DEVICE_INLINE double dice_softmax_exp(double d) { return std::exp(d); }

// d loss / d p at one pixel of one class: the class's coefficients a (of the
// target) and b (of dP/dp, which is 1, or 2p when squared). See
// dice_class_coefficients below.
template <typename T>
VO_HOST_DEVICE_INLINE T dice_pixel_grad(T a, T b, T t, T p, bool squared) {
  const T dp = T(2) * p;
  return a * t + b * (squared ? dp : T(1));
}

// The same with squared as a 0/1 factor instead of a flag: CPU loops over
// pixels vectorize with it (GCC does not vectorize a select on a
// loop-invariant flag well). Equal to dice_pixel_grad for finite p.
template <typename T>
VO_HOST_DEVICE_INLINE T dice_pixel_grad_factor(T a, T b, T t, T p, T squared) {
  return a * t + b * (T(2) * p * squared + (T(1) - squared));
}

// One class's loss from its statistics, before its weight (the formula at
// the top): 0 where T is not above 0. The max keeps a NaN, as torch's
// clamp_min does, so a NaN statistic gives a NaN loss (but not with T NaN:
// then the class has no target pixels that count, and 0).
VO_HOST_DEVICE_INLINE double dice_class_loss(double I, double P, double T, const DiceParams& p) {
  const double denom = P + T + p.smooth;
  const double d = denom < p.eps ? p.eps : denom;
  const double dice = (2.0 * I + p.smooth) / d;
  const double loss = p.log_loss ? -std::log(dice < p.eps ? p.eps : dice) : 1.0 - dice;
  return T > 0.0 ? loss : 0.0;
}

// The coefficients a and b of one class's pixel gradient (dice_pixel_grad),
// given up, the upstream gradient of its weighted loss times its weight:
//   d loss / d I = 2 g / d,  d loss / d P = d loss / d T = -g (2 I + smooth) / d^2
// with g = up * d loss / d dice and d = max(P + T + smooth, eps). The max
// passes the gradient at and above the bound, not below it (torch's
// clamp_min); so does the log loss's max(dice, eps).
VO_HOST_DEVICE_INLINE void dice_class_coefficients(double I, double P, double T, double up, const DiceParams& p,
                                                   double& a, double& b) {
  const double denom = P + T + p.smooth;
  const bool pass = denom >= p.eps;
  const double d = denom < p.eps ? p.eps : denom;
  const double dice = (2.0 * I + p.smooth) / d;
  const double dl_ddice = p.log_loss ? (dice >= p.eps ? -1.0 / dice : 0.0) : -1.0;
  const double g = T > 0.0 ? up * dl_ddice : 0.0;
  a = g * 2.0 / d;
  b = pass ? -g * (2.0 * I + p.smooth) / (d * d) : 0.0;
}

// ---------------------------------------------------------------- sigmoid focal loss

// Sigmoid focal loss (RetinaNet, Lin et al. 2017), as torchvision's
// sigmoid_focal_loss defines it, element by element:
//   ce = BCE-with-logits(x, t),  p_t = p t + (1 - p)(1 - t),  p = sigmoid(x)
//   loss = alpha_t * ce * (1 - p_t)^gamma,  alpha_t = alpha t + (1 - alpha)(1 - t)
// (alpha < 0 turns alpha_t off). Computed from e = exp(-|x|) alone, so that
// p, 1 - p and log(1 + e) keep full relative precision for any x (torchvision
// forms 1 - p_t by subtraction, which cancels for confident predictions).

template <typename T>
struct FocalTerms {
  T s, one_minus_s;  // sigmoid(x) and sigmoid(-x)
  T ce;              // BCE with logits
  T q;               // 1 - p_t
  T a;               // alpha_t
};

// log(1 + e) for e in [0, 1], accurate for tiny e (u - 1 recovers the part of
// e that survived the addition).
template <typename T>
VO_HOST_DEVICE_INLINE T log1p_small(T e) {
  // Both sides computed, then selected: no conditional floating-point work,
  // which the compiler would not vectorize.
  const T u = T(1) + e;
  const T d = u - T(1);
  const T l = log_(u) * (e / (d == T(0) ? T(1) : d));
  return d == T(0) ? e : l;
}

template <typename T>
VO_HOST_DEVICE_INLINE FocalTerms<T> focal_terms(T x, T t, T alpha) {
  const T ax = x < T(0) ? -x : x;  // NaN stays NaN
  const T e = exp_(-ax);
  const T r = T(1) / (T(1) + e);
  FocalTerms<T> f;
  const T er = e * r;
  f.s = x >= T(0) ? r : er;
  f.one_minus_s = x >= T(0) ? er : r;
  // (1 - t) x - log_sigmoid(x), log_sigmoid(x) = min(x, 0) - log(1 + e): the
  // order of torch's binary_cross_entropy_with_logits, so that both round
  // alike where the terms cancel (t = 0 and x << 0 gives 0 in both) and the
  // focal loss stays at most torch's cross entropy there.
  const T log_sigmoid = (x < T(0) ? x : T(0)) - log1p_small(e);
  f.ce = (T(1) - t) * x - log_sigmoid;
  f.q = f.s * (T(1) - t) + f.one_minus_s * t;
  const T a = alpha * t + (T(1) - alpha) * (T(1) - t);
  f.a = alpha >= T(0) ? a : T(1);
  return f;
}

// q^gamma with pow's conventions at q == 0 (0^0 = 1), branch-free so that
// loops over elements vectorize. kSquare: gamma is known to be 2 (RetinaNet's
// default), q * q exactly.
template <bool kSquare, typename T>
VO_HOST_DEVICE_INLINE T focal_pow(T q, T gamma) {
  if constexpr (kSquare) {
    return q * q;
  } else {
    const T p = exp_(gamma * log_(q > T(0) ? q : T(1)));
    // q <= 1 and gamma >= 0 give q^gamma <= 1 exactly, so that the loss never
    // exceeds the cross entropy (exp and log round, 1 + an ulp otherwise).
    const T capped = q <= T(1) && gamma >= T(0) && p > T(1) ? T(1) : p;
    const T at_zero = gamma == T(0) ? T(1) : (gamma > T(0) ? T(0) : T(INFINITY));
    return q > T(0) ? capped : at_zero;
  }
}

template <bool kSquare, typename T>
VO_HOST_DEVICE_INLINE T sigmoid_focal_loss_value(T x, T t, T alpha, T gamma) {
  const FocalTerms<T> f = focal_terms(x, t, alpha);
  return f.a * (f.ce * focal_pow<kSquare>(f.q, gamma));
}

// Gradients of the loss of one element, scaled by g, into x and t.
template <bool kSquare, typename T>
VO_HOST_DEVICE_INLINE void sigmoid_focal_loss_backward(T x, T t, T alpha, T gamma, T g, T& gx, T& gt) {
  const FocalTerms<T> f = focal_terms(x, t, alpha);
  const T m = focal_pow<kSquare>(f.q, gamma);
  // d m / d q = gamma q^(gamma - 1); zero for gamma == 0, as torch's pow backward.
  T dm_dq;
  if constexpr (kSquare) {
    dm_dq = T(2) * f.q;
  } else {
    const T d = gamma * focal_pow<false>(f.q, gamma - T(1));
    dm_dq = gamma == T(0) ? T(0) : d;
  }
  const T ss = f.s * f.one_minus_s;
  // q = s (1 - t) + (1 - s) t: dq/dx = s (1 - s) (1 - 2t), dq/dt = 1 - 2s
  const T dq_dx = ss * (T(1) - T(2) * t);
  const T dq_dt = f.one_minus_s - f.s;
  const T da = T(2) * alpha - T(1);
  const T da_dt = alpha >= T(0) ? da : T(0);
  gx = g * (f.a * ((f.s - t) * m + f.ce * dm_dq * dq_dx));
  gt = g * (da_dt * f.ce * m + f.a * (-x * m + f.ce * dm_dq * dq_dt));
}

}  // namespace vo
