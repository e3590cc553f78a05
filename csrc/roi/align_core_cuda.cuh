// The CUDA RoI Align core, shared by roi_align and multi_scale_roi_align.
// Geometry and weights are roi/math.h's, as on the CPU.
//
// Maps are read and written through their strides, so channels-first and
// channels-last maps are both used in place. Thread order follows the map:
// channel-fastest for channels-last maps, so a warp's reads of one sampling
// point are one coalesced run of channels, and its weights, computed by
// every lane at once, cost one pass.
//
// Backward: the default path adds each point's share into the gradient map
// with atomics. The deterministic path (torch.use_deterministic_algorithms)
// gathers instead: one thread per gradient element visits the RoIs in order
// and sums what each contributes to its pixel, so the order of the sum is
// fixed. It needs no memory beyond the gradient map itself.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>

#include <cstdint>
#include <type_traits>

#include "core/macros.h"
#include "roi/math.h"

namespace vo::cuda {

// A [N, C, H, W] map seen through its strides.
template <typename T>
struct MapView {
  T* data;
  int64_t sN, sC, sH, sW;
  int64_t N, C, H, W;

  __device__ __forceinline__ T* at(int64_t n, int64_t c, int64_t y, int64_t x) const {
    return data + n * sN + c * sC + y * sH + x * sW;
  }
};

template <typename P>
inline MapView<P> map_view(const at::Tensor& t, P* data) {
  return {data, t.stride(0), t.stride(1), t.stride(2), t.stride(3), t.size(0), t.size(1), t.size(2), t.size(3)};
}

// Threads run channel-fastest over channels-last maps: coalesced reads.
inline bool is_channels_last(const at::Tensor& t) {
  return !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// Element i of an [N, C, H, W] map in its memory order: channel-fastest
// (channels-last) or column-fastest (channels-first).
struct MapElement {
  int64_t n, c, y, x;
};

__device__ __forceinline__ MapElement map_element(int64_t i, int64_t C, int64_t H, int64_t W, bool channel_fastest) {
  MapElement e;
  if (channel_fastest) {
    e.c = i % C;
    int64_t r = i / C;
    e.x = r % W;
    r /= W;
    e.y = r % H;
    e.n = r / H;
  } else {
    e.x = i % W;
    int64_t r = i / W;
    e.y = r % H;
    r /= H;
    e.c = r % C;
    e.n = r / C;
  }
  return e;
}

// Element i of a [K, C, PH, PW] iteration space, channel-fastest or
// bin-fastest (pw, then ph, then c, then k).
struct RoiElement {
  int64_t k, c, ph, pw;
};

__device__ __forceinline__ RoiElement roi_element(int64_t i, int64_t C, int64_t PH, int64_t PW,
                                                  bool channel_fastest) {
  RoiElement e;
  if (channel_fastest) {
    e.c = i % C;
    int64_t r = i / C;
    e.pw = r % PW;
    r /= PW;
    e.ph = r % PH;
    e.k = r / PH;
  } else {
    e.pw = i % PW;
    int64_t r = i / PW;
    e.ph = r % PH;
    r /= PH;
    e.c = r % C;
    e.k = r / C;
  }
  return e;
}

// The average of bin (ph, pw) of channel c of image n for the RoI
// (x1, y1, x2, y2) = box[0..3].
template <typename scalar_t, typename T>
__device__ T roi_align_bin(const MapView<const scalar_t>& m, int64_t n, int64_t c, const T* box, T scale,
                           int64_t ph, int64_t pw, int64_t PH, int64_t PW, int64_t sampling_ratio, bool aligned) {
  const RoiAlignAxis<T> ay = roi_align_axis(box[1], box[3], scale, PH, sampling_ratio, aligned);
  const RoiAlignAxis<T> ax = roi_align_axis(box[0], box[2], scale, PW, sampling_ratio, aligned);
  int64_t y0, y1, x0, x1;
  roi_align_point_range(ay, ph, m.H, y0, y1);
  roi_align_point_range(ax, pw, m.W, x0, x1);
  T acc = T(0);
  for (int64_t iy = y0; iy < y1; ++iy) {
    AxisWeights<T> wy;
    if (!bilinear_axis(roi_align_sample(ay, ph, iy), m.H, wy)) continue;
    for (int64_t ix = x0; ix < x1; ++ix) {
      AxisWeights<T> wx;
      if (!bilinear_axis(roi_align_sample(ax, pw, ix), m.W, wx)) continue;
      const CornerWeights<T> w = corner_weights(wy, wx);
      acc += w.w1 * static_cast<T>(*m.at(n, c, wy.lo, wx.lo)) + w.w2 * static_cast<T>(*m.at(n, c, wy.lo, wx.hi)) +
             w.w3 * static_cast<T>(*m.at(n, c, wy.hi, wx.lo)) + w.w4 * static_cast<T>(*m.at(n, c, wy.hi, wx.hi));
    }
  }
  return acc / roi_align_count<T>(ay.grid, ax.grid);
}

// ---------------------------------------------------------------- forward, one block per RoI
//
// The block computes the RoI's sampling points and their bilinear weights
// once, into shared memory, and its threads then produce the RoI's (channel,
// bin) outputs from them: the weights of a bin serve all its channels. RoIs
// with more points than the shared arrays hold (huge adaptive grids) fall
// back to each thread computing its own (roi_align_bin).

constexpr int kSharedPoints = 256;  // per axis
constexpr int kSharedBins = 64;     // per axis

template <typename T>
struct SharedPoints {
  AxisWeights<T> ys[kSharedPoints], xs[kSharedPoints];
  int ybegin[kSharedBins + 1], xbegin[kSharedBins + 1];
  bool fits;
};

// The on-map points of every bin of one axis; false when they do not fit.
template <typename T>
__device__ bool fill_axis(const RoiAlignAxis<T>& a, int64_t bins, int64_t size, AxisWeights<T>* pts, int* begin) {
  if (bins > kSharedBins) return false;
  int count = 0;
  for (int64_t p = 0; p < bins; ++p) {
    begin[p] = count;
    int64_t first, last;
    roi_align_point_range(a, p, size, first, last);
    for (int64_t i = first; i < last; ++i) {
      AxisWeights<T> w;
      if (!bilinear_axis(roi_align_sample(a, p, i), size, w)) continue;
      if (count == kSharedPoints) return false;
      pts[count++] = w;
    }
  }
  begin[bins] = count;
  return true;
}

// Outputs [e_begin, e_end) (in the order roi_element gives, k fixed) of one
// RoI on image n; every thread of the block must call it (it synchronizes).
// out_k points at the RoI's [C, PH, PW] output.
template <typename scalar_t, typename T>
__device__ void roi_align_block(const MapView<const scalar_t>& m, int64_t n, const T* box, T scale, int64_t PH,
                                int64_t PW, int64_t sampling_ratio, bool aligned, bool channel_fastest,
                                int64_t e_begin, int64_t e_end, scalar_t* out_k, SharedPoints<T>& sp) {
  const RoiAlignAxis<T> ay = roi_align_axis(box[1], box[3], scale, PH, sampling_ratio, aligned);
  const RoiAlignAxis<T> ax = roi_align_axis(box[0], box[2], scale, PW, sampling_ratio, aligned);
  const T count = roi_align_count<T>(ay.grid, ax.grid);
  if (threadIdx.x == 0) {
    sp.fits = n >= 0 && fill_axis(ay, PH, m.H, sp.ys, sp.ybegin) && fill_axis(ax, PW, m.W, sp.xs, sp.xbegin);
  }
  __syncthreads();
  for (int64_t e = e_begin + threadIdx.x; e < e_end; e += blockDim.x) {
    const RoiElement el = roi_element(e, m.C, PH, PW, channel_fastest);
    T v = T(0);
    if (sp.fits) {
      for (int iy = sp.ybegin[el.ph]; iy < sp.ybegin[el.ph + 1]; ++iy) {
        const AxisWeights<T> wy = sp.ys[iy];
        for (int ix = sp.xbegin[el.pw]; ix < sp.xbegin[el.pw + 1]; ++ix) {
          const AxisWeights<T> wx = sp.xs[ix];
          const CornerWeights<T> w = corner_weights(wy, wx);
          v += w.w1 * static_cast<T>(*m.at(n, el.c, wy.lo, wx.lo)) +
               w.w2 * static_cast<T>(*m.at(n, el.c, wy.lo, wx.hi)) +
               w.w3 * static_cast<T>(*m.at(n, el.c, wy.hi, wx.lo)) +
               w.w4 * static_cast<T>(*m.at(n, el.c, wy.hi, wx.hi));
        }
      }
      v = v / count;
    } else if (n >= 0) {
      v = roi_align_bin<scalar_t, T>(m, n, el.c, box, scale, el.ph, el.pw, PH, PW, sampling_ratio, aligned);
    }
    out_k[(el.c * PH + el.ph) * PW + el.pw] = static_cast<scalar_t>(v);
  }
  __syncthreads();  // sp is reused by the block's next RoI
}

// Blocks per RoI along the grid's y axis: enough blocks to fill the GPU a
// few times over even with few RoIs, each with at least a block of work.
inline unsigned int chunks_per_roi(int64_t K, int64_t per_roi, int threads) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t want = (4 * sms + K - 1) / (K > 0 ? K : 1);
  const int64_t most = (per_roi + threads - 1) / threads;
  const int64_t c = want < most ? want : most;
  return static_cast<unsigned int>(c < 1 ? 1 : (c > 65535 ? 65535 : c));
}

// Adds v[0, kVec) to kVec consecutive values at p: one vector atomic for a
// pair of floats on sm_90 and later (8-byte aligned by the callers), scalar
// atomics otherwise.
template <typename T, int kVec>
__device__ __forceinline__ void atomic_add_vec(T* p, const T* v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr bool kPairOfFloats = std::is_same_v<T, float> && kVec == 2;
#else
  constexpr bool kPairOfFloats = false;
#endif
  if constexpr (kPairOfFloats) {
    atomicAdd(reinterpret_cast<float2*>(p), make_float2(v[0], v[1]));
  } else {
    for (int j = 0; j < kVec; ++j) atomicAdd(p + j, v[j]);
  }
}

// Adds the share of bin (ph, pw) of kVec consecutive channels c, c + 1, ...
// (grad[0, kVec)) into the gradient map g, with atomics. kVec > 1 needs the
// channels adjacent in g (channels-last).
template <typename T, int kVec = 1>
__device__ void roi_align_bin_scatter(const MapView<T>& g, int64_t n, int64_t c, const T* box, T scale, int64_t ph,
                                      int64_t pw, int64_t PH, int64_t PW, int64_t sampling_ratio, bool aligned,
                                      const T* grad) {
  const RoiAlignAxis<T> ay = roi_align_axis(box[1], box[3], scale, PH, sampling_ratio, aligned);
  const RoiAlignAxis<T> ax = roi_align_axis(box[0], box[2], scale, PW, sampling_ratio, aligned);
  const T count = roi_align_count<T>(ay.grid, ax.grid);
  int64_t y0, y1, x0, x1;
  roi_align_point_range(ay, ph, g.H, y0, y1);
  roi_align_point_range(ax, pw, g.W, x0, x1);
  for (int64_t iy = y0; iy < y1; ++iy) {
    AxisWeights<T> wy;
    if (!bilinear_axis(roi_align_sample(ay, ph, iy), g.H, wy)) continue;
    for (int64_t ix = x0; ix < x1; ++ix) {
      AxisWeights<T> wx;
      if (!bilinear_axis(roi_align_sample(ax, pw, ix), g.W, wx)) continue;
      const CornerWeights<T> w = corner_weights(wy, wx);
      T v1[kVec], v2[kVec], v3[kVec], v4[kVec];
      for (int j = 0; j < kVec; ++j) {
        v1[j] = grad[j] * w.w1 / count;
        v2[j] = grad[j] * w.w2 / count;
        v3[j] = grad[j] * w.w3 / count;
        v4[j] = grad[j] * w.w4 / count;
      }
      atomic_add_vec<T, kVec>(g.at(n, c, wy.lo, wx.lo), v1);
      atomic_add_vec<T, kVec>(g.at(n, c, wy.lo, wx.hi), v2);
      atomic_add_vec<T, kVec>(g.at(n, c, wy.hi, wx.lo), v3);
      atomic_add_vec<T, kVec>(g.at(n, c, wy.hi, wx.hi), v4);
    }
  }
}

// ---------------------------------------------------------------- deterministic backward

// What the gather kernel needs of one RoI, computed once per RoI.
template <typename T>
struct RoiGeometry {
  RoiAlignAxis<T> ay, ax;
  T count;
  int64_t n;        // image, or -1: the RoI contributes nothing here
  T ymin, ymax;     // the range of its sampling positions (NaN-safe: see below)
  T xmin, xmax;
};

template <typename T>
__device__ void axis_span(const RoiAlignAxis<T>& a, int64_t bins, T& lo, T& hi) {
  const T e0 = a.start, e1 = a.start + a.bin * static_cast<T>(bins);
  lo = e0 < e1 ? e0 : e1;
  hi = e0 < e1 ? e1 : e0;
  // NaN bounds would reject nothing by comparison; make them reject all:
  // every point of such a RoI is NaN anyway and contributes nothing.
  if (!(lo == lo) || !(hi == hi)) {
    lo = T(1);
    hi = T(-1);
  }
}

// Geometry of every RoI; level (optional) keeps only the RoIs of one map.
template <typename T>
__global__ void roi_geometry_kernel(const T* rois, int64_t K, int64_t N, T scale, int64_t PH, int64_t PW,
                                    int64_t sampling_ratio, bool aligned, const int64_t* level, int64_t keep_level,
                                    RoiGeometry<T>* out) {
  VO_CUDA_1D_KERNEL_LOOP(k, K) {
    const T* r = rois + 5 * k;
    RoiGeometry<T> g;
    g.ay = roi_align_axis(r[2], r[4], scale, PH, sampling_ratio, aligned);
    g.ax = roi_align_axis(r[1], r[3], scale, PW, sampling_ratio, aligned);
    g.count = roi_align_count<T>(g.ay.grid, g.ax.grid);
    g.n = roi_batch_index(r[0], N);
    if (level != nullptr && level[k] != keep_level) g.n = -1;
    axis_span(g.ay, PH, g.ymin, g.ymax);
    axis_span(g.ax, PW, g.xmin, g.xmax);
    out[k] = g;
  }
}

// Total weight that the points of bin p put on pixel `pixel` of an axis.
template <typename T>
__device__ T axis_weight_on(const RoiAlignAxis<T>& a, int64_t p, int64_t size, int64_t pixel) {
  int64_t i0, i1;
  roi_align_point_range(a, p, size, i0, i1);
  T w = T(0);
  for (int64_t i = i0; i < i1; ++i) {
    AxisWeights<T> aw;
    if (!bilinear_axis(roi_align_sample(a, p, i), size, aw)) continue;
    if (aw.lo == pixel) w += aw.wlo;
    if (aw.hi == pixel) w += aw.whi;
  }
  return w;
}

constexpr int kGeometryTile = 64;

// One thread per element of the gradient map g (in g's memory order). The
// output gradient `grad` is [K, C, PH, PW] contiguous.
template <typename T>
__global__ void roi_align_gather_kernel(MapView<T> g, bool channel_fastest, const T* grad,
                                        const RoiGeometry<T>* geometry, int64_t K, int64_t PH, int64_t PW) {
  __shared__ RoiGeometry<T> tile[kGeometryTile];
  const int64_t total = g.N * g.C * g.H * g.W;
  // Every thread of the block walks the same RoI tiles, so the loop runs to
  // the block's last element and threads past the end only help load.
  const int64_t block_first = static_cast<int64_t>(blockIdx.x) * blockDim.x;
  const int64_t i = block_first + threadIdx.x;
  const MapElement e = i < total ? map_element(i, g.C, g.H, g.W, channel_fastest) : MapElement{0, 0, 0, 0};
  const int64_t n = e.n, c = e.c, y = e.y, x = e.x;
  const T fy = static_cast<T>(y), fx = static_cast<T>(x);
  T sum = T(0);
  for (int64_t k0 = 0; k0 < K; k0 += kGeometryTile) {
    __syncthreads();
    if (threadIdx.x < kGeometryTile && k0 + threadIdx.x < K) tile[threadIdx.x] = geometry[k0 + threadIdx.x];
    __syncthreads();
    if (i >= total) continue;
    const int64_t kn = K - k0 < kGeometryTile ? K - k0 : kGeometryTile;
    for (int64_t j = 0; j < kn; ++j) {
      const RoiGeometry<T>& r = tile[j];
      // A point at position p touches pixels floor(p) and floor(p) + 1, or
      // (clamped) pixel 0 or the last: one pixel of margin suffices, two
      // leave room for rounding. The exact test follows.
      if (r.n != n || fy < r.ymin - T(2) || fy > r.ymax + T(2) || fx < r.xmin - T(2) || fx > r.xmax + T(2))
        continue;
      const T* gk = grad + ((k0 + j) * g.C + c) * PH * PW;
      for (int64_t ph = 0; ph < PH; ++ph) {
        const T wy = axis_weight_on(r.ay, ph, g.H, y);
        if (wy == T(0)) continue;
        for (int64_t pw = 0; pw < PW; ++pw) {
          const T wx = axis_weight_on(r.ax, pw, g.W, x);
          if (wx == T(0)) continue;
          sum += gk[ph * PW + pw] * (wy * wx) / r.count;
        }
      }
    }
  }
  if (i < total) *g.at(n, c, y, x) = sum;
}

}  // namespace vo::cuda
