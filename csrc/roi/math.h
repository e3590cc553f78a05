// RoI geometry shared by the CPU and CUDA kernels of roi_align, roi_pool and
// multi_scale_roi_align: where a RoI's bins lie on the feature map, where
// their sampling points fall, and the bilinear weights of each point.
//
// The formulas and their order of operations are torchvision's (which took
// them from Caffe2/Detectron), so that float32 results agree bit for bit
// where the inputs are finite. What torchvision leaves undefined is defined
// here once, for every device:
//   - a batch index outside [0, N) (after truncation, as torchvision casts
//     it) or NaN marks the RoI invalid: it pools zeros and gets no gradient,
//     on the CPU as on CUDA (where refusing it would cost a host sync);
//   - a sampling point at a NaN or infinite position contributes nothing
//     (torchvision reads pixel 0 for it, or crashes on the int cast);
//   - an adaptive sampling grid is capped at kMaxSamplingGrid points per bin
//     side, and only the points that fall on the map are visited, so a huge
//     RoI costs at most a few passes over the map instead of hanging.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/macros.h"

namespace vo {

// 2^24 points per bin side: beyond it, float32 cannot tell the points apart.
constexpr int64_t kMaxSamplingGrid = int64_t(1) << 24;

// rois[k, 0] is a float batch index that torchvision truncates to int.
// -1 marks an invalid index (outside [0, batch) after truncation, or NaN).
template <typename T>
VO_HOST_DEVICE_INLINE int64_t roi_batch_index(T v, int64_t batch) {
  return (v > T(-1) && v < static_cast<T>(batch)) ? static_cast<int64_t>(v) : -1;
}

// ---------------------------------------------------------------- RoI Align

// One axis (y or x) of one RoI in RoI Align: `bins` bins of `bin` pixels
// from `start`, each sampled at `grid` evenly spaced points.
template <typename T>
struct RoiAlignAxis {
  T start;
  T bin;
  int64_t grid;
};

// lo and hi are the RoI's coordinates on this axis in image space.
template <typename T>
VO_HOST_DEVICE_INLINE RoiAlignAxis<T> roi_align_axis(T lo, T hi, T spatial_scale, int64_t bins,
                                                      int64_t sampling_ratio, bool aligned) {
  // aligned: pixel i covers [i, i + 1), so its centre is i + 0.5; shifting
  // the box by half a pixel makes a sample at the box corner land on a pixel
  // centre (Detectron2's fix). The legacy mode instead stretches every RoI to
  // at least 1 x 1 pixel.
  const T offset = aligned ? T(0.5) : T(0);
  const T start = lo * spatial_scale - offset;
  const T end = hi * spatial_scale - offset;
  T size = end - start;
  if (!aligned) size = size < T(1) ? T(1) : size;  // NaN stays NaN, as std::max(size, 1) keeps it
  RoiAlignAxis<T> a;
  a.start = start;
  a.bin = size / static_cast<T>(bins);
  if (sampling_ratio > 0) {
    a.grid = sampling_ratio;
  } else {
    // ceil(size / bins) points: about one per pixel. Not positive (an
    // inverted aligned RoI) or NaN: no points at all, as torchvision's
    // negative int grid gives.
    const T g = std::ceil(size / static_cast<T>(bins));
    a.grid = g >= T(1) ? (g < static_cast<T>(kMaxSamplingGrid) ? static_cast<int64_t>(g) : kMaxSamplingGrid) : 0;
  }
  return a;
}

// The average over a bin divides by every grid point, on the map or not.
template <typename T>
VO_HOST_DEVICE_INLINE T roi_align_count(int64_t grid_h, int64_t grid_w) {
  const int64_t n = grid_h * grid_w;
  return static_cast<T>(n > 1 ? n : 1);
}

// Position of sampling point i of bin p (torchvision's expression, term for term).
template <typename T>
VO_HOST_DEVICE_INLINE T roi_align_sample(const RoiAlignAxis<T>& a, int64_t p, int64_t i) {
  return a.start + static_cast<T>(p) * a.bin +
         static_cast<T>(static_cast<float>(i) + .5f) * a.bin / static_cast<T>(a.grid);
}

template <typename T>
VO_HOST_DEVICE_INLINE bool roi_align_on_map(T pos, int64_t size) {
  // Written as !(inside) so that NaN is outside.
  return pos >= T(-1) && pos <= static_cast<T>(size);
}

// The sampling points of bin p that can fall on a map of `size` pixels, as
// a range [first, last) of point indices. Positions are monotonic in i (each
// rounding step is), so those on the map are one contiguous run; a binary
// search finds it when the grid is large. Callers still test each point.
template <typename T>
VO_HOST_DEVICE_INLINE void roi_align_point_range(const RoiAlignAxis<T>& a, int64_t p, int64_t size, int64_t& first,
                                                 int64_t& last) {
  first = 0;
  last = a.grid;
  if (a.grid <= 64) return;
  const bool rising = a.bin >= T(0);
  // The first point past the start of the run, then the first past its end.
  int64_t lo = 0, hi = a.grid;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    const T pos = roi_align_sample(a, p, mid);
    const bool before = rising ? pos < T(-1) : pos > static_cast<T>(size);
    if (before) lo = mid + 1; else hi = mid;
  }
  first = lo;
  hi = a.grid;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    const T pos = roi_align_sample(a, p, mid);
    const bool past = rising ? pos > static_cast<T>(size) : pos < T(-1);
    if (past) hi = mid; else lo = mid + 1;
  }
  last = lo;
}

