// CPU kernels of dice_loss and its backward.
//
// Forward: one pass over the inputs computes each class's statistics
// (losses/math.h) without storing probabilities: sigmoid or softmax per pixel,
// accumulated in 16 float lanes per class (vectorized over pixels) and then,
// per fixed chunk of pixels, in double; chunks are added in order, so the
// result does not depend on the thread count. Backward: a second pass
// recomputes the probabilities (nothing is saved but the [3, C] statistics)
// and applies the closed-form gradient, through the softmax or sigmoid.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

// Multiply-adds may fuse here (the rest of the library keeps
// -ffp-contract=off for bitwise parity with torchvision; Dice has no such
// contract, and FMA is both faster and more accurate). Before our headers:
// core/cpu_isa.h's wrappers must carry the same optimization options as the
// kernels, or GCC will not inline the kernels into them, and each
// instruction set's copy would call the baseline one.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include "core/cpu_isa.h"
#include "core/dtypes.h"
#include "core/huge_pages.h"
#include "core/macros.h"
#include "core/streaming_store.h"
#include "losses/args.h"
#include "losses/dice_reduction.h"
#include "losses/dice_sigmoid_simd.h"
#include "losses/math.h"


namespace vo {
namespace {

constexpr int64_t kLanes = 16;    // pixels per vector (core/simd.h's 16 lanes)
constexpr int64_t kChunk = 4096;  // pixels per task, a multiple of kLanes
// Chunks per call of the sigmoid statistics' vector loop (at most; see
// dice_stats_chunks_simd): 48 floats of lanes each, per class.
constexpr int64_t kChunkRun = 64;
// Pixels per tile in the common multiclass case (every pixel live, no
// ignore_index, not squared). The logits of one pixel lie a class plane
// apart (256 KB for 256 x 256 images), so each block of 16 pixels read a
// line from each of C planes, and the backward wrote one to each: 2C streams
// of single lines. perf put half of the 21-class backward's time on those
// loads and stores (AMD Zen 4). A tile reads and writes half a kilobyte of
// each plane at once: forward 7.0 -> 5.4 ms, backward 15 -> 12 ms there
// (8 x 21 x 256 x 256, 1 thread).
constexpr int64_t kTile = 128;
static_assert(kTile % kLanes == 0 && kChunk % kTile == 0, "tiles are whole blocks, chunks whole tiles");
// A gradient at least this large is written with non-temporal stores where
// the vector loops can. Lower than core/streaming_store.h's threshold for
// outputs (the last-level cache): the 16 MB gradient of a (16, 1, 512, 512)
// batch gained a third of the pass's traffic here, and whatever reads it
// next (the optimizer, the layer below) reads it from memory anyway; a
// smaller one is left in cache for that pass. Only into reused memory:
// worth_streaming() in core/streaming_store.h.
constexpr size_t kStreamBytes = size_t{4} << 20;
static_assert(kLanes == 16, "dice_sigmoid_simd.h's loops take blocks of 16 pixels");

// The kernels work on blocks of kLanes pixels, vectorized over the pixels.
// A block is read from the tensors directly (x with class stride xs, t with
// class stride ts) or, for the last, partial block, from a padded copy whose
// padding is marked dead (live = 0).
template <typename T>
struct PixelBlock {
  const T* live;  // 1 for a real pixel, 0 for padding
  bool has_ignore;
  T ignore;
};

// Each of W pixels' largest logit over the C classes (a NaN one is passed
// over here; its exp is NaN all the same).
template <typename in_t, typename T, int64_t W>
inline void pixel_max(const in_t* __restrict__ x, int64_t xs, int64_t C, T* __restrict__ mx) {
  for (int64_t j = 0; j < W; ++j) mx[j] = -INFINITY;
  // omp simd: without it GCC unrolls the 16 lanes of the max into scalar code.
  for (int64_t c = 0; c < C; ++c) {
    VO_SIMD
    for (int64_t j = 0; j < W; ++j) {
      const T v = vectorizable_cast<T>(x[c * xs + j]);
      mx[j] = mx[j] < v ? v : mx[j];
    }
  }
}

// Softmax (or the probabilities as given) of W pixels (one block, or a tile
// of the common multiclass case), all C classes: prob [C][W] gets
// exp(x - max), and inv [W] the reciprocal of each pixel's sum, by which the
// callers scale as they read (one pass over the block fewer); probabilities
// as given come with inv = 1 (exact).
template <typename in_t, typename T, int64_t W = kLanes>
void block_softmax(const in_t* __restrict__ x, int64_t xs, int64_t C, bool from_logits,
                                       T* __restrict__ prob, T* __restrict__ inv) {
  if (!from_logits) {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t j = 0; j < W; ++j) prob[c * W + j] = vectorizable_cast<T>(x[c * xs + j]);
    for (int64_t j = 0; j < W; ++j) inv[j] = T(1);
    return;
  }
  T mx[W], sum[W];
  pixel_max<in_t, T, W>(x, xs, C, mx);
  for (int64_t j = 0; j < W; ++j) sum[j] = T(0);
  for (int64_t c = 0; c < C; ++c) {
    VO_SIMD
    for (int64_t j = 0; j < W; ++j) {
      const T e = dice_softmax_exp(vectorizable_cast<T>(x[c * xs + j]) - mx[j]);  // x - max <= 0, or NaN
      prob[c * W + j] = e;
      sum[j] += e;
    }
  }
  for (int64_t j = 0; j < W; ++j) inv[j] = T(1) / sum[j];
}

// Labels as T (class ids are far below 2^24), so that the class loops
// compare and blend in one lane width, and each pixel's validity as a 0/1
// factor (live, and not ignore_index).
template <typename tgt_t, typename T>
inline void block_labels(const tgt_t* __restrict__ t, PixelBlock<T> pb, T* __restrict__ label, T* __restrict__ valid) {
  for (int64_t j = 0; j < kLanes; ++j) {
    label[j] = static_cast<T>(static_cast<int64_t>(t[j]));
    const T ignored = (pb.has_ignore && label[j] == pb.ignore) ? T(1) : T(0);
    valid[j] = pb.live[j] * (T(1) - ignored);
  }
}

// Statistics of one multiclass block into acc [3][C][kLanes]. kPlain: every
// pixel live, no ignore_index and not squared (the common case): each
// pixel adds to I and T of its own class only, so those two are updated at
// its label (one scattered add a pixel, in its own lane), not by a compare
// and two sums in every class; the lane sums are the same (the other
// classes' terms are zeros). P, a sum over every class, stays vectorized.
// kPlain works on W pixels (a tile, or one block), added block by block
// into the same 16 lanes: each lane's sum is the same sequence of additions
// as block by block.
template <typename in_t, typename tgt_t, typename T, bool kPlain = false, int64_t W = kLanes>
void block_stats_multiclass(const in_t* __restrict__ x, int64_t xs, const tgt_t* __restrict__ t,
                                                int64_t C, bool from_logits, bool squared, PixelBlock<T> pb,
                                                T* __restrict__ acc, T* __restrict__ prob) {
  static_assert(kPlain || W == kLanes, "only the common case works on tiles");
  T inv[W], valid[kLanes], label[kLanes];
  block_softmax<in_t, T, W>(x, xs, C, from_logits, prob, inv);
  if constexpr (kPlain) {
    for (int64_t c = 0; c < C; ++c) {
      T* __restrict__ P = acc + (C + c) * kLanes;
      const T* __restrict__ e = prob + c * W;
      for (int64_t k = 0; k < W; k += kLanes) {
        VO_SIMD
        for (int64_t j = 0; j < kLanes; ++j) P[j] += e[k + j] * inv[k + j];
      }
    }
    // labels were checked to lie in [0, C) (checked_targets); read from
    // the targets, not from label (a vector just stored: reading its lanes
    // back one at a time stalls on the store)
    for (int64_t j = 0; j < W; ++j) {
      const int64_t c = static_cast<int64_t>(t[j]);
      acc[c * kLanes + j % kLanes] += prob[c * W + j] * inv[j];
      acc[(2 * C + c) * kLanes + j % kLanes] += T(1);
    }
    return;
  }
  block_labels(t, pb, label, valid);
  // squared as a 0/1 factor, not a select on a loop-invariant flag (which
  // GCC does not vectorize well).
  const T sq = squared ? T(1) : T(0);
  for (int64_t c = 0; c < C; ++c) {
    T* I = acc + c * kLanes;
    T* P = acc + (C + c) * kLanes;
    T* Tt = acc + (2 * C + c) * kLanes;
    const T* e = prob + c * kLanes;
    const T cf = static_cast<T>(c);
    VO_SIMD
    for (int64_t j = 0; j < kLanes; ++j) {
      const T p = e[j] * inv[j];
      const T is_c = label[j] == cf ? valid[j] : T(0);
      I[j] += p * is_c;
      P[j] += valid[j] * (p * (p * sq + (T(1) - sq)));
      Tt[j] += is_c;
    }
  }
}

// sigmoid of one block, or the probabilities as given.
template <typename in_t, typename T>
inline void block_probabilities(const in_t* __restrict__ x, bool from_logits, T* __restrict__ prob) {
  if (from_logits) {
    for (int64_t j = 0; j < kLanes; ++j) prob[j] = dice_sigmoid(vectorizable_cast<T>(x[j]));
  } else {
    for (int64_t j = 0; j < kLanes; ++j) prob[j] = vectorizable_cast<T>(x[j]);
  }
}

// One live pixel's share of I, P and T (squared a 0/1 factor).
template <typename T>
VO_HOST_DEVICE_INLINE void add_plain_stats(T p, T tv, T sq, T& I, T& P, T& Tt) {
  I += p * tv;
  P += p * (p * sq + (T(1) - sq));
  Tt += tv * (tv * sq + (T(1) - sq));
}

// Statistics of one block of one class (binary, multilabel) into I, P, T [kLanes].
// kPlain: every pixel live and no ignore_index (the common case), so the
// validity factors drop out of the loop.
template <typename in_t, typename tgt_t, typename T, bool kPlain = false>
void block_stats_sigmoid(const in_t* __restrict__ x, const tgt_t* __restrict__ t, int64_t blocks,
                                             bool from_logits, bool squared, PixelBlock<T> pb, T* __restrict__ I,
                                             T* __restrict__ P, T* __restrict__ Tt) {
  const T check_ignore = pb.has_ignore ? T(1) : T(0);
  const T sq = squared ? T(1) : T(0);
  if constexpr (kPlain) {
    if (from_logits) {  // the sigmoid fused in: no round trip through memory
#ifdef VO_HAVE_DICE_SIGMOID_SIMD
      if constexpr (kDiceSigmoidSimd<simd_storage_t<in_t>, simd_storage_t<tgt_t>> && std::is_same_v<T, float>) {
        if (simd_available()) {
          with_simd([&](auto s) {
            dice_stats_simd<decltype(s)>(simd_storage_ptr(x), simd_storage_ptr(t), blocks, sq, I, P, Tt);
          });
          return;
        }
      }
#endif
      for (int64_t k = 0; k < blocks; ++k, x += kLanes, t += kLanes) {
        VO_SIMD
        for (int64_t j = 0; j < kLanes; ++j)
          add_plain_stats(dice_sigmoid(vectorizable_cast<T>(x[j])), vectorizable_cast<T>(t[j]), sq, I[j], P[j], Tt[j]);
      }
      return;
    }
  }
  for (int64_t k = 0; k < blocks; ++k, x += kLanes, t += kLanes) {
    // The probabilities first, with the flag tested outside the loop: GCC
    // vectorizes neither a select on it nor the fused loop.
    T prob[kLanes];
    block_probabilities(x, from_logits, prob);
    if constexpr (kPlain) {
      VO_SIMD
      for (int64_t j = 0; j < kLanes; ++j) add_plain_stats(prob[j], vectorizable_cast<T>(t[j]), sq, I[j], P[j], Tt[j]);
      continue;
    }
    for (int64_t j = 0; j < kLanes; ++j) {
      const T tv = vectorizable_cast<T>(t[j]), p = prob[j];
      const T ignored = tv == pb.ignore ? check_ignore : T(0);
      const T valid = pb.live[j] * (T(1) - ignored);
      const T pp = p * p, tt = tv * tv;
      I[j] += valid * p * tv;
      P[j] += valid * (squared ? pp : p);
      Tt[j] += valid * (squared ? tt : tv);
    }
  }
}

// The padded copy of a partial block: m real pixels of C classes.
template <typename in_t, typename tgt_t, typename T>
struct TailBlock {
  // Arrays, not std::vector: tgt_t may be bool.
  std::unique_ptr<in_t[]> xbuf;
  std::unique_ptr<tgt_t[]> tbuf;
  T live[kLanes];
  TailBlock(const in_t* xs, int64_t x_stride, const tgt_t* ts, int64_t t_stride, int64_t rows_x, int64_t rows_t,
            int64_t m)
      : xbuf(new in_t[rows_x * kLanes]), tbuf(new tgt_t[rows_t * kLanes]) {
    for (int64_t r = 0; r < rows_x; ++r)
      for (int64_t j = 0; j < kLanes; ++j) xbuf[r * kLanes + j] = j < m ? xs[r * x_stride + j] : in_t(0);
    for (int64_t r = 0; r < rows_t; ++r)
      for (int64_t j = 0; j < kLanes; ++j) tbuf[r * kLanes + j] = j < m ? ts[r * t_stride + j] : tgt_t(0);
    for (int64_t j = 0; j < kLanes; ++j) live[j] = j < m ? T(1) : T(0);
  }
  const in_t* x() const { return xbuf.get(); }
  const tgt_t* t() const { return tbuf.get(); }
};

template <typename T>
const T* all_live() {
  static const std::vector<T> ones(kLanes, T(1));
  return ones.data();
}

// float16 logits of the common multiclass case (from logits, no
// ignore_index, not squared) are staged as floats, a tile at a time, where
// core/simd.h has F16C (stage_half_logits): those loops read each logit
// twice (the max, then the exp), and half_to_float's integer arithmetic,
// which GCC vectorizes without F16C, cost more than the softmax itself.
// (8, 21, 256, 256) float16, 1 thread, AMD Zen 4: forward 12.8 -> 7.1 ms
// and backward 19.5 -> 10.8 ms with AVX2 (float32: 6.1 and 12.6 ms), 7.5 ->
// 5.9 and 11.8 -> 9.2 ms with AVX-512. The same values (the conversion is
// exact) through the same arithmetic: the same bits.
template <typename in_t, typename T>
constexpr bool kStagesHalf = std::is_same_v<in_t, c10::Half> && std::is_same_v<T, float>;

template <typename in_t, typename T>
bool stages_half_logits() {
#ifdef VO_HAVE_SIMD16
  if constexpr (kStagesHalf<in_t, T>) return simd_available();
#endif
  return false;
}

#ifdef VO_HAVE_SIMD16
// float16 logits of W pixels of C classes (class stride xs) as floats in
// staged [C][W] (load_f16: exact, as vectorizable_cast).
template <typename V, int64_t W>
inline void stage_half_logits(const c10::Half* x, int64_t xs, int64_t C, float* staged) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t j = 0; j < W; j += kLanes)
      V::store(staged + c * W + j, V::load_f16(reinterpret_cast<const uint16_t*>(x + c * xs + j)));
}
#endif

