// The fused sigmoid loops of dice_loss_cpu.cpp (binary and multilabel from
// logits, every pixel live, no ignore_index) over core/simd.h's 16-lane
// vectors, one source for AVX-512 and AVX2, for float, bfloat16 and half
// logits, targets of those types or bytes, and the gradient in the logits'
// type. The 16-bit types are read and written in their own width (core/
// simd.h's exact loads and c10's rounding). They ran the scalar loops
// before: the binary forward of (16, 1, 512, 512) float16 took 4.3 ms with
// AVX-512 and 8.7 ms with AVX2, its backward 7.4 and 8.7 ms; now 1.1-1.3
// and 1.4 ms, 1.9 and 2.2-2.3 ms (bfloat16 3.8 and 5.8 ms, 3.2 and 3.7 ms
// before; 1.2 and 1.4 ms, 2.0 and 2.5 ms now; AMD Zen 4, 1 thread).
//
// The arithmetic is losses/math.h's dice_sigmoid_eighths step for step,
// with multiply-adds fused (the Dice file allows that): the same clamp,
// reduction, polynomial, table of 2^(j / 8) and exponent bits, so the
// AVX-512 and AVX2 paths give the same bits. The scalar loops (ignore_index,
// other dtypes, a chunk's last partial block, the portable path) use
// dice_sigmoid, which the compiler vectorizes; both are within 2.5 ulp of
// the exact sigmoid there.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/float16_bits.h"
#include "core/simd.h"
#include "core/streaming_store.h"
#include "losses/math.h"

#ifdef VO_HAVE_SIMD16
#define VO_HAVE_DICE_SIGMOID_SIMD 1
#endif

