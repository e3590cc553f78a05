// The CPU RoI Align core, shared by roi_align and multi_scale_roi_align.
//
// Layout: the kernels read and accumulate channel slices of the maps stored
// channels-last (map_slices.h). A sampling point's four pixels are then four
// contiguous runs of channels, and one point's weights, computed once, serve
// every channel of the slice in a vector loop. A channels-last float map
// needs no slices: the forward reads it in place, all channels of a RoI at
// once, with RoIs split over threads (roi_align_forward_in_place).
//
// Exactness: per channel, the sums run in torchvision's order (points in
// row-major order within a bin, corners 1 to 4, then the division by the
// count, done as a multiplication by the exact inverse when the count is a
// power of two), so float32 results are bitwise torchvision's on finite
// inputs. Points off the map are skipped instead of adding 0 * pixel 0.
//
// Backward: the gradient map is split by (image, channel block), one per
// task, and each task visits the image's RoIs in order. No two tasks write the same
// element and each element's sum has a fixed order, so the result is bitwise
// the same for any thread count, without atomics.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/cpu_isa.h"
#include "core/simd.h"
#include "core/macros.h"
#include "roi/map_slices.h"
#include "roi/math.h"

namespace vo::cpu {

// The sampling points of one RoI that fall on the map, per axis and bin.
template <typename T>
struct RoiAlignPoints {
  std::vector<AxisWeights<T>> ys, xs;
  std::vector<int64_t> ybegin, xbegin;  // bin p's points are [begin[p], begin[p + 1])
  T count = T(1);
  bool count_is_power_of_two = true;

  // roi: (x1, y1, x2, y2) in image space.
  void build(const T* roi, T spatial_scale, int64_t height, int64_t width, int64_t pooled_h, int64_t pooled_w,
             int64_t sampling_ratio, bool aligned) {
    const RoiAlignAxis<T> ay = roi_align_axis(roi[1], roi[3], spatial_scale, pooled_h, sampling_ratio, aligned);
    const RoiAlignAxis<T> ax = roi_align_axis(roi[0], roi[2], spatial_scale, pooled_w, sampling_ratio, aligned);
    count = roi_align_count<T>(ay.grid, ax.grid);
    const int64_t n = std::max<int64_t>(ay.grid * ax.grid, 1);
    count_is_power_of_two = (n & (n - 1)) == 0;
    fill(ay, pooled_h, height, ys, ybegin);
    fill(ax, pooled_w, width, xs, xbegin);
  }