// Statistics of pixels [s0, s0 + n) of image b into acc [3][C][kLanes].
// staged: C kTile floats of scratch for float16 logits (else unused).
template <typename in_t, typename tgt_t, typename T>
void accumulate(const in_t* x, const tgt_t* t, const DiceShape& sh, int64_t b, int64_t s0, int64_t n,
                bool from_logits, bool squared, std::optional<int64_t> ignore, T* acc, T* prob, float* staged) {
  const int64_t C = sh.C, S = sh.S;
  PixelBlock<T> pb{all_live<T>(), ignore.has_value(), static_cast<T>(ignore.value_or(0))};
  const int64_t full = n / kLanes * kLanes;
  if (sh.mode == DiceMode::Multiclass) {
    const in_t* xb = x + b * C * S;
    const tgt_t* tb = t + b * S;
    // One instruction-set dispatch for the whole run of blocks: its wrapper
    // inlines the block kernel into the loop.
    const bool plain = !pb.has_ignore && !squared;
    if (plain && from_logits && stages_half_logits<in_t, T>()) {
#ifdef VO_HAVE_SIMD16
      if constexpr (kStagesHalf<in_t, T>) {
        with_simd([&](auto v) {
          using V = decltype(v);
          int64_t j0 = 0;
          for (; j0 + kTile <= full; j0 += kTile) {
            stage_half_logits<V, kTile>(xb + s0 + j0, S, C, staged);
            block_stats_multiclass<float, tgt_t, T, true, kTile>(staged, kTile, tb + s0 + j0, C, from_logits, squared,
                                                                 pb, acc, prob);
          }
          for (; j0 < full; j0 += kLanes) {
            stage_half_logits<V, kLanes>(xb + s0 + j0, S, C, staged);
            block_stats_multiclass<float, tgt_t, T, true>(staged, kLanes, tb + s0 + j0, C, from_logits, squared, pb,
                                                          acc, prob);
          }
        });
      }
#endif
    } else if (plain) {
      with_cpu_isa([&] {
        int64_t j0 = 0;
        for (; j0 + kTile <= full; j0 += kTile)
          block_stats_multiclass<in_t, tgt_t, T, true, kTile>(xb + s0 + j0, S, tb + s0 + j0, C, from_logits, squared,
                                                              pb, acc, prob);
        for (; j0 < full; j0 += kLanes)
          block_stats_multiclass<in_t, tgt_t, T, true>(xb + s0 + j0, S, tb + s0 + j0, C, from_logits, squared, pb, acc,
                                                       prob);
      });
    } else {
      with_cpu_isa([&] {
        for (int64_t j0 = 0; j0 < full; j0 += kLanes)
          block_stats_multiclass<in_t, tgt_t, T>(xb + s0 + j0, S, tb + s0 + j0, C, from_logits, squared, pb, acc,
                                                 prob);
      });
    }
    // The last, partial block (here and in the backward) runs the
    // baseline build of the generic block kernel, not one per instruction
    // set: at most one block in a chunk, and each instruction-set copy of
    // every kernel is compile time (three per pair of dtypes).
    if (full < n) {
      const TailBlock<in_t, tgt_t, T> tail(xb + s0 + full, S, tb + s0 + full, S, C, 1, n - full);
      PixelBlock<T> tp = pb;
      tp.live = tail.live;
      block_stats_multiclass<in_t, tgt_t, T>(tail.x(), kLanes, tail.t(), C, from_logits, squared, tp, acc, prob);
    }
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    const in_t* xc = x + (b * C + c) * S + s0;
    const tgt_t* tc = t + (b * C + c) * S + s0;
    T* I = acc + c * kLanes;
    T* P = acc + (C + c) * kLanes;
    T* Tt = acc + (2 * C + c) * kLanes;
    if (pb.has_ignore) {
      with_cpu_isa([&] { block_stats_sigmoid<in_t, tgt_t, T>(xc, tc, full / kLanes, from_logits, squared, pb, I, P, Tt); });
    } else {
      with_cpu_isa([&] { block_stats_sigmoid<in_t, tgt_t, T, true>(xc, tc, full / kLanes, from_logits, squared, pb, I, P, Tt); });
    }
    if (full < n) {
      const TailBlock<in_t, tgt_t, T> tail(xc + full, 0, tc + full, 0, 1, 1, n - full);
      PixelBlock<T> tp = pb;
      tp.live = tail.live;
      block_stats_sigmoid<in_t, tgt_t, T>(tail.x(), tail.t(), 1, from_logits, squared, tp, I, P, Tt);
    }
  }
}