// Bilinear interpolation along one axis: the point reads pixels lo and hi
// with weights (1 - l) and l.
template <typename T>
struct AxisWeights {
  int64_t lo;
  int64_t hi;
  T wlo;
  T whi;
};

// False when the point lies off the map by more than one pixel (or is NaN):
// it then contributes nothing. Points within a pixel of the edge clamp to it.
template <typename T>
VO_HOST_DEVICE_INLINE bool bilinear_axis(T pos, int64_t size, AxisWeights<T>& w) {
  if (!roi_align_on_map(pos, size)) return false;
  if (pos <= T(0)) pos = T(0);
  int64_t lo = static_cast<int64_t>(pos);
  int64_t hi;
  if (lo >= size - 1) {
    lo = hi = size - 1;
    pos = static_cast<T>(lo);
  } else {
    hi = lo + 1;
  }
  const T l = pos - static_cast<T>(lo);
  w.lo = lo;
  w.hi = hi;
  w.whi = l;
  w.wlo = T(1) - l;
  return true;
}

// The four corner weights of a point, in torchvision's order: (lo, lo),
// (lo, hi), (hi, lo), (hi, hi) as (y, x).
template <typename T>
struct CornerWeights {
  T w1, w2, w3, w4;
};

template <typename T>
VO_HOST_DEVICE_INLINE CornerWeights<T> corner_weights(const AxisWeights<T>& y, const AxisWeights<T>& x) {
  return {y.wlo * x.wlo, y.wlo * x.whi, y.whi * x.wlo, y.whi * x.whi};
}

// ---------------------------------------------------------------- RoI Pool

// torchvision rounds the scaled corners to whole pixels (half away from zero)
// and casts them to int; huge or NaN values make that cast undefined. Here
// they saturate at +-2^30, which is off any map, and NaN gives -2^30.
template <typename T>
VO_HOST_DEVICE_INLINE int64_t roi_pool_corner(T v, T spatial_scale) {
  const T r = std::round(v * spatial_scale);
  constexpr T kLimit = T(1 << 30);
  if (!(r > -kLimit)) return -(int64_t(1) << 30);  // NaN too
  return r < kLimit ? static_cast<int64_t>(r) : (int64_t(1) << 30);
}

template <typename T>
struct RoiPoolAxis {
  int64_t start;  // first pixel of the RoI
  T bin;          // bin size in pixels
};

