// Score orders for the CPU NMS kernels: the descending-score key, the radix
// sorts, and the grouping of boxes by class (nms_kernel.cpp).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "nms/math.h"

namespace vo {
namespace nms_order {

// A 32-bit key whose ascending order is descending score order, NaN first
// (torch.sort(descending=True) puts every NaN before every number), every
// NaN and both zeros alike whatever their sign bit: -0.0 ties with +0.0, as
// the double path and the CUDA kernels (which sort canonical scores) order
// them, so ties go by index on every device.
inline uint32_t descending_key(float f) {
  if (f != f) return 0u;
  if (f == 0.0f) f = 0.0f;  // -0.0 as +0.0
  uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  const uint32_t ascending = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return ~ascending + 1u;  // 1 .. 2^32 - 1 for numbers: after NaN
}

// Stable LSD radix sort of indices by key, kBits-bit digits, the digit
// histograms all counted in one read of the keys; a digit all keys share
// is skipped.
template <int kBits>
inline void radix_sort_digits(std::vector<uint32_t>& keys, std::vector<int64_t>& idx) {
  constexpr int kPasses = (32 + kBits - 1) / kBits;
  constexpr uint32_t kMask = (1u << kBits) - 1;
  constexpr size_t kBins = (size_t{1} << kBits) + 1;
  const size_t n = keys.size();
  if (n < 2) return;
  std::vector<size_t> count(kPasses * kBins, 0);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t k = keys[i];
    for (int pass = 0; pass < kPasses; ++pass) ++count[pass * kBins + ((k >> (kBits * pass)) & kMask) + 1];
  }
  std::vector<uint32_t> k2(n);
  std::vector<int64_t> i2(n);
  for (int pass = 0; pass < kPasses; ++pass) {
    size_t* c = count.data() + pass * kBins;
    const int shift = kBits * pass;
    if (c[((keys[0] >> shift) & kMask) + 1] == n) continue;  // one digit: already in order
    for (uint32_t d = 0; d < kMask + 1; ++d) c[d + 1] += c[d];
    for (size_t i = 0; i < n; ++i) {
      const size_t at = c[(keys[i] >> shift) & kMask]++;
      k2[at] = keys[i];
      i2[at] = idx[i];
    }
    keys.swap(k2);
    idx.swap(i2);
  }
}

// 11-bit digits (three passes) for many keys; 8-bit ones (four passes, but
// an eighth of the counts to clear and add up) for a few thousand.
inline void radix_sort(std::vector<uint32_t>& keys, std::vector<int64_t>& idx) {
  if (keys.size() < 4096) {
    radix_sort_digits<8>(keys, idx);
  } else {
    radix_sort_digits<11>(keys, idx);
  }
}

// Whether a score passes score_threshold: greater than it, compared in
// double (a NaN score never passes); every score passes no threshold.
inline bool passes_score_threshold(double score, std::optional<double> score_threshold) {
  return !score_threshold || score > *score_threshold;
}

// Indices of the boxes that pass the score threshold (score > threshold; a
// NaN score never passes one), stably sorted by descending score, NaN first.
template <typename score_t>
std::vector<int64_t> score_order(const score_t* scores, int64_t n, std::optional<double> score_threshold) {
  using acc_t = at::opmath_type<score_t>;
  std::vector<int64_t> order;
  order.reserve(n);
  if constexpr (std::is_same_v<acc_t, float>) {  // float, half and bfloat16 scores: radix sort
    std::vector<uint32_t> keys;
    keys.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      const float s = static_cast<float>(scores[i]);
      if (!passes_score_threshold(static_cast<double>(s), score_threshold)) continue;
      keys.push_back(descending_key(s));
      order.push_back(i);
    }
    radix_sort(keys, order);
  } else {
    std::vector<std::pair<acc_t, int64_t>> keyed;
    keyed.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      const acc_t s = static_cast<acc_t>(scores[i]);
      if (!passes_score_threshold(static_cast<double>(s), score_threshold)) continue;
      keyed.emplace_back(s, i);
    }
    std::stable_sort(keyed.begin(), keyed.end(),
                     [](const auto& a, const auto& b) { return score_before(a.first, b.first); });
    for (const auto& kv : keyed) order.push_back(kv.second);
  }
  return order;
}

// Whether class ids spanning `range` (max - min) among m boxes fit a
// counting sort (an array of range + 2 counts, O(m) of them at most).
inline bool class_range_is_compact(uint64_t range, int64_t m) {
  return range < static_cast<uint64_t>(4 * m + 1024);
}