// Backward of W pixels (a tile, or one block) in the common multiclass case
// from logits: out [C][os-strided]. With g_c = a_c [label == c] + b_c, the
// softmax's sum_k g_k p_k is (sum_k b_k e_k + a_label e_label) / sum_k e_k,
// so the sum over classes comes with the exponentials, and one more pass
// writes p_c (g_c - that sum): no buffer of g, one pass over the classes
// fewer than block_grad_multiclass.
template <int64_t W, typename in_t, typename tgt_t, typename T, typename out_t>
void tile_grad_softmax_plain(const in_t* __restrict__ x, int64_t xs, const tgt_t* __restrict__ t, int64_t C,
                             const T* __restrict__ a, const T* __restrict__ bb, T* __restrict__ e,
                             out_t* __restrict__ out, int64_t os) {
  T mx[W], sum[W], sb[W], dot[W], label[W];
  pixel_max<in_t, T, W>(x, xs, C, mx);
  for (int64_t j = 0; j < W; ++j) {
    sum[j] = T(0);
    sb[j] = T(0);
  }
  for (int64_t c = 0; c < C; ++c) {
    const T bc = bb[c];
    VO_SIMD
    for (int64_t j = 0; j < W; ++j) {
      const T ev = dice_softmax_exp(vectorizable_cast<T>(x[c * xs + j]) - mx[j]);  // x - max <= 0, or NaN
      e[c * W + j] = ev;
      sum[j] += ev;
      sb[j] += bc * ev;
    }
  }
  // labels were checked to lie in [0, C) (checked_targets)
  for (int64_t j = 0; j < W; ++j) {
    const int64_t l = static_cast<int64_t>(t[j]);
    label[j] = static_cast<T>(l);
    sum[j] = T(1) / sum[j];
    dot[j] = (sb[j] + a[l] * e[l * W + j]) * sum[j];
  }
  for (int64_t c = 0; c < C; ++c) {
    const T cf = static_cast<T>(c), ac = a[c], bc = bb[c];
    VO_SIMD
    for (int64_t j = 0; j < W; ++j) {
      const T p = e[c * W + j] * sum[j];
      const T g = (label[j] == cf ? ac : T(0)) + bc;
      out[c * os + j] = vectorizable_cast<out_t>(p * (g - dot[j]));
    }
  }
}

