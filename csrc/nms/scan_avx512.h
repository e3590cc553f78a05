// The float NMS scan of nms_kernel.cpp (any_suppresses), written with
// AVX-512 intrinsics.
//
// The portable loop leaves the vectorizing to the compiler, which turns the
// per-vector "any lane?" into a chain of shuffles and ORs across the lanes;
// that chain cost as much as the overlap arithmetic itself. Here a compare
// yields a mask register and one kortest answers the question, so the scan
// can stop after every 16 boxes at no extra cost. The arithmetic is
// nms/math.h's inter/union in the same order (min/max with the same
// operand order, so NaN lanes behave as in the scalar code), and the
// decision uses the same margins as the portable loop: exact either way.
#pragma once

#include <cstdint>

#include "core/cpu_features.h"
#include "nms/math.h"

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

#pragma GCC diagnostic pop

#endif  // VO_HAVE_NMS_SCAN_AVX512

}  // namespace vo
