// Channel slices of feature maps for the CPU RoI kernels.
//
// The RoI kernels work on one (image, block of channels) at a time: the
// block, stored channels-last ([H * W][nb]), is small enough to stay in the
// last-level cache while every RoI of that image reads (forward) or
// accumulates into (backward) it. For a 256-channel map of 200 x 272 pixels
// a 32-channel block is 7 MB, against 55 MB for the whole image: the RoIs of
// a detector overlap tens of times over, so most of their reads hit cache.
//
// A channels-first map is transposed into the slice block by block (cheap: it
// is written once and read at once from cache); a float32/float64
// channels-last map is read in place.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/cpu_isa.h"
#include "core/huge_pages.h"
#include "core/macros.h"
#include "core/simd.h"
#include "roi/math.h"

namespace vo::cpu {

// Channels per block: a multiple of one AVX-512 vector of floats.
constexpr int64_t kSliceChannels = 32;

// The RoIs whose batch index is not one of input's N images (outside [0, N)
// after truncation, or NaN). They pool zeros and get no gradient, on the CPU
// as on CUDA, where refusing them would cost a host sync.
template <typename T>
std::vector<int64_t> invalid_rois(const T* rois, int64_t K, int64_t N) {
  std::vector<int64_t> bad;
  for (int64_t k = 0; k < K; ++k)
    if (roi_batch_index(rois[5 * k], N) < 0) bad.push_back(k);
  return bad;
}

// The RoIs ids (a subset of all K RoIs) grouped by image, each group in the
// order of ids (a stable counting sort). RoIs whose batch index is not one
// of the N images (roi_batch_index gives -1) are left out: they pool zeros
// (see invalid_rois) and get no gradient.
template <typename T>
struct RoisByImage {
  std::vector<int64_t> order, begin;
  RoisByImage(const T* rois, const std::vector<int64_t>& ids, int64_t N) : begin(N + 2, 0) {
    // Slot s = batch index + 1: slot 0 holds the invalid RoIs (index -1), which
    // sort first and are then dropped; begin[s + 1] counts slot s, then the
    // prefix sums make begin[s] slot s's first position.
    for (const int64_t k : ids) ++begin[roi_batch_index(rois[5 * k], N) + 2];
    for (int64_t n = 0; n <= N; ++n) begin[n + 1] += begin[n];
    std::vector<int64_t> next(begin.begin(), begin.end() - 1);
    std::vector<int64_t> all(ids.size());
    for (const int64_t k : ids) all[next[roi_batch_index(rois[5 * k], N) + 1]++] = k;
    const int64_t skipped = begin[1];
    order.assign(all.begin() + skipped, all.end());
    begin.erase(begin.begin());
    for (int64_t& b : begin) b -= skipped;
  }

  // Orders each image's RoIs along a Z-order curve of their centres, so that
  // consecutive RoIs overlap and find each other's pixels in cache. Only for
  // kernels whose result does not depend on the order (forward passes).
  void sort_spatially(const T* rois) {
    std::vector<std::pair<uint64_t, int64_t>> keyed;
    for (size_t n = 0; n + 1 < begin.size(); ++n) {
      keyed.clear();
      for (int64_t i = begin[n]; i < begin[n + 1]; ++i) {
        const T* r = rois + 5 * order[i];
        keyed.emplace_back(z_order(static_cast<double>(r[1] + r[3]), static_cast<double>(r[2] + r[4])), order[i]);
      }
      std::stable_sort(keyed.begin(), keyed.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (int64_t i = begin[n]; i < begin[n + 1]; ++i) order[i] = keyed[i - begin[n]].second;
    }
  }

 private:
  // Interleaved bits of the centre's coordinates (in 32-pixel cells of the
  // image: any fixed cell works, the order only needs locality).
  static uint64_t z_order(double x2, double y2) {
    const auto cell = [](double v) -> uint64_t {
      const double c = v / 64.0;  // v is twice the centre
      return c > 0 && c < 65535.0 ? static_cast<uint64_t>(c) : (c >= 65535.0 ? 65535 : 0);
    };
    uint64_t x = cell(x2), y = cell(y2), z = 0;
    for (int b = 0; b < 16; ++b) z |= ((x >> b) & 1) << (2 * b) | ((y >> b) & 1) << (2 * b + 1);
    return z;
  }
};

// dst[p * ld_dst + j] = src[j * ld_src + p] for j < rows, p < cols, in tiles
// that keep both sides in L1. Float to float goes through 8 x 8 blocks
// transposed in registers (core/simd.h): the scalar loop, one strided store
// per value, cost more than all the RoI arithmetic on the maps it
// transposed. Runs its own instruction-set dispatch.
template <typename in_t, typename out_t>
void transpose_block(const in_t* __restrict__ src, int64_t ld_src, out_t* __restrict__ dst, int64_t ld_dst,
                     int64_t rows, int64_t cols) {
  constexpr int64_t kTile = 64;
  int64_t rows8 = 0, cols8 = 0;  // the part done in 8 x 8 blocks: [0, rows8) x [0, cols8)
  if constexpr (std::is_same_v<in_t, float> && std::is_same_v<out_t, float>) {
    if (simd_available()) {
      rows8 = rows / 8 * 8;
      cols8 = cols / 8 * 8;
      with_simd([&](auto s) {
        using S = decltype(s);
        for (int64_t p0 = 0; p0 < cols8; p0 += kTile) {
          const int64_t p1 = std::min(p0 + kTile, cols8);
          for (int64_t j = 0; j < rows8; j += 8)
            for (int64_t p = p0; p < p1; p += 8) S::transpose8x8_f32(src + j * ld_src + p, ld_src, dst + p * ld_dst + j, ld_dst);
        }
      });
    }
  }
  // The rest: rows below rows8 in every column, and columns from cols8 in
  // the first rows8 rows.
  const auto scalar = [&](int64_t j_begin, int64_t j_end, int64_t p_begin) {
    for (int64_t p0 = p_begin; p0 < cols; p0 += kTile) {
      const int64_t p1 = std::min(p0 + kTile, cols);
      for (int64_t j = j_begin; j < j_end; ++j) {
        const in_t* s = src + j * ld_src;
        for (int64_t p = p0; p < p1; ++p) dst[p * ld_dst + j] = static_cast<out_t>(s[p]);
      }
    }
  };
  with_cpu_isa([&] {
    scalar(rows8, rows, 0);
    if (cols8 < cols) scalar(0, rows8, cols8);
  });
}

// A read-only channel slice of one image: pixel (y, x), channel c0 + j is
// data[(y * W + x) * ld + j].
template <typename T>
struct MapSlice {
  const T* data;
  int64_t ld;
};

// Reads channel blocks of an [N, C, H, W] map as T. The map must be
// contiguous in channels-first or channels-last order.
template <typename scalar_t, typename T>
class SliceReader {
 public:
  explicit SliceReader(const at::Tensor& map)
      : src_(map.data_ptr<scalar_t>()),
        C_(map.size(1)),
        HW_(map.size(2) * map.size(3)),
        channels_last_(map.dim() == 4 && map.size(1) > 1 && map.is_contiguous(at::MemoryFormat::ChannelsLast)) {}