// Backward of one multiclass block: out [C][os-strided] from prob and
// targets (the gradient tensor itself for a whole block, with os its class
// stride: no copy through a buffer). kPlain as in block_stats_multiclass.
template <typename in_t, typename tgt_t, typename T, typename out_t, bool kPlain = false>
void block_grad_multiclass(const in_t* __restrict__ x, int64_t xs, const tgt_t* __restrict__ t,
                                               int64_t C, bool from_logits, bool squared, PixelBlock<T> pb,
                                               const T* __restrict__ a, const T* __restrict__ bb, T* __restrict__ prob,
                                               T* __restrict__ g, out_t* __restrict__ out, int64_t os) {
  if constexpr (kPlain) {
    if (from_logits) {  // the same arithmetic as whole tiles
      tile_grad_softmax_plain<kLanes, in_t, tgt_t, T, out_t>(x, xs, t, C, a, bb, prob, out, os);
      return;
    }
  }
  T inv[kLanes], valid[kLanes], label[kLanes], dot[kLanes];
  block_softmax<in_t, T>(x, xs, C, from_logits, prob, inv);
  block_labels(t, pb, label, valid);
  for (int64_t j = 0; j < kLanes; ++j) dot[j] = T(0);
  const T sq = squared ? T(1) : T(0);
  for (int64_t c = 0; c < C; ++c) {
    const T cf = static_cast<T>(c), ac = a[c], bc = bb[c];
    VO_SIMD
    for (int64_t j = 0; j < kLanes; ++j) {
      const T p = prob[c * kLanes + j] * inv[j];
      prob[c * kLanes + j] = p;  // normalized for the pass below
      const T is_c = label[j] == cf ? T(1) : T(0);
      const T gv = kPlain ? ac * is_c + bc : valid[j] * dice_pixel_grad_factor(ac, bc, is_c, p, sq);
      g[c * kLanes + j] = gv;
      dot[j] += gv * p;
    }
  }
  // through the softmax: p_c (g_c - sum_k g_k p_k)
  if (from_logits) {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t j = 0; j < kLanes; ++j)
        out[c * os + j] = vectorizable_cast<out_t>(prob[c * kLanes + j] * (g[c * kLanes + j] - dot[j]));
  } else {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t j = 0; j < kLanes; ++j) out[c * os + j] = vectorizable_cast<out_t>(g[c * kLanes + j]);
  }
}

