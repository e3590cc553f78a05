// Forward suppression for the CPU NMS (nms_kernel.cpp's GreedyNms::forward),
// written with AVX-512 intrinsics: each kept box strikes, 16 lanes at a
// time, the live candidates it suppresses. The per-lane test is
// nms_scan_avx512.h's: common/nms.h's inter/union, the same float margins,
// and the lanes between them decided exactly.
#pragma once

#include <cstdint>

#include "../common/nms.h"
#include "nms_scan_avx512.h"

namespace vo {

#ifdef VO_HAVE_NMS_SCAN_AVX512

// (GCC 12 warns of an undefined first operand inside its own intrinsics.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// One kept box a strikes the live candidates of words [g0, words) (16 per
// word; none live before g0): clears the live bits of those it surely
// suppresses (above the upper margin) and appends each word with lanes
// between the margins, as g << 16 | lanes, to undecided (room for `words`
// entries). Returns how many it struck; with key, also the least key of
// the candidates left live in *least (lanes between the margins counted as
// live). A function of its own so that its loop keeps everything in
// registers: inlined into the greedy loop, GCC spilled the word index and
// the counters, and every word waited on a store and a reload. No branch
// on the lanes either: where the kept box's copies sit among the
// candidates is random, and a branch on it mispredicted on most words.
template <bool kLeastKey>
__attribute__((target("avx512f"), noinline)) int64_t strike_avx512(const float* __restrict__ f,
                                                                   const uint32_t* __restrict__ key, int64_t cap,
                                                                   uint16_t* __restrict__ live, int64_t g0,
                                                                   int64_t words, const NmsBox<float>& a,
                                                                   float maybe_m, float above_m,
                                                                   uint32_t* __restrict__ undecided,
                                                                   int64_t* n_undecided, uint32_t* least) {
  __m512 one[5];
  broadcast_box(a, one);
  const __m512 maybe_v = _mm512_set1_ps(maybe_m), above_v = _mm512_set1_ps(above_m);
  __m512i least_v = _mm512_set1_epi32(-1);
  int64_t hit = 0, nu = 0;
  for (int64_t g = g0; g < words; ++g) {
    const unsigned word = live[g];
    __m512 inter, uni;
    inter_union16<true>(f, cap, 16 * g, one, inter, uni);  // nms_inter_union(kept, candidate)
    const __mmask16 maybe =
        _mm512_mask_cmp_ps_mask(static_cast<__mmask16>(word), inter, _mm512_mul_ps(maybe_v, uni), _CMP_GE_OQ);
    const unsigned sup = _mm512_mask_cmp_ps_mask(maybe, inter, _mm512_mul_ps(above_v, uni), _CMP_GT_OQ);
    const unsigned left = word & ~sup;
    live[g] = static_cast<uint16_t>(left);
    if constexpr (kLeastKey) {
      least_v = _mm512_mask_min_epu32(least_v, static_cast<__mmask16>(left), least_v,
                                      _mm512_loadu_si512(key + 16 * g));
    }
    hit += __builtin_popcount(sup);
    const unsigned between = static_cast<unsigned>(maybe) & ~sup;
    undecided[nu] = static_cast<uint32_t>(g << 16) | between;  // kept only when some lane is between
    nu += between != 0;
  }
  *n_undecided = nu;
  if constexpr (kLeastKey) *least = _mm512_reduce_min_epu32(least_v);
  return hit;
}

// The least key of the live candidates of words [g0, words).
__attribute__((target("avx512f"))) inline uint32_t least_live_key(const uint32_t* key, const uint16_t* live,
                                                                  int64_t g0, int64_t words) {
  __m512i least = _mm512_set1_epi32(-1);
  for (int64_t g = g0; g < words; ++g) {
    least = _mm512_mask_min_epu32(least, static_cast<__mmask16>(live[g]), least, _mm512_loadu_si512(key + 16 * g));
  }
  return _mm512_reduce_min_epu32(least);
}

// The first live candidate from word g0 on; with key, the first whose key
// is k. -1 if none.
__attribute__((target("avx512f"))) inline int64_t first_live(const uint32_t* key, const uint16_t* live, int64_t g0,
                                                             int64_t words, uint32_t k) {
  const __m512i kv = _mm512_set1_epi32(static_cast<int>(k));
  for (int64_t g = g0; g < words; ++g) {
    const unsigned m = key ? _mm512_mask_cmpeq_epu32_mask(static_cast<__mmask16>(live[g]),
                                                          _mm512_loadu_si512(key + 16 * g), kv)
                           : live[g];
    if (m) return 16 * g + __builtin_ctz(m);
  }
  return -1;
}

// Moves the live candidates to the front, in order: per word, the live
// lanes' fields, keys (when given) and positions, compressed (the stores
// reach at most the end of the word being read). Marks them live; returns
// how many.
__attribute__((target("avx512f"))) inline int64_t compact_live(float* f, uint32_t* key, int32_t* pos, int64_t cap,
                                                               uint16_t* live, int64_t words) {
  int64_t w = 0;
  for (int64_t g = 0; g < words; ++g) {
    const unsigned m = live[g];
    if (m == 0) continue;
    const int64_t j0 = 16 * g;
    const __mmask16 mk = static_cast<__mmask16>(m);
    for (int field = 0; field < 5; ++field) {
      _mm512_storeu_ps(f + field * cap + w, _mm512_maskz_compress_ps(mk, _mm512_loadu_ps(f + field * cap + j0)));
    }
    if (key) _mm512_storeu_si512(key + w, _mm512_maskz_compress_epi32(mk, _mm512_loadu_si512(key + j0)));
    _mm512_storeu_si512(pos + w, _mm512_maskz_compress_epi32(mk, _mm512_loadu_si512(pos + j0)));
    w += __builtin_popcount(m);
  }
  const int64_t full = w / 16;
  for (int64_t g = 0; g < full; ++g) live[g] = 0xFFFF;
  if (w % 16) live[full] = static_cast<uint16_t>((1u << (w % 16)) - 1);
  return w;
}

// Greedy NMS of n candidates by forward suppression, for a class of a
// batched_nms or a small nms: the next candidate in score order is kept
// and strikes every live candidate it suppresses, 16 at a time (a bit per
// candidate in `live`; strike_avx512). Every live candidate ranks after
// the kept box (the ones before it are kept or struck), so no candidate
// needs its rank tested. No per-candidate scan, branch or set-up, which is
// what the list scans pay for when most candidates are suppressed (copies
// of a few objects).
//
// With key, the candidates may be in any order (a class's boxes as they
// come): the next is the live one of least key, ties by position, which
// each sweep finds as it goes; no sort. Without, they are in score order
// and the next is the first live one.
//
// Once fewer than half the lanes swept are live, the live candidates move
// to the front (compact_live), so sweeps skip the struck. Where kept boxes
// strike few (spread-out boxes) the sweeps cost more than they save: after
// kForwardWindow kept boxes that struck fewer than 4 candidates each on
// average the pass stops and leaves the live candidates, moved to the
// front and still in position order, to the caller (*rest: how many);
// they have passed every box kept so far.
//
// f: the candidates' fields, 5 arrays of cap floats (cap >= n rounded up
// to 16); key: their keys (ascending key = score order) or nullptr; pos:
// their positions 0..n-1; live: cap / 16 words, the bits of [0, n) set and
// no other; undecided: room for cap / 16 entries. Lanes past n: any
// values. The test is nms_suppresses(kept, candidate) with
// any_suppresses' margins; `exact(p, kept)` decides a lane between them
// for the candidate at position p. Writes the kept candidates' positions
// to keep, in order, returns how many.
constexpr int64_t kForwardWindow = 4;

template <typename Exact>
__attribute__((target("avx512f"))) int64_t forward_nms_avx512(float* __restrict__ f, uint32_t* __restrict__ key,
                                                               int32_t* __restrict__ pos, int64_t cap, int64_t n,
                                                               float maybe_m, float above_m, int64_t max_keep,
                                                               int64_t* keep, uint16_t* __restrict__ live,
                                                               uint32_t* undecided, Exact exact, int64_t* rest) {
  int64_t cnt = n, words = (n + 15) / 16;
  int64_t kept = 0, struck = 0, alive = n;  // alive: live candidates
  // The first word with a live lane: the sweeps start there (candidates in
  // score order die from the front).
  int64_t g0 = 0;
  uint32_t least = key ? least_live_key(key, live, 0, words) : 0;
  *rest = 0;
  while (alive > 0) {
    if (kept % kForwardWindow == 0) {
      if (kept > 0 && struck < 4 * kForwardWindow) {
        *rest = compact_live(f, key, pos, cap, live, words);
        return kept;
      }
      struck = 0;
    }
    while (live[g0] == 0) ++g0;
    const int64_t k = first_live(key, live, g0, words, least);
    keep[kept++] = pos[k];
    live[k >> 4] = static_cast<uint16_t>(live[k >> 4] & ~(1u << (k & 15)));
    if (kept == max_keep || --alive == 0) break;
    const NmsBox<float> a = soa_nms_box(f, cap, k);
    int64_t hit = 0;
    bool exact_lanes = false;
    if (a.area >= 0x1p-80f) {
      int64_t n_undecided;
      hit = key ? strike_avx512<true>(f, key, cap, live, g0, words, a, maybe_m, above_m, undecided, &n_undecided,
                                      &least)
                : strike_avx512<false>(f, key, cap, live, g0, words, a, maybe_m, above_m, undecided, &n_undecided,
                                       &least);
      // Lanes between the margins (rare): exactly, one set bit at a time.
      for (int64_t u = 0; u < n_undecided; ++u) {
        const int64_t g = undecided[u] >> 16;
        for (unsigned lanes = undecided[u] & 0xFFFFu; lanes != 0; lanes &= lanes - 1) {
          const int lane = __builtin_ctz(lanes);
          if (exact(pos[16 * g + lane], a)) {
            live[g] = static_cast<uint16_t>(live[g] & ~(1u << lane));
            ++hit;
            exact_lanes = true;
          }
        }
      }
    } else {
      // The margins need every union to be a normal float; a kept box of
      // area below 2^-80 (or NaN) decides each lane exactly.
      for (int64_t g = g0; g < words; ++g) {
        unsigned sup = 0;
        for (unsigned c = live[g]; c != 0; c &= c - 1) {
          const int lane = __builtin_ctz(c);
          if (exact(pos[16 * g + lane], a)) sup |= 1u << lane;
        }
        live[g] = static_cast<uint16_t>(live[g] & ~sup);
        hit += __builtin_popcount(sup);
      }
      exact_lanes = true;
    }
    struck += hit;
    alive -= hit;
    if (alive == 0) break;
    // A lane struck exactly may have held the least key.
    if (key && exact_lanes) least = least_live_key(key, live, g0, words);
    if (4 * alive < 3 * (cnt - 16 * g0)) {  // of the lanes swept
      cnt = compact_live(f, key, pos, cap, live, words);
      words = (cnt + 15) / 16;
      g0 = 0;
    }
  }
  return kept;
}

#pragma GCC diagnostic pop

#endif  // VO_HAVE_NMS_SCAN_AVX512

}  // namespace vo
