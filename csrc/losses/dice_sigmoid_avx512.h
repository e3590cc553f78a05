// The fused sigmoid loops of dice_loss_kernel.cpp (binary and multilabel
// from logits, every pixel live, no ignore_index), written with AVX-512
// intrinsics for float logits and float or byte targets.
//
// The arithmetic is core/fast_math.h's stable_sigmoid and exp_nonpositive_
// step for step, as the portable loop computes it with multiply-adds fused
// (the Dice file allows that): the same reduction, polynomial and rounding.
// What the compiler cannot find alone are AVX-512's single instructions for
// two of its steps: 2^n * e as one vscalefps (the portable code builds 2^n
// from integer bits and multiplies twice; both round once, so the results
// are the same) and a mask blend for the final select. About a third fewer
// instructions per pixel, on a loop that is bound by them.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/cpu_features.h"

#ifdef VO_HAVE_AVX512_KERNELS
#define VO_HAVE_DICE_SIGMOID_AVX512 1
#endif

namespace vo {

#ifdef VO_HAVE_DICE_SIGMOID_AVX512

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12, inside its own intrinsics

// stable_sigmoid of 16 floats.
__attribute__((target("avx512f"), always_inline)) inline __m512 dice_sigmoid16(__m512 x) {
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  // exp(-|x|): x < 0 ? x : -x (min(x, -x), NaN kept as -x)
  const __m512 xn = _mm512_min_ps(x, _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), sign)));
  // exp_nonpositive_: clamp at -104 (max(c, v) keeps a NaN v), reduce, polynomial
  const __m512 xc = _mm512_max_ps(_mm512_set1_ps(-104.0f), xn);
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), magic), magic);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  const __m512 r2 = _mm512_mul_ps(r, r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 er = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));
  const __m512 e = _mm512_scalef_ps(er, n);  // er * 2^n, rounded once
  // 1 / (1 + e) for x >= 0, e / (1 + e) below (and for NaN)
  const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
  const __mmask16 nonneg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
  return _mm512_mask_blend_ps(nonneg, _mm512_mul_ps(e, inv), inv);
}

template <typename tgt_t>
__attribute__((target("avx512f"), always_inline)) inline __m512 dice_load_targets16(const tgt_t* t) {
  if constexpr (std::is_same_v<tgt_t, float>) {
    return _mm512_loadu_ps(t);
  } else {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t))));
  }
}

// The targets these loops read: float, and bytes (uint8, bool).
template <typename in_t, typename tgt_t>
constexpr bool kDiceSigmoidAvx512 = std::is_same_v<in_t, float> &&
                                    (std::is_same_v<tgt_t, float> || std::is_same_v<tgt_t, uint8_t>);

// block_stats_sigmoid's fused loop: I, P, T [16] += each pixel's share
// (add_plain_stats). Not squared, its factors are 0 and 1 and the shares
// are plain sums: p * (p * 0 + 1) + P rounds as p + P does.
template <bool kSquared, typename tgt_t>
__attribute__((target("avx512f"), always_inline)) inline void dice_stats_loop(const float* x, const tgt_t* t,
                                                                              int64_t blocks, __m512& vi,
                                                                              __m512& vp, __m512& vt) {
  for (int64_t k = 0; k < blocks; ++k, x += 16, t += 16) {
    const __m512 p = dice_sigmoid16(_mm512_loadu_ps(x));
    const __m512 tv = dice_load_targets16(t);
    vi = _mm512_fmadd_ps(p, tv, vi);
    if constexpr (kSquared) {  // p * (p * 1 + 0): p p
      vp = _mm512_fmadd_ps(p, p, vp);
      vt = _mm512_fmadd_ps(tv, tv, vt);
    } else {
      vp = _mm512_add_ps(vp, p);
      vt = _mm512_add_ps(vt, tv);
    }
  }
}

template <typename tgt_t>
__attribute__((target("avx512f"))) void dice_stats_avx512(const float* x, const tgt_t* t, int64_t blocks, float sq,
                                                           float* I, float* P, float* Tt) {
  __m512 vi = _mm512_loadu_ps(I), vp = _mm512_loadu_ps(P), vt = _mm512_loadu_ps(Tt);
  if (sq != 0.0f) {
    dice_stats_loop<true>(x, t, blocks, vi, vp, vt);
  } else {
    dice_stats_loop<false>(x, t, blocks, vi, vp, vt);
  }
  _mm512_storeu_ps(I, vi);
  _mm512_storeu_ps(P, vp);
  _mm512_storeu_ps(Tt, vt);
}

// block_grad_sigmoid's fused loop: out = dice_pixel_grad_factor(a, b, t, p,
// sq) * p (1 - p), where that factor is a t + b (2 p sq + (1 - sq)): a t + b
// when not squared (the same rounding: b * 1 is exact).
template <bool kSquared, typename tgt_t>
__attribute__((target("avx512f"), always_inline)) inline void dice_grad_loop(const float* x, const tgt_t* t,
                                                                             int64_t blocks, float a, float b,
                                                                             float* out) {
  const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), one = _mm512_set1_ps(1.0f);
  for (int64_t k = 0; k < blocks; ++k, x += 16, t += 16, out += 16) {
    const __m512 p = dice_sigmoid16(_mm512_loadu_ps(x));
    const __m512 tv = dice_load_targets16(t);
    // 2 p sq + (1 - sq): 2 p squared, 1 not
    const __m512 bdp = kSquared ? _mm512_mul_ps(vb, _mm512_add_ps(p, p)) : vb;
    const __m512 g = _mm512_fmadd_ps(va, tv, bdp);
    _mm512_storeu_ps(out, _mm512_mul_ps(g, _mm512_mul_ps(p, _mm512_sub_ps(one, p))));
  }
}

template <typename tgt_t>
__attribute__((target("avx512f"))) void dice_grad_avx512(const float* x, const tgt_t* t, int64_t blocks, float sq,
                                                          float a, float b, float* out) {
  if (sq != 0.0f) {
    dice_grad_loop<true>(x, t, blocks, a, b, out);
  } else {
    dice_grad_loop<false>(x, t, blocks, a, b, out);
  }
}

#pragma GCC diagnostic pop

#endif  // VO_HAVE_DICE_SIGMOID_AVX512

}  // namespace vo