template <typename in_t, typename tgt_t, typename T, typename out_t, bool kPlain = false>
void block_grad_sigmoid(const in_t* __restrict__ x, const tgt_t* __restrict__ t, int64_t blocks,
                                            bool from_logits, bool squared, PixelBlock<T> pb, T a, T bb,
                                            out_t* __restrict__ out, bool stream = false) {
  const T check_ignore = pb.has_ignore ? T(1) : T(0);
  const T through = from_logits ? T(1) : T(0);
  const T sq = squared ? T(1) : T(0);
  if constexpr (kPlain) {
    if (from_logits) {  // the sigmoid fused in
#ifdef VO_HAVE_DICE_SIGMOID_SIMD
      if constexpr (kDiceSigmoidSimd<simd_storage_t<in_t>, simd_storage_t<tgt_t>> && std::is_same_v<T, float> &&
                    std::is_same_v<out_t, in_t>) {
        if (simd_available()) {
          with_simd([&](auto s) {
            dice_grad_simd<decltype(s)>(simd_storage_ptr(x), simd_storage_ptr(t), blocks, sq, a, bb,
                                        simd_storage_ptr(out), stream);
          });
          return;
        }
      }
#endif
      for (int64_t k = 0; k < blocks; ++k, x += kLanes, t += kLanes, out += kLanes) {
        VO_SIMD
        for (int64_t j = 0; j < kLanes; ++j) {
          const T tv = vectorizable_cast<T>(t[j]), p = dice_sigmoid(vectorizable_cast<T>(x[j]));
          out[j] = vectorizable_cast<out_t>(dice_pixel_grad_factor(a, bb, tv, p, sq) * (p * (T(1) - p)));
        }
      }
      return;
    }
  }
  for (int64_t k = 0; k < blocks; ++k, x += kLanes, t += kLanes, out += kLanes) {
    T prob[kLanes];
    block_probabilities(x, from_logits, prob);
    if constexpr (kPlain) {
      VO_SIMD
      for (int64_t j = 0; j < kLanes; ++j) {
        const T tv = vectorizable_cast<T>(t[j]), p = prob[j];
        const T gv = dice_pixel_grad_factor(a, bb, tv, p, sq);
        out[j] = vectorizable_cast<out_t>(gv * (through * p * (T(1) - p) + (T(1) - through)));
      }
      continue;
    }
    for (int64_t j = 0; j < kLanes; ++j) {
      const T tv = vectorizable_cast<T>(t[j]), p = prob[j];
      const T ignored = tv == pb.ignore ? check_ignore : T(0);
      const T gv = pb.live[j] * (T(1) - ignored) * dice_pixel_grad(a, bb, tv, p, squared);
      // through the sigmoid, p (1 - p), or not at all
      out[j] = vectorizable_cast<out_t>(gv * (through * p * (T(1) - p) + (T(1) - through)));
    }
  }
}