// count[c + 1] holds how many boxes have class c (dense ids 0..range):
// turns count into each class's first position (count[c]) and appends
// the first position of every non-empty class to starts.
inline void class_starts(std::vector<int64_t>& count, uint64_t range, std::vector<int64_t>& starts) {
  for (uint64_t c = 0; c <= range; ++c) {
    if (count[c + 1] > 0) starts.push_back(count[c]);
    count[c + 1] += count[c];
  }
}

// Ranks of `order` regrouped by class, each class in score order (stable):
// rank_of[p] is the rank of the box at grouped position p, and starts the
// start of each class's run.
inline void group_by_class(const std::vector<int64_t>& order, const int64_t* classes, std::vector<int64_t>& rank_of,
                           std::vector<int64_t>& starts) {
  const int64_t m = static_cast<int64_t>(order.size());
  rank_of.resize(m);
  starts.clear();
  if (m == 0) {
    starts.push_back(0);
    return;
  }
  // The classes in rank order: one gather, then every pass below reads
  // them in sequence.
  std::vector<int64_t> cls(m);
  constexpr int64_t kAhead = 16;
  for (int64_t k = 0; k < m; ++k) {
    if (k + kAhead < m) __builtin_prefetch(classes + order[k + kAhead]);
    cls[k] = classes[order[k]];
  }
  const auto [lo_it, hi_it] = std::minmax_element(cls.begin(), cls.end());
  const int64_t lo = *lo_it, hi = *hi_it;
  const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  if (class_range_is_compact(range, m)) {  // counting sort
    std::vector<int64_t> count(range + 2, 0);
    for (int64_t k = 0; k < m; ++k) ++count[cls[k] - lo + 1];
    class_starts(count, range, starts);
    for (int64_t k = 0; k < m; ++k) rank_of[count[cls[k] - lo]++] = k;
  } else {
    for (int64_t k = 0; k < m; ++k) rank_of[k] = k;
    std::stable_sort(rank_of.begin(), rank_of.end(), [&](int64_t a, int64_t b) { return cls[a] < cls[b]; });
    starts.push_back(0);
    for (int64_t k = 1; k < m; ++k) {
      if (cls[rank_of[k]] != cls[rank_of[k - 1]]) starts.push_back(k);
    }
  }
  starts.push_back(m);
}

// The stable order of one class's bucket by key (ascending: descending
// score): LSD radix on 8-bit digits over (key, position) pairs packed in 64
// bits, the four digit histograms counted in one read, a digit all keys
// share skipped; up to kSmall keys, a comparison sort of the same pairs. In
// cache, a class being small. Scratch reused across calls.
struct BucketSorter {
  static constexpr int64_t kSmall = 64;
  std::vector<uint64_t> a, b;
  std::vector<uint32_t> perm;

  // perm[r]: the position of the bucket's r-th key in that order.
  const uint32_t* order(const uint32_t* key, int64_t len) {
    perm.resize(len);
    if (len < 2) {
      for (int64_t i = 0; i < len; ++i) perm[i] = static_cast<uint32_t>(i);
      return perm.data();
    }
    a.resize(len);
    if (len <= kSmall) {  // a comparison sort: less than clearing the counts
      for (int64_t i = 0; i < len; ++i) a[i] = (static_cast<uint64_t>(key[i]) << 32) | static_cast<uint64_t>(i);
      std::sort(a.begin(), a.begin() + len);  // (key, position) pairs are distinct: stable by position
      for (int64_t i = 0; i < len; ++i) perm[i] = static_cast<uint32_t>(a[i]);
      return perm.data();
    }
    b.resize(len);
    int64_t count[4][257] = {};
    for (int64_t i = 0; i < len; ++i) {
      const uint32_t k = key[i];
      a[i] = (static_cast<uint64_t>(k) << 32) | static_cast<uint64_t>(i);
      ++count[0][(k & 255u) + 1];
      ++count[1][((k >> 8) & 255u) + 1];
      ++count[2][((k >> 16) & 255u) + 1];
      ++count[3][(k >> 24) + 1];
    }
    uint64_t* from = a.data();
    uint64_t* to = b.data();
    for (int pass = 0; pass < 4; ++pass) {
      int64_t* c = count[pass];
      const int shift = 32 + 8 * pass;
      if (c[((from[0] >> shift) & 255u) + 1] == len) continue;
      for (int d = 0; d < 256; ++d) c[d + 1] += c[d];
      for (int64_t i = 0; i < len; ++i) to[c[(from[i] >> shift) & 255u]++] = from[i];
      std::swap(from, to);
    }
    for (int64_t i = 0; i < len; ++i) perm[i] = static_cast<uint32_t>(from[i]);
    return perm.data();
  }
};

}  // namespace nms_order
}  // namespace vo