// A RoI whose coordinates are NaN pools nothing: all of its bins are empty.
template <typename T>
VO_HOST_DEVICE_INLINE RoiPoolAxis<T> roi_pool_axis(T lo, T hi, T spatial_scale, int64_t bins, bool& finite) {
  finite = finite && (lo == lo) && (hi == hi);
  const int64_t start = roi_pool_corner(lo, spatial_scale);
  const int64_t end = roi_pool_corner(hi, spatial_scale);
  const int64_t size = end - start + 1 > 1 ? end - start + 1 : 1;  // malformed RoIs become 1 pixel
  return {start, static_cast<T>(size) / static_cast<T>(bins)};
}

// Pixels [begin, end) of bin p, clipped to a map of `size` pixels.
template <typename T>
VO_HOST_DEVICE_INLINE void roi_pool_bin(const RoiPoolAxis<T>& a, int64_t p, int64_t size, int64_t& begin,
                                        int64_t& end) {
  const int64_t b = static_cast<int64_t>(std::floor(static_cast<T>(p) * a.bin)) + a.start;
  const int64_t e = static_cast<int64_t>(std::ceil(static_cast<T>(p + 1) * a.bin)) + a.start;
  begin = b < 0 ? 0 : (b > size ? size : b);
  end = e < 0 ? 0 : (e > size ? size : e);
}

// torchvision starts every non-empty bin's maximum at -FLT_MAX, for every dtype.
constexpr float kRoiPoolLowest = -3.402823466e+38f;

// ---------------------------------------------------------------- FPN level mapping

// The FPN paper's eq. 1 as torchvision's LevelMapper evaluates it:
// floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps), clamped
// to [k_min, k_max], minus k_min. A NaN (a NaN box, or an area below zero)
// gives -1: torchvision's level for it matches no feature map, so the RoI's
// output stays zero. Same for us.
template <typename T>
VO_HOST_DEVICE_INLINE int64_t fpn_level(T x1, T y1, T x2, T y2, int64_t canonical_scale, int64_t canonical_level,
                                        T eps, int64_t k_min, int64_t k_max) {
  const T area = (x2 - x1) * (y2 - y1);
  const T s = std::sqrt(area);
  T t = std::floor((static_cast<T>(canonical_level) + std::log2(s / static_cast<T>(canonical_scale))) + eps);
  if (!(t == t)) return -1;
  if (t < static_cast<T>(k_min)) t = static_cast<T>(k_min);
  if (t > static_cast<T>(k_max)) t = static_cast<T>(k_max);
  return static_cast<int64_t>(t) - k_min;
}

// Which map each RoI pools from: fixed once per call by the maps' scales.
struct LevelMapping {
  int64_t levels;
  int64_t k_min, k_max;  // FPN levels of the first and last map
  int64_t canonical_scale, canonical_level;
  double eps;
};

// torchvision infers each map's level as int(-log2(scale)) in float32, and
// its LevelMapper uses only the first and the last.
inline LevelMapping level_mapping(const double* scales, int64_t levels, int64_t canonical_scale,
                                  int64_t canonical_level, double eps) {
  const auto level_of = [](double s) { return static_cast<int64_t>(-std::log2(static_cast<float>(s))); };
  return {levels, level_of(scales[0]), level_of(scales[levels - 1]), canonical_scale, canonical_level, eps};
}

// The map RoI r = (batch index, x1, y1, x2, y2) pools from, or -1 when it
// pools nothing (its level is NaN or past the last map).
template <typename T>
VO_HOST_DEVICE_INLINE int64_t roi_map_level(const LevelMapping& m, const T* r) {
  if (m.levels == 1) return 0;  // torchvision skips the mapping for a single map
  const int64_t l = fpn_level<T>(r[1], r[2], r[3], r[4], m.canonical_scale, m.canonical_level, static_cast<T>(m.eps),
                                 m.k_min, m.k_max);
  return l < m.levels ? l : -1;
}

}  // namespace vo