// The reduced loss, in dtype, from the statistics [3, C] (float64,
// contiguous): dice_reduction.h's loop as one lane.
at::Tensor dice_loss_from_stats(const at::Tensor& stats, const DiceParams& params,
                                const std::optional<at::Tensor>& weight, Reduction red, at::ScalarType dtype) {
  const int64_t C = stats.size(1);
  const at::Tensor w = weight ? weight->to(at::kDouble).contiguous() : at::Tensor();
  at::Tensor out = red == Reduction::None ? at::empty({C}, stats.options()) : at::empty({}, stats.options());
  double* o = out.data_ptr<double>();
  double sum = 0.0, wsum = 0.0;
  dice_loss_lane(stats.const_data_ptr<double>(), C, w.defined() ? w.const_data_ptr<double>() : nullptr, params, 0, 1,
                 red == Reduction::None ? o : nullptr, sum, wsum);
  if (red != Reduction::None) *o = red == Reduction::Sum ? sum : sum / wsum;
  return out.to(dtype);
}

// losses/args.h's dice_kernel_targets, and int64 masks of float32, bfloat16
// and half inputs converted to float32 too: the fused sigmoid loops
// (dice_sigmoid_simd.h) read float32, the inputs' 16-bit type and bytes,
// and their sigmoid (dice_sigmoid_eighths) rounds differently from the
// scalar loops' (dice_sigmoid), so int64 masks would otherwise give other
// bits than the same masks as uint8 or float32.
at::Tensor cpu_kernel_targets(const at::Tensor& t, const DiceShape& sh, at::ScalarType in_dtype) {
  const bool simd_logits = in_dtype == at::kFloat || in_dtype == at::kHalf || in_dtype == at::kBFloat16;
  if (sh.mode != DiceMode::Multiclass && simd_logits && t.scalar_type() == at::kLong) return t.to(at::kFloat);
  return dice_kernel_targets(t, sh, in_dtype);
}

std::tuple<at::Tensor, at::Tensor> dice_loss_cpu(const at::Tensor& inputs, const at::Tensor& targets,
                                                 std::string_view mode, bool from_logits, double smooth, double eps,
                                                 bool squared, std::optional<int64_t> ignore_index,
                                                 const std::optional<at::Tensor>& weight, bool log_loss,
                                                 std::string_view reduction) {
  constexpr const char* op = "dice_loss";
  const Reduction red = parse_reduction(reduction, op);
  const DiceShape sh = check_dice_args(inputs, targets, mode, weight, op);
  const DiceParams params{smooth, eps, squared, log_loss};
  at::Tensor stats = at::zeros({3, sh.C}, inputs.options().dtype(at::kDouble));
  const at::Tensor t = cpu_kernel_targets(checked_targets(targets, sh, ignore_index, op), sh, inputs.scalar_type());
  if (inputs.numel() > 0) {
    const at::Tensor x = inputs.contiguous();
    const int64_t chunks = (sh.S + kChunk - 1) / kChunk, tasks = sh.B * chunks;
    std::vector<double> partial(static_cast<size_t>(tasks) * 3 * sh.C, 0.0);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "dice_loss", [&] {
      using in_t = scalar_t;
      using T = at::opmath_type<in_t>;
      VO_DISPATCH_DICE_KERNEL_TARGETS(in_t, t.scalar_type(), [&] {
        const in_t* xp = x.data_ptr<in_t>();
        const tgt_t* tp = t.data_ptr<tgt_t>();
        at::parallel_for(0, tasks, 1, [&](int64_t k0, int64_t k1) {
          std::vector<T> acc(3 * sh.C * kLanes), prob(sh.C * kTile);
          std::vector<float> staged(std::is_same_v<in_t, c10::Half> ? sh.C * kTile : 0);
          // Task k's lanes (acc) summed in float64, lane by lane, into its partial.
          const auto one_chunk = [&](int64_t k) {
            const int64_t b = k / chunks, s0 = (k % chunks) * kChunk;
            std::fill(acc.begin(), acc.end(), T(0));
            accumulate<in_t, tgt_t, T>(xp, tp, sh, b, s0, std::min(kChunk, sh.S - s0), from_logits, squared,
                                       ignore_index, acc.data(), prob.data(), staged.data());
            double* out = partial.data() + k * 3 * sh.C;
            for (int64_t r = 0; r < 3 * sh.C; ++r) {
              double v = 0.0;
              for (int64_t j = 0; j < kLanes; ++j) v += static_cast<double>(acc[r * kLanes + j]);
              out[r] = v;
            }
          };
          int64_t k = k0;
#ifdef VO_HAVE_DICE_SIGMOID_SIMD
          if constexpr (kDiceSigmoidSimd<simd_storage_t<in_t>, simd_storage_t<tgt_t>> && std::is_same_v<T, float>) {
            if (sh.mode != DiceMode::Multiclass && !ignore_index && from_logits && simd_available()) {
              // The common sigmoid case: each class's run of whole chunks
              // of one image through the vector loop in one call, then
              // each chunk's lanes summed as above (the same partials).
              const int64_t whole = sh.S / kChunk, C = sh.C;
              std::vector<float> lanes(static_cast<size_t>(kChunkRun * C * 48));
              while (k < k1) {
                const int64_t b = k / chunks, ch = k % chunks;
                const int64_t n = std::min({k1 - k, whole - ch, kChunkRun});
                if (n <= 0) {  // the image's last, partial chunk
                  one_chunk(k++);
                  continue;
                }
                for (int64_t c = 0; c < C; ++c) {
                  const int64_t o = (b * C + c) * sh.S + ch * kChunk;
                  with_simd([&](auto s) {
                    dice_stats_chunks_simd<decltype(s)>(simd_storage_ptr(xp + o), simd_storage_ptr(tp + o), n,
                                                        kChunk / kLanes, squared ? 1.0f : 0.0f,
                                                        lanes.data() + c * n * 48);
                  });
                }
                for (int64_t i = 0; i < n; ++i) {
                  double* out = partial.data() + (k + i) * 3 * C;
                  for (int64_t c = 0; c < C; ++c)
                    for (int64_t q = 0; q < 3; ++q) {
                      const float* l = lanes.data() + (c * n + i) * 48 + q * kLanes;
                      double v = 0.0;
                      for (int64_t j = 0; j < kLanes; ++j) v += static_cast<double>(l[j]);
                      out[q * C + c] = v;
                    }
                }
                k += n;
              }
            }
          }
#endif
          for (; k < k1; ++k) one_chunk(k);
        });
      });
    });
    double* st = stats.data_ptr<double>();
    for (int64_t k = 0; k < tasks; ++k)
      for (int64_t r = 0; r < 3 * sh.C; ++r) st[r] += partial[k * 3 * sh.C + r];
  }
  at::Tensor loss = dice_loss_from_stats(stats, params, weight, red, inputs.scalar_type());
  return {loss, stats};
}