namespace vo {

#ifdef VO_HAVE_DICE_SIGMOID_SIMD

// losses/math.h's dice_sigmoid_eighths of 16 floats.
template <typename S>
inline typename S::F dice_sigmoid16(typename S::F x) {
  using F = typename S::F;
  const F one = S::set1(1.0f);
  // clamp to [-88, 86] (min(c, v) and max(c, v) keep a NaN v)
  const F xc = S::max(S::set1(-88.0f), S::min(S::set1(86.0f), x));
  const F magic = S::set1(12582912.0f);
  const F t = S::fmadd(xc, S::set1(-11.5415603271f), magic);
  const F n = S::sub(t, magic);
  F r = S::fnmsub(n, S::set1(0.086669921875f), xc);  // -(n ln2_8_hi) - xc
  r = S::fmadd(n, S::set1(2.6524305e-5f), r);
  // dice_sigmoid_exp_poly
  F p = S::fmadd(S::set1(4.166686534881592e-2f), r, S::set1(1.666802018880844e-1f));
  p = S::fmadd(p, r, S::set1(0.5f));
  p = S::fmadd(p, r, one);
  const F er = S::fmadd(p, r, one);
  // 2^(n / 8) from the table (a permute on t's last 3 bits) and t's bits
  // shifted into the exponent, applied exactly.
  const auto tb = S::bits(t);
  const F scale = S::from_bits(S::add(S::lookup8(kDiceExp2Eighths, tb), S::template shift_left<20>(tb)));
  return S::div(one, S::fmadd(er, scale, one));
}

// The element types these loops read: logits as float, bfloat16 or half
// (core/float16_bits.h's storage types), targets as those or as bytes
// (uint8, bool).
template <typename T>
constexpr bool kDiceSimdFloat =
    std::is_same_v<T, float> || std::is_same_v<T, bfloat16_storage> || std::is_same_v<T, half_storage>;
template <typename in_t, typename tgt_t>
constexpr bool kDiceSigmoidSimd = kDiceSimdFloat<in_t> && (kDiceSimdFloat<tgt_t> || std::is_same_v<tgt_t, uint8_t>);

// 16 elements as floats (every one exactly).
template <typename S, typename elem_t>
inline typename S::F dice_load16(const elem_t* p) {
  if constexpr (std::is_same_v<elem_t, float>) {
    return S::load(p);
  } else if constexpr (std::is_same_v<elem_t, uint8_t>) {
    return S::load_u8(p);
  } else if constexpr (std::is_same_v<elem_t, bfloat16_storage>) {
    return S::load_bf16(reinterpret_cast<const uint16_t*>(p));
  } else {
    static_assert(std::is_same_v<elem_t, half_storage>, "float, bytes, bfloat16 or half");
    return S::load_f16(reinterpret_cast<const uint16_t*>(p));
  }
}

// 16 floats stored as out_t: bfloat16 and half rounded as vectorizable_cast
// (core/dtypes.h) rounds them, to the same bits. kStream (float only): with
// a non-temporal store (p 64-byte aligned).
template <typename S, bool kStream, typename out_t>
inline void dice_store16(out_t* p, typename S::F v) {
  if constexpr (std::is_same_v<out_t, float>) {
    if constexpr (kStream) {
      S::stream(p, v);
    } else {
      S::store(p, v);
    }
  } else if constexpr (std::is_same_v<out_t, bfloat16_storage>) {
    S::store_bf16(reinterpret_cast<uint16_t*>(p), v);
  } else {
    static_assert(std::is_same_v<out_t, half_storage>, "float, bfloat16 or half");
    S::store_f16(reinterpret_cast<uint16_t*>(p), v);
  }
}

// block_stats_sigmoid's fused loop: I, P, T [16] += each pixel's share
// (add_plain_stats). Not squared, its factors are 0 and 1 and the shares
// are plain sums: p * (p * 0 + 1) + P rounds as p + P does.
template <typename S, bool kSquared, typename in_t, typename tgt_t>
inline void dice_stats_loop(const in_t* x, const tgt_t* t, int64_t blocks, float* I, float* P, float* Tt) {
  using F = typename S::F;
  F vi = S::load(I), vp = S::load(P), vt = S::load(Tt);
  for (int64_t k = 0; k < blocks; ++k, x += 16, t += 16) {
    const F p = dice_sigmoid16<S>(dice_load16<S>(x));
    const F tv = dice_load16<S>(t);
    vi = S::fmadd(p, tv, vi);
    if constexpr (kSquared) {  // p * (p * 1 + 0): p p
      vp = S::fmadd(p, p, vp);
      vt = S::fmadd(tv, tv, vt);
    } else {
      vp = S::add(vp, p);
      vt = S::add(vt, tv);
    }
  }
  S::store(I, vi);
  S::store(P, vp);
  S::store(Tt, vt);
}

template <typename S, typename in_t, typename tgt_t>
inline void dice_stats_simd(const in_t* x, const tgt_t* t, int64_t blocks, float sq, float* I, float* P,
                            float* Tt) {
  if (sq != 0.0f) {
    dice_stats_loop<S, true>(x, t, blocks, I, P, Tt);
  } else {
    dice_stats_loop<S, false>(x, t, blocks, I, P, Tt);
  }
}

// dice_stats_loop over a run of n_chunks chunks of chunk_blocks blocks each,
// lying one after another: each chunk's sums start from zero, as a call of
// dice_stats_simd per chunk would, and its lanes go to lanes[k][3][16] (I, P,
// T), the same bits. One call for the run: with the loop entered once per
// chunk of 4096 pixels, the binary forward of (16, 1, 512, 512) took 1.39 ms
// with AVX-512 and 1.73 ms with AVX2 on Zen 4, 1.19 and 1.49 ms this way
// (with the data in cache the two were within the noise).
template <typename S, bool kSquared, typename in_t, typename tgt_t>
inline void dice_stats_chunks_loop(const in_t* x, const tgt_t* t, int64_t n_chunks, int64_t chunk_blocks,
                                   float* lanes) {
  const typename S::F zero = S::set1(0.0f);
  for (int64_t k = 0; k < n_chunks; ++k, x += 16 * chunk_blocks, t += 16 * chunk_blocks, lanes += 48) {
    S::store(lanes, zero);
    S::store(lanes + 16, zero);
    S::store(lanes + 32, zero);
    dice_stats_loop<S, kSquared>(x, t, chunk_blocks, lanes, lanes + 16, lanes + 32);
  }
}

template <typename S, typename in_t, typename tgt_t>
inline void dice_stats_chunks_simd(const in_t* x, const tgt_t* t, int64_t n_chunks, int64_t chunk_blocks, float sq,
                                   float* lanes) {
  if (sq != 0.0f) {
    dice_stats_chunks_loop<S, true>(x, t, n_chunks, chunk_blocks, lanes);
  } else {
    dice_stats_chunks_loop<S, false>(x, t, n_chunks, chunk_blocks, lanes);
  }
}

// block_grad_sigmoid's fused loop: out = dice_pixel_grad_factor(a, b, t, p,
// sq) * p (1 - p), where that factor is a t + b (2 p sq + (1 - sq)): a t + b
// when not squared (the same rounding: b * 1 is exact); out has x's type.
// kStream: out (float) is written with non-temporal stores (out 64-byte
// aligned).
template <typename S, bool kSquared, bool kStream, typename in_t, typename tgt_t>
inline void dice_grad_loop(const in_t* x, const tgt_t* t, int64_t blocks, float a, float b, in_t* out) {
  using F = typename S::F;
  const F va = S::set1(a), vb = S::set1(b), one = S::set1(1.0f);
  for (int64_t k = 0; k < blocks; ++k, x += 16, t += 16, out += 16) {
    const F p = dice_sigmoid16<S>(dice_load16<S>(x));
    const F tv = dice_load16<S>(t);
    // 2 p sq + (1 - sq): 2 p squared, 1 not
    const F bdp = kSquared ? S::mul(vb, S::add(p, p)) : vb;
    const F g = S::fmadd(va, tv, bdp);
    const F v = S::mul(g, S::mul(p, S::sub(one, p)));
    dice_store16<S, kStream>(out, v);
  }
  if constexpr (kStream) stream_fence();
}

// stream: the caller's whole gradient is too large for the caches, so its
// lines are written without being read first (non-temporal stores), where
// out is float and aligned for them: a third less memory traffic in this
// pass. Not for a 16-bit gradient: there this loop is bound by its
// arithmetic, and streaming made no difference (AMD Zen 4, AVX2 and
// AVX-512).
template <typename S, typename in_t, typename tgt_t>
inline void dice_grad_simd(const in_t* x, const tgt_t* t, int64_t blocks, float sq, float a, float b, in_t* out,
                           bool stream) {
  if constexpr (std::is_same_v<in_t, float>) {
    if (stream && reinterpret_cast<uintptr_t>(out) % 64 == 0) {
      if (sq != 0.0f) {
        dice_grad_loop<S, true, true>(x, t, blocks, a, b, out);
      } else {
        dice_grad_loop<S, false, true>(x, t, blocks, a, b, out);
      }
      return;
    }
  }
  if (sq != 0.0f) {
    dice_grad_loop<S, true, false>(x, t, blocks, a, b, out);
  } else {
    dice_grad_loop<S, false, false>(x, t, blocks, a, b, out);
  }
}

#endif  // VO_HAVE_DICE_SIGMOID_SIMD

}  // namespace vo