  // Whether read() returns views into the map itself (a channels-last map
  // of the accumulation type): then image n's pixel (y, x), channel c is at
  // image(n)[(y * W + x) * C + c].
  bool in_place() const { return channels_last_ && std::is_same_v<scalar_t, T>; }
  const scalar_t* image(int64_t n) const { return src_ + n * HW_ * C_; }

  // Channels [c0, c0 + nb) of image n; buf is the thread's scratch.
  MapSlice<T> read(int64_t n, int64_t c0, int64_t nb, std::vector<T>& buf) const {
    if (channels_last_) {
      const scalar_t* base = src_ + n * HW_ * C_ + c0;
      if constexpr (std::is_same_v<scalar_t, T>) {
        return {base, C_};
      } else {
        buf.resize(HW_ * nb);
        for (int64_t p = 0; p < HW_; ++p)
          for (int64_t j = 0; j < nb; ++j) buf[p * nb + j] = static_cast<T>(base[p * C_ + j]);
        return {buf.data(), nb};
      }
    }
    buf.resize(HW_ * nb);
    transpose_block<scalar_t, T>(src_ + (n * C_ + c0) * HW_, HW_, buf.data(), nb, nb, HW_);
    return {buf.data(), nb};
  }

 private:
  const scalar_t* src_;
  int64_t C_, HW_;
  bool channels_last_;
};

// Writes channel blocks (as [H * W][nb] of T) into an [N, C, H, W] output of
// scalar_t, channels-first or channels-last.
template <typename T, typename scalar_t>
void write_slice(const T* buf, int64_t nb, at::Tensor& out, bool channels_last, int64_t n, int64_t c0) {
  const int64_t C = out.size(1), HW = out.size(2) * out.size(3);
  scalar_t* dst = out.data_ptr<scalar_t>();
  if (channels_last) {
    scalar_t* base = dst + n * HW * C + c0;
    for (int64_t p = 0; p < HW; ++p)
      for (int64_t j = 0; j < nb; ++j) base[p * C + j] = static_cast<scalar_t>(buf[p * nb + j]);
  } else {
    transpose_block<T, scalar_t>(buf, nb, dst + (n * C + c0) * HW, HW, HW, nb);
  }
}

// The kernels read maps that are contiguous channels-first or channels-last
// as they are; anything else is made contiguous first.
inline at::Tensor readable_map(const at::Tensor& input) {
  return input.is_contiguous() || input.is_contiguous(at::MemoryFormat::ChannelsLast) ? input : input.contiguous();
}

inline std::vector<int64_t> all_rois(int64_t K) {
  std::vector<int64_t> ids(K);
  for (int64_t k = 0; k < K; ++k) ids[k] = k;
  return ids;
}

// An uninitialized [N, C, H, W] map in either layout, on huge pages where
// the system allows.
inline at::Tensor empty_map(int64_t N, int64_t C, int64_t H, int64_t W, const at::TensorOptions& options,
                            bool channels_last) {
  at::Tensor t = channels_last ? at::empty({N, H, W, C}, options).permute({0, 3, 1, 2})
                               : at::empty({N, C, H, W}, options);
  advise_huge_pages(t);
  return t;
}

}  // namespace vo::cpu