 private:
  static void fill(const RoiAlignAxis<T>& a, int64_t bins, int64_t size, std::vector<AxisWeights<T>>& pts,
                   std::vector<int64_t>& begin) {
    pts.clear();
    begin.assign(bins + 1, 0);
    for (int64_t p = 0; p < bins; ++p) {
      begin[p] = static_cast<int64_t>(pts.size());
      int64_t first, last;
      roi_align_point_range(a, p, size, first, last);
      for (int64_t i = first; i < last; ++i) {
        AxisWeights<T> w;
        if (bilinear_axis(roi_align_sample(a, p, i), size, w)) pts.push_back(w);
      }
    }
    begin[bins] = static_cast<int64_t>(pts.size());
  }
};

// Division by a RoI's point count. Dividing by a power of two and
// multiplying by its inverse give the same result (both round the same exact
// quotient), and a vector multiplication costs a tenth of a division; the
// count is a power of two in the common case (sampling_ratio 2: 4 points).
template <typename T>
struct DivideBy {
  T d;
  T operator()(T v) const { return v / d; }
};
template <typename T>
struct MultiplyBy {
  T m;
  T operator()(T v) const { return v * m; }
};

// Calls f(divide) with the cheaper exact form of division by pts' count.
template <typename T, typename F>
void with_count_divider(const RoiAlignPoints<T>& pts, F&& f) {
  if (pts.count_is_power_of_two) {
    f(MultiplyBy<T>{T(1) / pts.count});
  } else {
    f(DivideBy<T>{pts.count});
  }
}

// Forward of one RoI over the nb channels of a channels-last slice x (pixel
// (y, x) at x + (y * W + x) * ld), into acc as [bin][nb]: bin (ph, pw) of
// channel j at acc[(ph * pooled_w + pw) * nb + j].
template <typename T, typename Divide>
void roi_align_forward_one(const T* __restrict__ x, int64_t ld, int64_t nb, int64_t W,
                           const RoiAlignPoints<T>& pts, int64_t pooled_h, int64_t pooled_w, Divide divide,
                           T* __restrict__ acc) {
  for (int64_t ph = 0; ph < pooled_h; ++ph) {
    for (int64_t pw = 0; pw < pooled_w; ++pw) {
      T* __restrict__ a = acc + (ph * pooled_w + pw) * nb;
      for (int64_t c = 0; c < nb; ++c) a[c] = T(0);
      for (int64_t iy = pts.ybegin[ph]; iy < pts.ybegin[ph + 1]; ++iy) {
        const AxisWeights<T>& y = pts.ys[iy];
        const T* rlo = x + y.lo * W * ld;
        const T* rhi = x + y.hi * W * ld;
        for (int64_t ix = pts.xbegin[pw]; ix < pts.xbegin[pw + 1]; ++ix) {
          const AxisWeights<T>& xw = pts.xs[ix];
          const CornerWeights<T> w = corner_weights(y, xw);
          const T* __restrict__ p1 = rlo + xw.lo * ld;
          const T* __restrict__ p2 = rlo + xw.hi * ld;
          const T* __restrict__ p3 = rhi + xw.lo * ld;
          const T* __restrict__ p4 = rhi + xw.hi * ld;
          for (int64_t c = 0; c < nb; ++c) a[c] += w.w1 * p1[c] + w.w2 * p2[c] + w.w3 * p3[c] + w.w4 * p4[c];
        }
      }
      for (int64_t c = 0; c < nb; ++c) a[c] = divide(a[c]);
    }
  }
}

// out[j * out_c_stride + b] = acc[b * nb + j]: one RoI's [bin][channel]
// results into the output's [channel][bin] order. Storing them one channel
// at a time from the accumulation loop cost as much as the accumulation (one
// scalar store per value); float blocks of 8 x 8 are transposed in
// registers instead.
template <typename T, typename out_t>
void store_channels_first(const T* acc, int64_t nb, int64_t bins, out_t* out, int64_t out_c_stride) {
  int64_t j0 = 0;
  if constexpr (std::is_same_v<T, float> && std::is_same_v<out_t, float>) {
    if (simd_available() && bins >= 8) {
      with_simd([&](auto s) {
        using S = decltype(s);
        for (; j0 + 8 <= nb; j0 += 8) {
          int64_t b = 0;
          for (; b + 8 <= bins; b += 8) S::transpose8x8_f32(acc + b * nb + j0, nb, out + j0 * out_c_stride + b, out_c_stride);
          for (; b < bins; ++b)
            for (int64_t j = j0; j < j0 + 8; ++j) out[j * out_c_stride + b] = acc[b * nb + j];
        }
      });
    }
  }
  for (int64_t j = j0; j < nb; ++j)
    for (int64_t b = 0; b < bins; ++b) out[j * out_c_stride + b] = static_cast<out_t>(acc[b * nb + j]);
}

// Backward of one RoI into a channels-last gradient slice gx of nb channels
// (pixel (y, x) at gx + (y * W + x) * nb). g holds the RoI's output gradient
// as [bin][nb].
template <typename T, typename Divide>
void roi_align_backward_one(T* __restrict__ gx, int64_t nb, int64_t W, const RoiAlignPoints<T>& pts,
                            int64_t pooled_h, int64_t pooled_w, Divide divide, const T* __restrict__ g) {
  for (int64_t ph = 0; ph < pooled_h; ++ph) {
    for (int64_t pw = 0; pw < pooled_w; ++pw) {
      const T* __restrict__ gb = g + (ph * pooled_w + pw) * nb;
      for (int64_t iy = pts.ybegin[ph]; iy < pts.ybegin[ph + 1]; ++iy) {
        const AxisWeights<T>& y = pts.ys[iy];
        T* rlo = gx + y.lo * W * nb;
        T* rhi = gx + y.hi * W * nb;
        for (int64_t ix = pts.xbegin[pw]; ix < pts.xbegin[pw + 1]; ++ix) {
          const AxisWeights<T>& xw = pts.xs[ix];
          const CornerWeights<T> w = corner_weights(y, xw);
          // The four corners may be the same pixel (clamped at the edge):
          // one corner at a time, in torchvision's order.
          T* p1 = rlo + xw.lo * nb;
          for (int64_t c = 0; c < nb; ++c) p1[c] += divide(gb[c] * w.w1);
          T* p2 = rlo + xw.hi * nb;
          for (int64_t c = 0; c < nb; ++c) p2[c] += divide(gb[c] * w.w2);
          T* p3 = rhi + xw.lo * nb;
          for (int64_t c = 0; c < nb; ++c) p3[c] += divide(gb[c] * w.w3);
          T* p4 = rhi + xw.hi * nb;
          for (int64_t c = 0; c < nb; ++c) p4[c] += divide(gb[c] * w.w4);
        }
      }
    }
  }
}


// The RoI Align geometry of one call.
struct RoiAlignParams {
  double spatial_scale;
  int64_t pooled_h, pooled_w, sampling_ratio;
  bool aligned;
};

// Forward of the RoIs `groups` on a channels-last map read in place: nothing
// to transpose, so a task is a run of RoIs with all C channels at once (one
// set of sampling points per RoI, long vector loops), in a spatial order per
// image so that consecutive RoIs find each other's pixels in cache. Each RoI
// writes only its own output: any split over threads gives the same result.
template <typename T>
void roi_align_forward_in_place(const SliceReader<T, T>& reader, const T* rois, RoisByImage<T> groups,
                                const RoiAlignParams& p, int64_t H, int64_t W, int64_t C, T* out) {
  const int64_t N = static_cast<int64_t>(groups.begin.size()) - 1;
  const int64_t bins = p.pooled_h * p.pooled_w;
  const T scale = static_cast<T>(p.spatial_scale);
  groups.sort_spatially(rois);
  std::vector<int64_t> image(groups.order.size());
  for (int64_t n = 0; n < N; ++n) std::fill(image.begin() + groups.begin[n], image.begin() + groups.begin[n + 1], n);
  // About 64 KiB of output per task.
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, C * bins));
  at::parallel_for(0, static_cast<int64_t>(groups.order.size()), grain, [&](int64_t i0, int64_t i1) {
    RoiAlignPoints<T> pts;
    std::vector<T> acc(bins * C);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t k = groups.order[i];
      pts.build(rois + 5 * k + 1, scale, H, W, p.pooled_h, p.pooled_w, p.sampling_ratio, p.aligned);
      with_count_divider(pts, [&](auto divide) {
        with_cpu_isa([&] {
          roi_align_forward_one(reader.image(image[i]), C, C, W, pts, p.pooled_h, p.pooled_w, divide, acc.data());
        });
      });
      store_channels_first(acc.data(), C, bins, out + k * C * bins, bins);
    }
  });
}

