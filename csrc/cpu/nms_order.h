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

#include "../common/nms.h"

namespace vo {
namespace nms_order {

// A 32-bit key whose ascending order is descending score order, NaN first
// (torch.sort(descending=True) puts every NaN before every number).
inline uint32_t descending_key(float f) {
  if (f != f) return 0u;
  uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  const uint32_t ascending = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return ~ascending + 1u;  // 1 .. 2^32 - 1 for numbers: after NaN
}

// Stable LSD radix sort of indices by key: 11-bit digits, three passes,
// the three digit histograms counted in one read of the keys.
inline void radix_sort(std::vector<uint32_t>& keys, std::vector<int64_t>& idx) {
  const size_t n = keys.size();
  std::vector<size_t> count(3 * 2049, 0);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t k = keys[i];
    ++count[(k & 2047u) + 1];
    ++count[2049 + ((k >> 11) & 2047u) + 1];
    ++count[2 * 2049 + (k >> 22) + 1];
  }
  std::vector<uint32_t> k2(n);
  std::vector<int64_t> i2(n);
  for (int pass = 0; pass < 3; ++pass) {
    size_t* c = count.data() + pass * 2049;
    const int shift = 11 * pass;
    if (c[((keys.empty() ? 0u : keys[0]) >> shift & 2047u) + 1] == n) continue;  // one digit: already in order
    for (int d = 0; d < 2048; ++d) c[d + 1] += c[d];
    for (size_t i = 0; i < n; ++i) {
      const size_t at = c[(keys[i] >> shift) & 2047u]++;
      k2[at] = keys[i];
      i2[at] = idx[i];
    }
    keys.swap(k2);
    idx.swap(i2);
  }
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
      if (score_threshold && !(static_cast<double>(s) > *score_threshold)) continue;
      keys.push_back(descending_key(s));
      order.push_back(i);
    }
    radix_sort(keys, order);
  } else {
    std::vector<std::pair<acc_t, int64_t>> keyed;
    keyed.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      const acc_t s = static_cast<acc_t>(scores[i]);
      if (score_threshold && !(static_cast<double>(s) > *score_threshold)) continue;
      keyed.emplace_back(s, i);
    }
    std::stable_sort(keyed.begin(), keyed.end(),
                     [](const auto& a, const auto& b) { return score_before(a.first, b.first); });
    for (const auto& kv : keyed) order.push_back(kv.second);
  }
  return order;
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
  if (range < static_cast<uint64_t>(4 * m + 1024)) {  // counting sort
    std::vector<int64_t> count(range + 2, 0);
    for (int64_t k = 0; k < m; ++k) ++count[cls[k] - lo + 1];
    for (uint64_t c = 0; c <= range; ++c) {
      if (count[c + 1] > 0) starts.push_back(count[c]);
      count[c + 1] += count[c];
    }
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

// Stable sort of one class's bucket by key (ascending: descending score),
// its boxes and input indices moved alike: LSD radix on 8-bit digits, a
// digit all keys share skipped; in cache, a class being small.
template <typename T>
struct BucketSorter {
  std::vector<uint32_t> k2, perm, perm2;
  std::vector<NmsBox<T>> boxes;
  std::vector<int64_t> src;

  void sort(uint32_t* key, int64_t* src_idx, NmsBox<T>* box, int64_t len) {
    if (len < 2) return;
    k2.resize(len);
    perm.resize(len);
    perm2.resize(len);
    for (int64_t i = 0; i < len; ++i) perm[i] = static_cast<uint32_t>(i);
    uint32_t* ka = key;  // sorted in place, through k2
    uint32_t* kb = k2.data();
    uint32_t* pa = perm.data();
    uint32_t* pb = perm2.data();
    bool moved = false;
    for (int shift = 0; shift < 32; shift += 8) {
      int64_t count[257] = {0};
      for (int64_t i = 0; i < len; ++i) ++count[((ka[i] >> shift) & 255u) + 1];
      if (count[((ka[0] >> shift) & 255u) + 1] == len) continue;
      for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
      for (int64_t i = 0; i < len; ++i) {
        const int64_t at = count[(ka[i] >> shift) & 255u]++;
        kb[at] = ka[i];
        pb[at] = pa[i];
      }
      std::swap(ka, kb);
      std::swap(pa, pb);
      moved = true;
    }
    if (!moved) return;
    if (ka != key) std::copy(ka, ka + len, key);
    boxes.assign(box, box + len);
    src.assign(src_idx, src_idx + len);
    for (int64_t i = 0; i < len; ++i) {
      box[i] = boxes[pa[i]];
      src_idx[i] = src[pa[i]];
    }
  }
};

}  // namespace nms_order
}  // namespace vo
