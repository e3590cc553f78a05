// The float NMS scan of nms_cpu.cpp (any_suppresses) over core/simd.h's
// 16-lane vectors, one source for AVX-512 and AVX2.
//
// The portable loop leaves the vectorizing to the compiler, which turns the
// per-vector "any lane?" into a chain of shuffles and ORs across the lanes;
// that chain cost as much as the overlap arithmetic itself. Here a compare
// yields a mask (a k register, or two movemasks on AVX2) and one test
// answers the question, so the scan can stop after every 16 boxes at no
// extra cost. The arithmetic is nms/math.h's inter/union in the same order
// (min/max with the same operand order, so NaN lanes behave as in the
// scalar code), and the decision uses the same margins as the portable
// loop: exact either way.
#pragma once

#include <cstdint>

#include "core/simd.h"
#include "nms/math.h"

#ifdef VO_HAVE_SIMD16
#define VO_HAVE_NMS_SCAN_SIMD 1
#endif

namespace vo {

#ifdef VO_HAVE_NMS_SCAN_SIMD

// Kept boxes as fields of `cap` values each from f (cap a multiple of 16;
// lanes past size hold NaN boxes, which suppress nothing).
struct NmsSoaView {
  const float* f;
  int64_t cap, size;
};

// The 5 fields of one box (x1, y1, x2, y2, area), broadcast.
template <typename S>
struct BoxLanes {
  typename S::F v[5];
  explicit BoxLanes(const NmsBox<float>& b)
      : v{S::set1(b.x1), S::set1(b.y1), S::set1(b.x2), S::set1(b.y2), S::set1(b.area)} {}
};

// Intersection and union of the 16 boxes at lane j0 of a structure of
// arrays (fields x1, y1, x2, y2, area, `cap` apart) with one box given as 5
// broadcast fields, in nms_inter_union(a, b)'s order of operands: a is the
// broadcast box when kBroadcastFirst (forward: the kept box), else the
// loaded ones (the scans: kept boxes loaded, the candidate broadcast).
// S::min(a, b) is a < b ? a : b, like vo::min; max(0, v) clamps.
template <typename S, bool kBroadcastFirst>
inline void inter_union16(const float* __restrict__ f, int64_t cap, int64_t j0, const BoxLanes<S>& one,
                          typename S::F& inter, typename S::F& uni) {
  using F = typename S::F;
  F v[5];
  for (int k = 0; k < 5; ++k) v[k] = S::load(f + k * cap + j0);
  const F* a = kBroadcastFirst ? one.v : v;
  const F* b = kBroadcastFirst ? v : one.v;
  const F zero = S::set1(0.0f);
  const F w = S::max(zero, S::sub(S::min(a[2], b[2]), S::max(a[0], b[0])));
  const F h = S::max(zero, S::sub(S::min(a[3], b[3]), S::max(a[1], b[1])));
  inter = S::mul(w, h);
  uni = S::sub(S::add(a[4], b[4]), inter);
}

// Whether a kept box of v suppresses b. maybe_m and above_m are the float
// margins below and above the midpoint; `exact(j)` decides a lane that
// falls between them.
template <typename S, typename Exact>
inline bool scan_simd(NmsSoaView v, const NmsBox<float>& b, float maybe_m, float above_m, Exact& exact) {
  using F = typename S::F;
  const BoxLanes<S> one(b);
  const F maybe_v = S::set1(maybe_m), above_v = S::set1(above_m);
  for (int64_t j0 = 0; j0 < v.size; j0 += 16) {
    F inter, uni;
    inter_union16<S, false>(v.f, v.cap, j0, one, inter, uni);
    // Ordered compares: NaN lanes are never "maybe".
    const unsigned maybe = S::ge(inter, S::mul(maybe_v, uni));
    if (maybe == 0) continue;
    if (S::gt(inter, S::mul(above_v, uni), maybe) != 0) return true;
    for (unsigned lanes = maybe; lanes != 0; lanes &= lanes - 1) {
      if (exact(j0 + __builtin_ctz(lanes))) return true;
    }
  }
  return false;
}

// The greedy pass against one growing list of kept boxes, from candidate i
// on, in one function: per candidate no call and no set-up beyond the
// broadcasts. view() is the list now; a candidate whose area is below the
// margins' range goes to slow(i) instead; keep(i) appends a kept candidate
// and says whether the pass goes on. Returns the next candidate.
template <typename S, typename View, typename Slow, typename Exact, typename Keep>
int64_t greedy_pass_simd(const NmsBox<float>* boxes, int64_t i, int64_t n, float maybe_m, float above_m, View view,
                         Slow slow, Exact exact, Keep keep) {
  for (; i < n; ++i) {
    const NmsBox<float>& b = boxes[i];
    const NmsSoaView v = view();
    bool suppressed;
    if (b.area >= 0x1p-80f) {
      auto exact_b = [&](int64_t j) { return exact(v, j, b); };
      suppressed = scan_simd<S>(v, b, maybe_m, above_m, exact_b);
    } else {
      suppressed = slow(i);
    }
    if (!suppressed && !keep(i)) return i + 1;
  }
  return n;
}

#endif  // VO_HAVE_NMS_SCAN_SIMD

}  // namespace vo