// Forward of the RoIs `groups` on one map (any dtype; channels-first or
// channels-last contiguous) into out ([K, C, PH, PW] contiguous). Tasks are
// (image, channel block) pairs.
template <typename scalar_t, typename T>
void roi_align_forward_map(const at::Tensor& map, const T* rois, const RoisByImage<T>& groups,
                           const RoiAlignParams& p, scalar_t* out) {
  const int64_t N = map.size(0), C = map.size(1), H = map.size(2), W = map.size(3);
  const int64_t bins = p.pooled_h * p.pooled_w;
  const int64_t blocks = (C + kSliceChannels - 1) / kSliceChannels;
  const SliceReader<scalar_t, T> reader(map);
  const T scale = static_cast<T>(p.spatial_scale);
  if constexpr (std::is_same_v<scalar_t, T>) {
    if (reader.in_place()) {
      roi_align_forward_in_place(reader, rois, groups, p, H, W, C, out);
      return;
    }
  }
  at::parallel_for(0, N * blocks, 1, [&](int64_t t0, int64_t t1) {
    RoiAlignPoints<T> pts;
    std::vector<T> buf, acc(bins * kSliceChannels);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / blocks, c0 = (t % blocks) * kSliceChannels;
      if (groups.begin[n] == groups.begin[n + 1]) continue;
      const int64_t nb = std::min(kSliceChannels, C - c0);
      const MapSlice<T> x = reader.read(n, c0, nb, buf);
      for (int64_t i = groups.begin[n]; i < groups.begin[n + 1]; ++i) {
        const int64_t k = groups.order[i];
        pts.build(rois + 5 * k + 1, scale, H, W, p.pooled_h, p.pooled_w, p.sampling_ratio, p.aligned);
        with_count_divider(pts, [&](auto divide) {
          with_cpu_isa([&] { roi_align_forward_one(x.data, x.ld, nb, W, pts, p.pooled_h, p.pooled_w, divide, acc.data()); });
        });
        store_channels_first(acc.data(), nb, bins, out + (k * C + c0) * bins, bins);
      }
    }
  });
}

// Backward of the RoIs `groups` into grad_map ([N, C, H, W] of scalar_t,
// either layout, every element written): grad is the output gradient as
// contiguous [K, C, PH, PW] of T.
template <typename scalar_t, typename T>
void roi_align_backward_map(const T* grad, const T* rois, const RoisByImage<T>& groups, const RoiAlignParams& p,
                            at::Tensor& grad_map, bool channels_last) {
  const int64_t N = grad_map.size(0), C = grad_map.size(1), H = grad_map.size(2), W = grad_map.size(3);
  const int64_t bins = p.pooled_h * p.pooled_w;
  const int64_t blocks = (C + kSliceChannels - 1) / kSliceChannels;
  const T scale = static_cast<T>(p.spatial_scale);
  at::parallel_for(0, N * blocks, 1, [&](int64_t t0, int64_t t1) {
    RoiAlignPoints<T> pts;
    std::vector<T> slice, gbuf(bins * kSliceChannels);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / blocks, c0 = (t % blocks) * kSliceChannels;
      const int64_t nb = std::min(kSliceChannels, C - c0);
      slice.assign(H * W * nb, T(0));
      for (int64_t i = groups.begin[n]; i < groups.begin[n + 1]; ++i) {
        const int64_t k = groups.order[i];
        pts.build(rois + 5 * k + 1, scale, H, W, p.pooled_h, p.pooled_w, p.sampling_ratio, p.aligned);
        const T* gk = grad + (k * C + c0) * bins;
        for (int64_t j = 0; j < nb; ++j)
          for (int64_t bin = 0; bin < bins; ++bin) gbuf[bin * nb + j] = gk[j * bins + bin];
        with_count_divider(pts, [&](auto divide) {
          with_cpu_isa([&] { roi_align_backward_one(slice.data(), nb, W, pts, p.pooled_h, p.pooled_w, divide, gbuf.data()); });
        });
      }
      write_slice<T, scalar_t>(slice.data(), nb, grad_map, channels_last, n, c0);
    }
  });
}

}  // namespace vo::cpu
