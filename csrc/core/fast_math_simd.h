// core/fast_math.h's exp_ and log_ over core/simd.h's 16-lane vectors, for
// kernels written over S (the box coder, the focal loss). Step for step the scalar
// functions' operations, in their order and with their roundings (no
// multiply-add is fused: the files that use these keep -ffp-contract=off),
// so each lane's result is the scalar function's, bit for bit; the tests
// compare the vector paths with the portable one, which calls the scalar
// functions. Where the scalar code branches on a lane (clamps, special
// values) these select, with S::min and S::max in the operand order that
// gives the scalar comparison's answer for NaN. exp_simd and log_simd test
// the whole vector first: where every lane lies in the range that needs no
// clamp or special value, they skip those selects (the same bits, fewer
// steps; csrc/tests/test_fast_math_simd.cpp checks both branches).
#pragma once

#include "core/simd.h"

namespace vo {

#ifdef VO_HAVE_SIMD16

// exp_reduced_: exp(r) for xc already clamped (or NaN), and n.
template <typename S>
inline typename S::F exp_reduced_simd(typename S::F xc, typename S::F& n) {
  using F = typename S::F;
  const F magic = S::set1(12582912.0f);
  n = S::sub(S::add(S::mul(xc, S::set1(1.44269504088896341f)), magic), magic);
  F r = S::sub(xc, S::mul(n, S::set1(0.693359375f)));
  r = S::sub(r, S::mul(n, S::set1(-2.12194440e-4f)));
  const F r2 = S::mul(r, r);
  F p = S::set1(1.9875691500e-4f);
  p = S::add(S::mul(p, r), S::set1(1.3981999507e-3f));
  p = S::add(S::mul(p, r), S::set1(8.3334519073e-3f));
  p = S::add(S::mul(p, r), S::set1(4.1665795894e-2f));
  p = S::add(S::mul(p, r), S::set1(1.6666665459e-1f));
  p = S::add(S::mul(p, r), S::set1(5.0000001201e-1f));
  return S::add(S::add(S::mul(p, r2), r), S::set1(1.0f));
}

template <typename S>
inline typename S::F exp_simd(typename S::F x) {
  using F = typename S::F;
  using U = typename S::U;
  // Every lane in [-86, 88] (the usual case: box size codes, losses'
  // logits): 2^n, n in [-124, 127], is one normal factor and exp(r) 2^n a
  // normal float, so the product is exact, as the two factors' below are:
  // the same bits without the clamp, the split and the overflow select
  // (ordered compares: a NaN lane takes the general path).
  // BoxCoder.decode_single of 200k boxes went from 0.448 to 0.384 ms with
  // AVX2 and from 0.335 to 0.305 ms with AVX-512 (AMD Zen 4, 1 thread).
  if (S::ge(S::set1(88.0f), x, S::ge(x, S::set1(-86.0f))) == 0xFFFFu) {
    F n;
    const F e = exp_reduced_simd<S>(x, n);
    return S::mul(e, S::from_bits(S::template shift_left<23>(S::add(S::to_int(n), S::set1(127u)))));
  }
  // x > 88.8 ? 88.8 : (x < -104 ? -104 : x); NaN stays NaN.
  const F xc = S::max(S::set1(-104.0f), S::min(S::set1(88.8f), x));
  F n;
  const F e = exp_reduced_simd<S>(xc, n);
  // 2^n as 2^(n / 2, toward zero) times 2^(the rest). A NaN lane's factors
  // are junk, its product NaN all the same (e is NaN).
  const F n1 = S::trunc(S::mul(n, S::set1(0.5f)));
  const F n2 = S::sub(n, n1);
  const U bias = S::set1(127u);
  const F s1 = S::from_bits(S::template shift_left<23>(S::add(S::to_int(n1), bias)));
  const F s2 = S::from_bits(S::template shift_left<23>(S::add(S::to_int(n2), bias)));
  const F y = S::mul(S::mul(e, s1), s2);
  return S::select_gt(x, S::set1(88.8f), S::set1(__builtin_inff()), y);
}

// exp_nonpositive_ (x <= 0, or NaN): 2^(n + 64), then 2^-64.
template <typename S>
inline typename S::F exp_nonpositive_simd(typename S::F x) {
  using F = typename S::F;
  const F xc = S::max(S::set1(-104.0f), x);  // x < -104 ? -104 : x; NaN stays NaN
  F n;
  const F e = exp_reduced_simd<S>(xc, n);
  const F s = S::from_bits(S::template shift_left<23>(S::add(S::to_int(n), S::set1(64u + 127u))));
  return S::mul(S::mul(e, s), S::set1(0x1p-64f));
}

// stable_sigmoid.
template <typename S>
inline typename S::F stable_sigmoid_simd(typename S::F x) {
  using F = typename S::F;
  const F zero = S::set1(0.0f), one = S::set1(1.0f);
  const F e = exp_nonpositive_simd<S>(S::select_lt(x, zero, x, S::neg(x)));  // exp(-|x|)
  const F r = S::div(one, S::add(one, e));
  return S::select_ge(x, zero, r, S::mul(e, r));
}

// log_'s steps. kSpecial: x may hold lanes that are not positive normal
// floats (denormals, zero, negatives, inf, NaN), which take log_'s extra
// selects; without it, every lane is in [FLT_MIN, inf), where those selects
// would keep each lane as it is, so they are left out (the same bits).
template <typename S, bool kSpecial>
inline typename S::F log_simd_lanes(typename S::F x) {
  using F = typename S::F;
  using U = typename S::U;
  const F one = S::set1(1.0f);
  const F tiny = S::set1(1.17549435e-38f);  // x < tiny: a denormal (or below)
  F xs = x;
  if constexpr (kSpecial) xs = S::select_lt(x, tiny, S::mul(x, S::set1(16777216.0f)), x);
  const U u = S::bits(xs);
  const U k = S::sub(S::bit_and(S::template shift_right<23>(u), S::set1(0xFFu)), S::set1(126u));
  const F m0 = S::from_bits(S::bit_or(S::bit_and(u, S::set1(0x007FFFFFu)), S::set1(0x3F000000u)));
  // k and its adjustments as floats: small integers, every step exact, so
  // fk is the scalar code's float(k) - (denormal ? 24 : 0).
  const F sqrt_half = S::set1(0.707106781186547524f);
  const F k0 = S::to_float(k);
  F fk = S::select_lt(m0, sqrt_half, S::sub(k0, one), k0);
  const F m = S::select_lt(m0, sqrt_half, S::sub(S::add(m0, m0), one), S::sub(m0, one));
  if constexpr (kSpecial) fk = S::sub(fk, S::select_lt(x, tiny, S::set1(24.0f), S::set1(0.0f)));
  const F z = S::mul(m, m);
  F p = S::set1(7.0376836292e-2f);
  p = S::add(S::mul(p, m), S::set1(-1.1514610310e-1f));
  p = S::add(S::mul(p, m), S::set1(1.1676998740e-1f));
  p = S::add(S::mul(p, m), S::set1(-1.2420140846e-1f));
  p = S::add(S::mul(p, m), S::set1(1.4249322787e-1f));
  p = S::add(S::mul(p, m), S::set1(-1.6668057665e-1f));
  p = S::add(S::mul(p, m), S::set1(2.0000714765e-1f));
  p = S::add(S::mul(p, m), S::set1(-2.4999993993e-1f));
  p = S::add(S::mul(p, m), S::set1(3.3333331174e-1f));
  F y = S::mul(S::mul(p, m), z);
  y = S::add(y, S::mul(fk, S::set1(-2.12194440e-4f)));
  y = S::sub(y, S::mul(S::set1(0.5f), z));
  y = S::add(S::add(m, y), S::mul(fk, S::set1(0.693359375f)));
  if constexpr (kSpecial) {
    // log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays NaN.
    const float inf = __builtin_inff();
    const F zero = S::set1(0.0f);
    y = S::select_eq(x, zero, S::set1(-inf), y);
    y = S::select_lt(x, zero, S::set1(__builtin_nanf("")), y);
    y = S::select_eq(x, S::set1(inf), S::set1(inf), y);
    y = S::select_unordered(x, x, y);
  }
  return y;
}

// log_ of 16 lanes. Nearly always (box size ratios, probabilities) every
// lane is a positive normal float: one test of the whole vector then skips
// the six selects only the other lanes need. BoxCoder.encode_single of 200k
// boxes (two logs a box) went from 0.575 to 0.50 ms with AVX2 and from 0.41
// to 0.36 ms with AVX-512 (AMD Zen 4, 1 thread).
template <typename S>
inline typename S::F log_simd(typename S::F x) {
  using F = typename S::F;
  const F tiny = S::set1(1.17549435e-38f);
  // ordered compares: a NaN lane fails both
  if (S::lt(x, S::set1(__builtin_inff()), S::ge(x, tiny)) == 0xFFFFu) return log_simd_lanes<S, false>(x);
  return log_simd_lanes<S, true>(x);
}

#endif  // VO_HAVE_SIMD16

}  // namespace vo
