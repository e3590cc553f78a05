// The sigmoid focal loss and its gradients (losses/math.h's focal_terms,
// focal_pow, sigmoid_focal_loss_value and sigmoid_focal_loss_backward) over
// core/simd.h's 16-lane vectors, for float inputs: the same operations in
// the same order, no multiply-add fused (the focal file keeps
// -ffp-contract=off), exp_ and log_ as core/fast_math_simd.h's copies, and
// each of math.h's conditionals a select on the same compare. So every
// lane is the scalar functions' result, bit for bit (the tests compare the
// paths). Why: the compiler vectorizes the scalar loop well with AVX-512's
// mask registers, but on AVX2 it lowered the selects and the exp and log
// into a mix of vector and scalar code, at half AVX-512's speed per lane.
#pragma once

#include <cstdint>

#include "core/fast_math_simd.h"
#include "core/simd.h"

namespace vo {

#ifdef VO_HAVE_SIMD16

template <typename S>
struct FocalTermsSimd {
  typename S::F s, one_minus_s, ce, q, a;
};

// focal_terms in three steps, each of 16 elements: e = exp(-|x|), then
// log1p_small(e), then the rest from x, t, e and that: the same operations
// on the same values as focal_terms. focal_loss_cpu.cpp runs each step over
// a tile of elements before the next.
template <typename S>
inline typename S::F focal_exp_simd(typename S::F x) {
  using F = typename S::F;
  const F zero = S::set1(0.0f);
  const F ax = S::select_lt(x, zero, S::neg(x), x);  // NaN stays NaN
  return exp_simd<S>(S::neg(ax));
}

template <typename S>
inline typename S::F focal_log1p_simd(typename S::F e) {
  using F = typename S::F;
  const F zero = S::set1(0.0f), one = S::set1(1.0f);
  const F u = S::add(one, e);
  const F d = S::sub(u, one);
  const F l = S::mul(log_simd<S>(u), S::div(e, S::select_eq(d, zero, one, d)));
  return S::select_eq(d, zero, e, l);
}

// alpha_on: alpha >= 0.
template <typename S>
inline FocalTermsSimd<S> focal_terms_from_simd(typename S::F x, typename S::F t, typename S::F e,
                                               typename S::F log1p_e, float alpha) {
  using F = typename S::F;
  const F zero = S::set1(0.0f), one = S::set1(1.0f);
  const F r = S::div(one, S::add(one, e));
  const F er = S::mul(e, r);
  FocalTermsSimd<S> f;
  f.s = S::select_ge(x, zero, r, er);
  f.one_minus_s = S::select_ge(x, zero, er, r);
  const F log_sigmoid = S::sub(S::select_lt(x, zero, x, zero), log1p_e);
  const F one_minus_t = S::sub(one, t);
  f.ce = S::sub(S::mul(one_minus_t, x), log_sigmoid);
  f.q = S::add(S::mul(f.s, one_minus_t), S::mul(f.one_minus_s, t));
  f.a = alpha >= 0.0f ? S::add(S::mul(S::set1(alpha), t), S::mul(S::set1(1.0f - alpha), one_minus_t)) : one;
  return f;
}

// focal_pow: q^gamma, kSquare for gamma == 2.
template <typename S, bool kSquare>
inline typename S::F focal_pow_simd(typename S::F q, float gamma) {
  using F = typename S::F;
  if constexpr (kSquare) {
    return S::mul(q, q);
  } else {
    const F zero = S::set1(0.0f), one = S::set1(1.0f);
    const F p = exp_simd<S>(S::mul(S::set1(gamma), log_simd<S>(S::select_gt(q, zero, q, one))));
    // q <= 1 && gamma >= 0 && p > 1 ? 1 : p
    const F capped = gamma >= 0.0f ? S::select_gt(p, one, S::select_le(q, one, one, p), p) : p;
    const float at_zero = gamma == 0.0f ? 1.0f : (gamma > 0.0f ? 0.0f : __builtin_inff());
    return S::select_gt(q, zero, capped, S::set1(at_zero));
  }
}

template <typename S, bool kSquare>
inline typename S::F focal_value_simd(const FocalTermsSimd<S>& f, float gamma) {
  return S::mul(f.a, S::mul(f.ce, focal_pow_simd<S, kSquare>(f.q, gamma)));
}

// sigmoid_focal_loss_backward of 16 elements from their terms (x, t as in
// them), g their scaled gradients.
template <typename S, bool kSquare>
inline void focal_backward_simd(const FocalTermsSimd<S>& f, typename S::F x, typename S::F t, float alpha,
                                float gamma, typename S::F g, typename S::F& gx, typename S::F& gt) {
  using F = typename S::F;
  const F one = S::set1(1.0f), two = S::set1(2.0f);
  const F m = focal_pow_simd<S, kSquare>(f.q, gamma);
  F dm_dq;
  if constexpr (kSquare) {
    dm_dq = S::mul(two, f.q);
  } else {
    dm_dq = gamma == 0.0f ? S::set1(0.0f) : S::mul(S::set1(gamma), focal_pow_simd<S, false>(f.q, gamma - 1.0f));
  }
  const F ss = S::mul(f.s, f.one_minus_s);
  const F dq_dx = S::mul(ss, S::sub(one, S::mul(two, t)));
  const F dq_dt = S::sub(f.one_minus_s, f.s);
  const F da_dt = S::set1(alpha >= 0.0f ? 2.0f * alpha - 1.0f : 0.0f);
  const F ce_dm = S::mul(f.ce, dm_dq);
  gx = S::mul(g, S::mul(f.a, S::add(S::mul(S::sub(f.s, t), m), S::mul(ce_dm, dq_dx))));
  gt = S::mul(g, S::add(S::mul(S::mul(da_dt, f.ce), m),
                        S::mul(f.a, S::add(S::mul(S::neg(x), m), S::mul(ce_dm, dq_dt)))));
}

#endif  // VO_HAVE_SIMD16

}  // namespace vo