at::Tensor dice_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& inputs, const at::Tensor& targets,
                                  const at::Tensor& stats, std::string_view mode, bool from_logits, double smooth,
                                  double eps, bool squared, std::optional<int64_t> ignore_index,
                                  const std::optional<at::Tensor>& weight, bool log_loss,
                                  std::string_view reduction) {
  constexpr const char* op = "_dice_loss_backward";
  const Reduction red = parse_reduction(reduction, op);
  const DiceShape sh = check_dice_backward_args(grad, inputs, targets, stats, mode, weight, red, op);
  const DiceParams params{smooth, eps, squared, log_loss};
  at::Tensor gx = at::empty(inputs.sizes(), inputs.options());
  if (inputs.numel() == 0) return gx;
  advise_huge_pages(gx);
  // Each class's gradient coefficients (dice_reduction.h's loop as one lane).
  std::vector<double> av(static_cast<size_t>(sh.C)), bv(static_cast<size_t>(sh.C));
  {
    const at::Tensor st = stats.contiguous();
    const at::Tensor w = weight ? weight->to(at::kDouble).contiguous() : at::Tensor();
    const at::Tensor g = grad.to(at::kDouble).contiguous();
    const double* wp = w.defined() ? w.const_data_ptr<double>() : nullptr;
    const double divisor = red == Reduction::Mean ? dice_weight_lane(wp, sh.C, 0, 1) : 1.0;
    dice_coefficients_lane(st.const_data_ptr<double>(), sh.C, wp, g.const_data_ptr<double>(),
                           red == Reduction::None ? 1 : 0, divisor, params, 0, 1, av.data(), bv.data());
  }
  const double* ap = av.data();
  const double* bp = bv.data();
  const at::Tensor x = inputs.contiguous();
  const at::Tensor t = cpu_kernel_targets(targets.contiguous(), sh, inputs.scalar_type());
  const int64_t C = sh.C, S = sh.S;
  const int64_t chunks = (S + kChunk - 1) / kChunk, tasks = sh.B * chunks;
  const bool stream = worth_streaming(gx.data_ptr(), gx.nbytes(), kStreamBytes);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "_dice_loss_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    using in_t = scalar_t;
    VO_DISPATCH_DICE_KERNEL_TARGETS(in_t, t.scalar_type(), [&] {
      const in_t* xp = x.data_ptr<in_t>();
      const tgt_t* tp = t.data_ptr<tgt_t>();
      in_t* gp = gx.data_ptr<in_t>();
      std::vector<T> a(C), bb(C);
      for (int64_t c = 0; c < C; ++c) {
        a[c] = static_cast<T>(ap[c]);
        bb[c] = static_cast<T>(bp[c]);
      }
      at::parallel_for(0, tasks, 1, [&](int64_t k0, int64_t k1) {
        std::vector<T> prob(C * kTile), g(C * kLanes), out(C * kLanes);
        // float16: the logits and the gradient of a tile staged as floats
        std::vector<float> staged(std::is_same_v<in_t, c10::Half> ? 2 * C * kTile : 0);
        PixelBlock<T> pb{all_live<T>(), ignore_index.has_value(), static_cast<T>(ignore_index.value_or(0))};
        for (int64_t k = k0; k < k1; ++k) {
          const int64_t b = k / chunks, s_begin = (k % chunks) * kChunk, s_end = std::min(S, s_begin + kChunk);
          if (sh.mode != DiceMode::Multiclass) {
            const int64_t n = s_end - s_begin, full = n / kLanes * kLanes;
            for (int64_t c = 0; c < C; ++c) {
              const int64_t o = (b * C + c) * S + s_begin;
              if (pb.has_ignore) {
                with_cpu_isa([&] { block_grad_sigmoid<in_t, tgt_t, T, in_t>(xp + o, tp + o, full / kLanes, from_logits, squared, pb,
                                                         a[c], bb[c], gp + o); });
              } else {
                with_cpu_isa([&] { block_grad_sigmoid<in_t, tgt_t, T, in_t, true>(xp + o, tp + o, full / kLanes, from_logits, squared,
                                                               pb, a[c], bb[c], gp + o, stream); });
              }
              if (full < n) {
                const TailBlock<in_t, tgt_t, T> tail(xp + o + full, 0, tp + o + full, 0, 1, 1, n - full);
                PixelBlock<T> tpb = pb;
                tpb.live = tail.live;
                block_grad_sigmoid<in_t, tgt_t, T, T>(tail.x(), tail.t(), 1, from_logits, squared, tpb, a[c], bb[c],
                                                      out.data());
                for (int64_t j = 0; j < n - full; ++j) gp[o + full + j] = static_cast<in_t>(out[j]);
              }
            }
            continue;
          }
          // Multiclass: whole blocks straight into the gradient, under one
          // instruction-set dispatch; a last partial block through a buffer.
          const in_t* xs = xp + b * C * S;
          const tgt_t* ts = tp + b * S;
          const int64_t full_end = s_begin + (s_end - s_begin) / kLanes * kLanes;
          const bool plain = !pb.has_ignore && !squared;
          if (plain && from_logits && stages_half_logits<in_t, T>()) {
#ifdef VO_HAVE_SIMD16
            if constexpr (kStagesHalf<in_t, T>) {
              // as the forward: the logits staged as floats, and the
              // gradient written from floats with store_f16 (half_bits'
              // rounding)
              float* xf = staged.data();
              float* gf = staged.data() + C * kTile;
              with_simd([&](auto v) {
                using V = decltype(v);
                const auto tile = [&](auto w, int64_t s) {
                  constexpr int64_t W = decltype(w)::value;
                  stage_half_logits<V, W>(xs + s, S, C, xf);
                  tile_grad_softmax_plain<W, float, tgt_t, T, float>(xf, W, ts + s, C, a.data(), bb.data(),
                                                                     prob.data(), gf, W);
                  for (int64_t c = 0; c < C; ++c)
                    for (int64_t j = 0; j < W; j += kLanes)
                      V::store_f16(reinterpret_cast<uint16_t*>(gp + (b * C + c) * S + s + j), V::load(gf + c * W + j));
                };
                int64_t s = s_begin;
                for (; s + kTile <= full_end; s += kTile) tile(std::integral_constant<int64_t, kTile>{}, s);
                for (; s < full_end; s += kLanes) tile(std::integral_constant<int64_t, kLanes>{}, s);
              });
            }
#endif
          } else if (plain) {
            with_cpu_isa([&] {
              int64_t s = s_begin;
              if (from_logits)
                for (; s + kTile <= full_end; s += kTile)
                  tile_grad_softmax_plain<kTile, in_t, tgt_t, T, in_t>(xs + s, S, ts + s, C, a.data(), bb.data(),
                                                                      prob.data(), gp + b * C * S + s, S);
              for (; s < full_end; s += kLanes)
                block_grad_multiclass<in_t, tgt_t, T, in_t, true>(xs + s, S, ts + s, C, from_logits, squared, pb,
                                                                  a.data(), bb.data(), prob.data(), g.data(),
                                                                  gp + b * C * S + s, S);
            });
          } else {
            with_cpu_isa([&] {
              for (int64_t s = s_begin; s < full_end; s += kLanes)
                block_grad_multiclass<in_t, tgt_t, T, in_t>(xs + s, S, ts + s, C, from_logits, squared, pb, a.data(),
                                                            bb.data(), prob.data(), g.data(), gp + b * C * S + s, S);
            });
          }
          if (full_end < s_end) {
            const int64_t m = s_end - full_end;
            const TailBlock<in_t, tgt_t, T> tail(xs + full_end, S, ts + full_end, S, C, 1, m);
            PixelBlock<T> tpb = pb;
            tpb.live = tail.live;
            block_grad_multiclass<in_t, tgt_t, T, T>(tail.x(), kLanes, tail.t(), C, from_logits, squared, tpb, a.data(),
                                                     bb.data(), prob.data(), g.data(), out.data(), kLanes);
            for (int64_t c = 0; c < C; ++c)
              for (int64_t j = 0; j < m; ++j) gp[(b * C + c) * S + full_end + j] = static_cast<in_t>(out[c * kLanes + j]);
          }
        }
      });
    });
  });
  return gx;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("dice_loss", &vo::dice_loss_cpu);
  m.impl("_dice_loss_backward", &vo::dice_loss_backward_cpu);
}
