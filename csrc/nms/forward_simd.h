// Forward suppression for the CPU NMS (nms_cpu.cpp's GreedyNms::forward),
// over core/simd.h's 16-lane vectors (AVX-512, or AVX2 two registers a
// vector): each kept box strikes, 16 lanes at a time, the live candidates
// it suppresses. The per-lane test is scan_simd.h's: nms/math.h's
// inter/union, the same float margins, and the lanes between them decided
// exactly. Compacting the live candidates is a compress store (AVX2: a
// permutation from a table).
#pragma once

#include <cstdint>

#include "nms/math.h"
#include "nms/scan_simd.h"

namespace vo {

#ifdef VO_HAVE_NMS_SCAN_SIMD

// The strike of one word of 16 candidates by kept box `one` (its fields
// broadcast): clears the live bits of those it surely suppresses (above
// the upper margin) and appends the word, as g << 16 | lanes, to
// undecided[*nu] when some lanes fall between the margins. Returns how
// many it struck. No branch on the lanes: where the kept box's copies sit
// among the candidates is random, and a branch on it mispredicted on most
// words.
template <typename S>
inline int64_t strike_word(const float* __restrict__ f, int64_t cap, uint16_t* __restrict__ live, int64_t g,
                           const BoxLanes<S>& one, typename S::F maybe_v, typename S::F above_v,
                           uint32_t* __restrict__ undecided, int64_t& nu) {
  const unsigned word = live[g];
  typename S::F inter, uni;
  inter_union16<S, true>(f, cap, 16 * g, one, inter, uni);  // nms_inter_union(kept, candidate)
  const unsigned maybe = S::ge(inter, S::mul(maybe_v, uni), word);
  const unsigned sup = S::gt(inter, S::mul(above_v, uni), maybe);
  live[g] = static_cast<uint16_t>(word & ~sup);
  const unsigned between = maybe & ~sup;
  undecided[nu] = static_cast<uint32_t>(g << 16) | between;  // kept only when some lane is between
  nu += between != 0;
  return __builtin_popcount(sup);
}

// Kept box a strikes words [g0, g1) (room for g1 - g0 entries in
// undecided; *n_undecided: how many it took). Returns how many it struck.
// A function of its own (S::isolated) so that its loop keeps everything
// in registers: inlined into the greedy loop, GCC spilled the word index
// and the counters, and every word waited on a store and a reload.
template <typename S>
inline int64_t strike_simd(const float* __restrict__ f, int64_t cap, uint16_t* __restrict__ live, int64_t g0,
                           int64_t g1, const NmsBox<float>& a, float maybe_m, float above_m,
                           uint32_t* __restrict__ undecided, int64_t* n_undecided) {
  int64_t hit = 0;
  auto loop = [&, f, cap, live, g0, g1, undecided] {
    const BoxLanes<S> one(a);
    const typename S::F maybe_v = S::set1(maybe_m), above_v = S::set1(above_m);
    int64_t h = 0, nu = 0;
    for (int64_t g = g0; g < g1; ++g) h += strike_word<S>(f, cap, live, g, one, maybe_v, above_v, undecided, nu);
    *n_undecided = nu;
    hit = h;
  };
  S::isolated(loop);
  return hit;
}

// The bounds of each word's live candidates: the least x1 and y1 and the
// greatest x2 and y2 of its live lanes that have no NaN coordinate (a box
// with one suppresses nothing and is never suppressed), as four arrays of
// wcap floats from b (wcap: words rounded up to 16; words past `words`
// and words with no such lane get empty bounds, +inf to -inf).
template <typename S>
inline void word_bounds(const float* f, int64_t cap, const uint16_t* live, int64_t words, float* b, int64_t wcap) {
  for (int64_t g = 0; g < wcap; ++g) {
    unsigned m = g < words ? live[g] : 0u;
    typename S::F v[4];
    for (int k = 0; k < 4; ++k) {
      v[k] = S::load(f + k * cap + 16 * (g < words ? g : 0));
      m = S::ordered(v[k], m);
    }
    b[g] = S::reduce_min(m, v[0]);
    b[wcap + g] = S::reduce_min(m, v[1]);
    b[2 * wcap + g] = S::reduce_max(m, v[2]);
    b[3 * wcap + g] = S::reduce_max(m, v[3]);
  }
}

// The least key of word g's live lanes (~0u: none live).
template <typename S>
inline uint32_t word_least(const uint32_t* key, const uint16_t* live, int64_t g) {
  return S::reduce_min(static_cast<unsigned>(live[g]), S::load(key + 16 * g));
}

// word_least of every word, into least[0, wcap) (words past `words`: ~0u).
template <typename S>
inline void word_leasts(const uint32_t* key, const uint16_t* live, int64_t words, uint32_t* least, int64_t wcap) {
  for (int64_t g = 0; g < words; ++g) least[g] = word_least<S>(key, live, g);
  for (int64_t g = words; g < wcap; ++g) least[g] = ~0u;
}

// The live candidate of least key, ties by position, from the words'
// least keys (16 words a compare): the first word holding the least of
// them, and its first live lane with that key. -1 if none is live.
template <typename S>
inline int64_t least_key_candidate(const uint32_t* key, const uint16_t* live, const uint32_t* least,
                                   int64_t wcap) {
  typename S::U m = S::set1(~0u);
  for (int64_t w0 = 0; w0 < wcap; w0 += 16) m = S::min(m, S::load(least + w0));
  const uint32_t k = S::reduce_min(0xFFFFu, m);
  if (k == ~0u) return -1;
  const typename S::U kv = S::set1(k);
  for (int64_t w0 = 0; w0 < wcap; w0 += 16) {
    const unsigned at = S::eq(S::load(least + w0), kv);
    if (at == 0) continue;
    const int64_t g = w0 + __builtin_ctz(at);
    const unsigned lane = S::eq(S::load(key + 16 * g), kv, live[g]);
    return 16 * g + __builtin_ctz(lane);
  }
  return -1;
}

// Kept box a strikes only the words whose bounds it overlaps (a box it
// suppresses overlaps it with a positive intersection: x1 < a.x2, x2 >
// a.x1, and the same in y), words [g0, words), bounds b as word_bounds
// leaves them (a struck lane leaves them wider than they need be, never
// narrower); refreshes the least key of each word it sweeps. Candidates
// in input order often sit near their neighbours (a detector's copies of
// one object, boxes from neighbouring anchors): a kept box then sweeps a
// few words, not all. 16 words tested at a time. Isolated as strike_simd.
template <typename S>
inline int64_t strike_bounded_simd(const float* __restrict__ f, int64_t cap, uint16_t* __restrict__ live,
                                   int64_t g0, int64_t words, const float* __restrict__ b, int64_t wcap,
                                   const uint32_t* __restrict__ key, uint32_t* __restrict__ least,
                                   const NmsBox<float>& a, float maybe_m, float above_m,
                                   uint32_t* __restrict__ undecided, int64_t* n_undecided) {
  int64_t hit = 0;
  auto loop = [&, f, cap, live, g0, words, b, wcap, key, least, undecided] {
    const BoxLanes<S> one(a);
    const typename S::F maybe_v = S::set1(maybe_m), above_v = S::set1(above_m);
    int64_t h = 0, nu = 0;
    for (int64_t w0 = g0 & ~int64_t{15}; w0 < words; w0 += 16) {
      // (words before g0 hold no live lane, whatever their bounds say)
      unsigned near = S::lt(S::load(b + w0), one.v[2]);
      if (g0 > w0) near &= 0xFFFFu << (g0 - w0);
      near = S::lt(S::load(b + wcap + w0), one.v[3], near);
      near = S::gt(S::load(b + 2 * wcap + w0), one.v[0], near);
      near = S::gt(S::load(b + 3 * wcap + w0), one.v[1], near);
      for (; near != 0; near &= near - 1) {
        const int64_t g = w0 + __builtin_ctz(near);
        h += strike_word<S>(f, cap, live, g, one, maybe_v, above_v, undecided, nu);
        least[g] = word_least<S>(key, live, g);
      }
    }
    *n_undecided = nu;
    hit = h;
  };
  S::isolated(loop);
  return hit;
}

// Moves the live candidates to the front, in order: per word, the live
// lanes' fields, keys (when given) and positions, compressed (the stores
// reach at most the end of the word being read). Marks them live; returns
// how many.
template <typename S>
inline int64_t compact_live(float* f, uint32_t* key, int32_t* pos, int64_t cap, uint16_t* live, int64_t words) {
  int64_t w = 0;
  for (int64_t g = 0; g < words; ++g) {
    const unsigned m = live[g];
    if (m == 0) continue;
    const int64_t j0 = 16 * g;
    for (int field = 0; field < 5; ++field) S::compress_store(f + field * cap + w, m, S::load(f + field * cap + j0));
    if (key) S::compress_store(key + w, m, S::load(key + j0));
    S::compress_store(pos + w, m, S::load(pos + j0));
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
// candidate in `live`; strike_word). Every live candidate ranks after the
// kept box (the ones before it are kept or struck), so no candidate needs
// its rank tested. No per-candidate scan, branch or set-up, which is what
// the list scans pay for when most candidates are suppressed (copies of a
// few objects).
//
// Without key, the candidates are in score order: the next is the first
// live one, and each kept box sweeps every word from the first live one.
// With key, they may be in any order (a class's boxes as they come): the
// next is the live one of least key, ties by position, found by a pass
// over the keys; no sort. And as input order tends to keep neighbours
// together, each kept box sweeps only the words whose bounds it overlaps
// (strike_bounded_simd; `bounds`: room for 4 arrays of cap / 16 rounded
// up to 16 floats).
//
// Once a quarter of the lanes swept are struck (three quarters of all
// lanes with bounded sweeps), the live candidates move to the front
// (compact_live), so sweeps skip the struck. Where kept boxes
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

template <typename S, typename Exact>
int64_t forward_nms_simd(float* __restrict__ f, uint32_t* __restrict__ key, int32_t* __restrict__ pos, int64_t cap,
                         int64_t n, float maybe_m, float above_m, int64_t max_keep, int64_t* keep,
                         uint16_t* __restrict__ live, uint32_t* undecided, float* bounds, uint32_t* least, Exact exact,
                         int64_t* rest) {
  int64_t cnt = n, words = (n + 15) / 16;
  const int64_t wcap = (words + 15) / 16 * 16;
  const auto index_words = [&] {  // the words' bounds and least keys
    word_bounds<S>(f, cap, live, words, bounds, wcap);
    word_leasts<S>(key, live, words, least, wcap);
  };
  if (key) index_words();
  int64_t kept = 0, struck = 0, alive = n;  // alive: live candidates
  // The first word with a live lane: the sweeps start there (candidates in
  // score order die from the front).
  int64_t g0 = 0;
  *rest = 0;
  while (alive > 0) {
    if (kept % kForwardWindow == 0) {
      if (kept > 0 && struck < 4 * kForwardWindow) {
        *rest = compact_live<S>(f, key, pos, cap, live, words);
        return kept;
      }
      struck = 0;
    }
    while (live[g0] == 0) ++g0;
    const int64_t k = key ? least_key_candidate<S>(key, live, least, wcap) : 16 * g0 + __builtin_ctz(live[g0]);
    keep[kept++] = pos[k];
    live[k >> 4] = static_cast<uint16_t>(live[k >> 4] & ~(1u << (k & 15)));
    if (key) least[k >> 4] = word_least<S>(key, live, k >> 4);
    if (kept == max_keep || --alive == 0) break;
    const NmsBox<float> a = soa_nms_box(f, cap, k);
    int64_t hit = 0;
    if (a.area >= 0x1p-80f) {
      int64_t n_undecided;
      hit = key ? strike_bounded_simd<S>(f, cap, live, g0, words, bounds, wcap, key, least, a, maybe_m, above_m,
                                        undecided, &n_undecided)
                : strike_simd<S>(f, cap, live, g0, words, a, maybe_m, above_m, undecided, &n_undecided);
      // Lanes between the margins (rare): exactly, one set bit at a time.
      for (int64_t u = 0; u < n_undecided; ++u) {
        const int64_t g = undecided[u] >> 16;
        for (unsigned lanes = undecided[u] & 0xFFFFu; lanes != 0; lanes &= lanes - 1) {
          const int lane = __builtin_ctz(lanes);
          if (exact(pos[16 * g + lane], a)) {
            live[g] = static_cast<uint16_t>(live[g] & ~(1u << lane));
            ++hit;
          }
        }
        if (key) least[g] = word_least<S>(key, live, g);
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
        if (key) least[g] = word_least<S>(key, live, g);
      }
    }
    struck += hit;
    alive -= hit;
    if (alive == 0) break;
    // In score order every sweep covers the lanes from g0 on: compact once
    // a quarter of them are struck. Bounded sweeps read few words; the
    // passes over all of them (bounds, least keys) are 16 words a step, so
    // compacting pays only once most lanes are struck.
    if (key ? 4 * alive < cnt : 4 * alive < 3 * (cnt - 16 * g0)) {
      cnt = compact_live<S>(f, key, pos, cap, live, words);
      words = (cnt + 15) / 16;
      g0 = 0;
      if (key) index_words();  // (wcap still covers the words)
    }
  }
  return kept;
}

#endif  // VO_HAVE_NMS_SCAN_SIMD

}  // namespace vo
