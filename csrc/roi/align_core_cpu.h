// The CPU RoI Align core, shared by roi_align and multi_scale_roi_align.
//
// Layout: the kernels read and accumulate channel slices of the maps stored
// channels-last (map_slices.h). A sampling point's four pixels are then four
// contiguous runs of channels, and one point's weights, computed once, serve
// every channel of the slice in a vector loop.
//
// Exactness: per channel, the sums run in torchvision's order (points in
// row-major order within a bin, corners 1 to 4, then the division by the
// count), so float32 results are bitwise torchvision's on finite inputs.
// Points off the map are skipped instead of adding 0 * pixel 0.
//
// Backward: the gradient map is split by (image, channel block), one per
// task, and each task visits the image's RoIs in order. No two tasks write the same
// element and each element's sum has a fixed order, so the result is bitwise
// the same for any thread count, without atomics.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/cpu_isa.h"
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

  // roi: (x1, y1, x2, y2) in image space.
  void build(const T* roi, T spatial_scale, int64_t height, int64_t width, int64_t pooled_h, int64_t pooled_w,
             int64_t sampling_ratio, bool aligned) {
    const RoiAlignAxis<T> ay = roi_align_axis(roi[1], roi[3], spatial_scale, pooled_h, sampling_ratio, aligned);
    const RoiAlignAxis<T> ax = roi_align_axis(roi[0], roi[2], spatial_scale, pooled_w, sampling_ratio, aligned);
    count = roi_align_count<T>(ay.grid, ax.grid);
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

// Forward of one RoI over the nb channels of a channels-last slice x (pixel
// (y, x) at x + (y * W + x) * ld). acc is scratch of nb values. Bin
// (ph, pw) of channel j goes to out[j * out_c_stride + ph * pooled_w + pw].
template <typename T, typename out_t>
void roi_align_forward_one(const T* __restrict__ x, int64_t ld, int64_t nb, int64_t W,
                                               const RoiAlignPoints<T>& pts, int64_t pooled_h, int64_t pooled_w,
                                               T* __restrict__ acc, out_t* __restrict__ out, int64_t out_c_stride) {
  for (int64_t ph = 0; ph < pooled_h; ++ph) {
    for (int64_t pw = 0; pw < pooled_w; ++pw) {
      for (int64_t c = 0; c < nb; ++c) acc[c] = T(0);
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
          for (int64_t c = 0; c < nb; ++c) acc[c] += w.w1 * p1[c] + w.w2 * p2[c] + w.w3 * p3[c] + w.w4 * p4[c];
        }
      }
      out_t* o = out + ph * pooled_w + pw;
      const T count = pts.count;
      for (int64_t c = 0; c < nb; ++c) o[c * out_c_stride] = static_cast<out_t>(acc[c] / count);
    }
  }
}

// Backward of one RoI into a channels-last gradient slice gx of nb channels
// (pixel (y, x) at gx + (y * W + x) * nb). g holds the RoI's output gradient
// as [bin][nb].
template <typename T>
void roi_align_backward_one(T* __restrict__ gx, int64_t nb, int64_t W,
                                                const RoiAlignPoints<T>& pts, int64_t pooled_h, int64_t pooled_w,
                                                const T* __restrict__ g) {
  const T count = pts.count;
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
          for (int64_t c = 0; c < nb; ++c) p1[c] += gb[c] * w.w1 / count;
          T* p2 = rlo + xw.hi * nb;
          for (int64_t c = 0; c < nb; ++c) p2[c] += gb[c] * w.w2 / count;
          T* p3 = rhi + xw.lo * nb;
          for (int64_t c = 0; c < nb; ++c) p3[c] += gb[c] * w.w3 / count;
          T* p4 = rhi + xw.hi * nb;
          for (int64_t c = 0; c < nb; ++c) p4[c] += gb[c] * w.w4 / count;
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
  at::parallel_for(0, N * blocks, 1, [&](int64_t t0, int64_t t1) {
    RoiAlignPoints<T> pts;
    std::vector<T> buf, acc(kSliceChannels);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / blocks, c0 = (t % blocks) * kSliceChannels;
      if (groups.begin[n] == groups.begin[n + 1]) continue;
      const int64_t nb = std::min(kSliceChannels, C - c0);
      const MapSlice<T> x = reader.read(n, c0, nb, buf);
      for (int64_t i = groups.begin[n]; i < groups.begin[n + 1]; ++i) {
        const int64_t k = groups.order[i];
        pts.build(rois + 5 * k + 1, scale, H, W, p.pooled_h, p.pooled_w, p.sampling_ratio, p.aligned);
        with_cpu_isa([&] { roi_align_forward_one<T, scalar_t>(x.data, x.ld, nb, W, pts, p.pooled_h, p.pooled_w, acc.data(),
                                           out + (k * C + c0) * bins, bins); });
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
        with_cpu_isa([&] { roi_align_backward_one<T>(slice.data(), nb, W, pts, p.pooled_h, p.pooled_w, gbuf.data()); });
      }
      write_slice<T, scalar_t>(slice.data(), nb, grad_map, channels_last, n, c0);
    }
  });
}

}  // namespace vo::cpu
