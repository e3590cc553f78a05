// The float NMS scan of nms_kernel.cpp (any_suppresses), written with
// AVX-512 intrinsics.
//
// The portable loop leaves the vectorizing to the compiler, which turns the
// per-vector "any lane?" into a chain of shuffles and ORs across the lanes;
// that chain cost as much as the overlap arithmetic itself. Here a compare
// yields a mask register and one kortest answers the question, so the scan
// can stop after every 16 boxes at no extra cost. The arithmetic is
// common/nms.h's inter/union in the same order (min/max with the same
// operand order, so NaN lanes behave as in the scalar code), and the
// decision uses the same margins as the portable loop: exact either way.
#pragma once

#include <cstdint>

#include "../common/nms.h"
#include "cpu_features.h"

#ifdef VO_HAVE_AVX512_KERNELS
#define VO_HAVE_NMS_SCAN_AVX512 1
#endif

namespace vo {

#ifdef VO_HAVE_NMS_SCAN_AVX512

// Kept boxes as fields of `cap` values each from f (cap a multiple of 16;
// lanes past size hold NaN boxes, which suppress nothing).
struct NmsSoaView {
  const float* f;
  int64_t cap, size;
};

// (GCC 12 warns of an undefined first operand inside its own intrinsics.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// Intersection and union of the 16 boxes at lane j0 of a structure of
// arrays (fields x1, y1, x2, y2, area, `cap` apart) with one box given as 5
// broadcast fields, in nms_inter_union(a, b)'s order of operands: a is the
// broadcast box when kBroadcastFirst (forward: the kept box), else the
// loaded ones (the scans: kept boxes loaded, the candidate broadcast).
// _mm512_min_ps(a, b) is a < b ? a : b, like vo::min; clamp_min(v, 0) is
// max(0, v).
template <bool kBroadcastFirst>
__attribute__((target("avx512f"), always_inline)) inline void inter_union16(const float* __restrict__ f, int64_t cap,
                                                                            int64_t j0, const __m512 (&one)[5],
                                                                            __m512& inter, __m512& uni) {
  __m512 v[5];
  for (int k = 0; k < 5; ++k) v[k] = _mm512_loadu_ps(f + k * cap + j0);
  const __m512* a = kBroadcastFirst ? one : v;
  const __m512* b = kBroadcastFirst ? v : one;
  const __m512 zero = _mm512_setzero_ps();
  const __m512 w = _mm512_max_ps(zero, _mm512_sub_ps(_mm512_min_ps(a[2], b[2]), _mm512_max_ps(a[0], b[0])));
  const __m512 h = _mm512_max_ps(zero, _mm512_sub_ps(_mm512_min_ps(a[3], b[3]), _mm512_max_ps(a[1], b[1])));
  inter = _mm512_mul_ps(w, h);
  uni = _mm512_sub_ps(_mm512_add_ps(a[4], b[4]), inter);
}

// The 5 fields of one box, broadcast.
__attribute__((target("avx512f"), always_inline)) inline void broadcast_box(const NmsBox<float>& b, __m512 (&out)[5]) {
  out[0] = _mm512_set1_ps(b.x1);
  out[1] = _mm512_set1_ps(b.y1);
  out[2] = _mm512_set1_ps(b.x2);
  out[3] = _mm512_set1_ps(b.y2);
  out[4] = _mm512_set1_ps(b.area);
}

// Whether a kept box of v suppresses b. maybe_m and above_m are the float
// margins below and above the midpoint; `exact(j)` decides a lane that
// falls between them.
template <typename Exact>
__attribute__((target("avx512f"), always_inline)) inline bool scan_avx512(NmsSoaView v, const NmsBox<float>& b,
                                                                          float maybe_m, float above_m,
                                                                          Exact& exact) {
  __m512 one[5];
  broadcast_box(b, one);
  const __m512 maybe_v = _mm512_set1_ps(maybe_m), above_v = _mm512_set1_ps(above_m);
  for (int64_t j0 = 0; j0 < v.size; j0 += 16) {
    __m512 inter, uni;
    inter_union16<false>(v.f, v.cap, j0, one, inter, uni);
    // Ordered compares: NaN lanes are never "maybe".
    const __mmask16 maybe = _mm512_cmp_ps_mask(inter, _mm512_mul_ps(maybe_v, uni), _CMP_GE_OQ);
    if (maybe == 0) continue;
    if (_mm512_mask_cmp_ps_mask(maybe, inter, _mm512_mul_ps(above_v, uni), _CMP_GT_OQ) != 0) return true;
    for (int lane = 0; lane < 16; ++lane) {
      if (((maybe >> lane) & 1) && exact(j0 + lane)) return true;
    }
  }
  return false;
}

// scan_avx512 as a call, for the cells of the spatial index.
template <typename Exact>
__attribute__((target("avx512f"))) bool any_suppresses_avx512(NmsSoaView v, const NmsBox<float>& b, float maybe_m,
                                                               float above_m, Exact exact) {
  return scan_avx512(v, b, maybe_m, above_m, exact);
}

// The greedy pass against one growing list of kept boxes, from candidate i
// on, in one function: per candidate no call and no set-up beyond the
// broadcasts. view() is the list now; a candidate whose area is below the
// margins' range goes to slow(i) instead; keep(i) appends a kept candidate
// and says whether the pass goes on. Returns the next candidate.
template <typename View, typename Slow, typename Exact, typename Keep>
__attribute__((target("avx512f"))) int64_t greedy_pass_avx512(const NmsBox<float>* boxes, int64_t i, int64_t n,
                                                               float maybe_m, float above_m, View view, Slow slow,
                                                               Exact exact, Keep keep) {
  for (; i < n; ++i) {
    const NmsBox<float>& b = boxes[i];
    const NmsSoaView v = view();
    bool suppressed;
    if (b.area >= 0x1p-80f) {
      auto exact_b = [&](int64_t j) { return exact(v, j, b); };
      suppressed = scan_avx512(v, b, maybe_m, above_m, exact_b);
    } else {
      suppressed = slow(i);
    }
    if (!suppressed && !keep(i)) return i + 1;
  }
  return n;
}

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
    if (2 * alive < cnt - 16 * g0) {  // of the lanes swept
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
