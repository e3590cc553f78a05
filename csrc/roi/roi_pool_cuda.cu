// CUDA kernels of roi_pool and its backward; the bin geometry is
// roi/math.h's. Maps are read through their strides (channels-last in
// place, channel-fastest threads). Backward: atomic adds at each bin's argmax
// by default; under torch.use_deterministic_algorithms a gather (one thread
// per gradient element, RoIs in order), which needs no extra memory.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <limits>
#include <tuple>

#include "core/cuda_launch.h"
#include "roi/align_core_cuda.cuh"
#include "roi/args.h"

namespace vo {
namespace {

using cuda::is_channels_last;
using cuda::map_view;
using cuda::MapView;

// One RoI's pooling geometry, computed once per RoI.
template <typename T>
struct PoolGeometry {
  RoiPoolAxis<T> ay, ax;
  int64_t n;  // -1: the RoI pools nothing (bad batch index or NaN coordinate)
};

template <typename T>
__device__ PoolGeometry<T> pool_geometry(const T* r, int64_t N, T scale, int64_t PH, int64_t PW) {
  PoolGeometry<T> g;
  bool finite = true;
  g.ay = roi_pool_axis(r[2], r[4], scale, PH, finite);
  g.ax = roi_pool_axis(r[1], r[3], scale, PW, finite);
  g.n = finite ? roi_batch_index(r[0], N) : -1;
  return g;
}

template <typename scalar_t, typename T>
__global__ void roi_pool_forward_kernel(MapView<const scalar_t> m, const T* __restrict__ rois, int64_t K, T scale,
                                        int64_t PH, int64_t PW, bool channel_fastest, scalar_t* __restrict__ out,
                                        int32_t* __restrict__ argmax) {
  const int64_t total = K * m.C * PH * PW;
  VO_CUDA_1D_KERNEL_LOOP(i, total) {
    const cuda::RoiElement e = cuda::roi_element(i, m.C, PH, PW, channel_fastest);
    const PoolGeometry<T> g = pool_geometry(rois + 5 * e.k, m.N, scale, PH, PW);
    int64_t h0 = 0, h1 = 0, w0 = 0, w1 = 0;
    if (g.n >= 0) {
      roi_pool_bin(g.ay, e.ph, m.H, h0, h1);
      roi_pool_bin(g.ax, e.pw, m.W, w0, w1);
    }
    T best = T(0);
    int32_t arg = -1;
    if (h1 > h0 && w1 > w0) {
      best = static_cast<T>(kRoiPoolLowest);
      for (int64_t h = h0; h < h1; ++h) {
        for (int64_t w = w0; w < w1; ++w) {
          const T v = static_cast<T>(*m.at(g.n, e.c, h, w));
          if (v > best) {  // the first maximum wins; NaN never does
            best = v;
            arg = static_cast<int32_t>(h * m.W + w);
          }
        }
      }
    }
    const int64_t o = ((e.k * m.C + e.c) * PH + e.ph) * PW + e.pw;
    out[o] = static_cast<scalar_t>(best);
    argmax[o] = arg;
  }
}

template <typename T>
__global__ void roi_pool_backward_kernel(MapView<T> g, const T* __restrict__ grad, const int32_t* __restrict__ argmax,
                                         const T* __restrict__ rois, int64_t K, int64_t PH, int64_t PW) {
  const int64_t total = K * g.C * PH * PW;
  VO_CUDA_1D_KERNEL_LOOP(i, total) {
    const int32_t a = argmax[i];
    if (a < 0 || a >= g.H * g.W) continue;
    const cuda::RoiElement e = cuda::roi_element(i, g.C, PH, PW, false);
    const int64_t n = roi_batch_index(rois[5 * e.k], g.N);
    if (n < 0) continue;
    atomicAdd(g.at(n, e.c, a / g.W, a % g.W), grad[i]);
  }
}

template <typename T>
__global__ void pool_geometry_kernel(const T* __restrict__ rois, int64_t K, int64_t N, T scale, int64_t PH,
                                     int64_t PW, PoolGeometry<T>* __restrict__ out) {
  VO_CUDA_1D_KERNEL_LOOP(k, K) { out[k] = pool_geometry(rois + 5 * k, N, scale, PH, PW); }
}

constexpr int kPoolTile = 64;

// One thread per element of g: the sum, over the RoIs in order, of the
// gradients of the bins whose argmax is this pixel.
template <typename T>
__global__ void roi_pool_gather_kernel(MapView<T> g, bool channel_fastest, const T* __restrict__ grad,
                                       const int32_t* __restrict__ argmax, const PoolGeometry<T>* geometry, int64_t K,
                                       int64_t PH, int64_t PW) {
  __shared__ PoolGeometry<T> tile[kPoolTile];
  const int64_t total = g.N * g.C * g.H * g.W;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const cuda::MapElement e = i < total ? cuda::map_element(i, g.C, g.H, g.W, channel_fastest)
                                       : cuda::MapElement{0, 0, 0, 0};
  const int64_t n = e.n, c = e.c, y = e.y, x = e.x;
  const int32_t pixel = static_cast<int32_t>(y * g.W + x);
  T sum = T(0);
  for (int64_t k0 = 0; k0 < K; k0 += kPoolTile) {
    __syncthreads();
    if (threadIdx.x < kPoolTile && k0 + threadIdx.x < K) tile[threadIdx.x] = geometry[k0 + threadIdx.x];
    __syncthreads();
    if (i >= total) continue;
    const int64_t kn = K - k0 < kPoolTile ? K - k0 : kPoolTile;
    for (int64_t j = 0; j < kn; ++j) {
      const PoolGeometry<T>& r = tile[j];
      if (r.n != n) continue;
      int64_t top, bottom, left, right, unused;
      roi_pool_bin(r.ay, 0, g.H, top, unused);
      roi_pool_bin(r.ay, PH - 1, g.H, unused, bottom);
      roi_pool_bin(r.ax, 0, g.W, left, unused);
      roi_pool_bin(r.ax, PW - 1, g.W, unused, right);
      if (y < top || y >= bottom || x < left || x >= right) continue;
      const int64_t base = ((k0 + j) * g.C + c) * PH * PW;
      for (int64_t ph = 0; ph < PH; ++ph) {
        int64_t h0, h1;
        roi_pool_bin(r.ay, ph, g.H, h0, h1);
        if (y < h0 || y >= h1) continue;
        for (int64_t pw = 0; pw < PW; ++pw) {
          int64_t w0, w1;
          roi_pool_bin(r.ax, pw, g.W, w0, w1);
          if (x < w0 || x >= w1) continue;
          if (argmax[base + ph * PW + pw] == pixel) sum += grad[base + ph * PW + pw];
        }
      }
    }
  }
  if (i < total) *g.at(n, c, y, x) = sum;
}

std::tuple<at::Tensor, at::Tensor> roi_pool_cuda(const at::Tensor& input, const at::Tensor& rois,
                                                 double spatial_scale, int64_t pooled_h, int64_t pooled_w) {
  constexpr const char* op = "roi_pool";
  check_roi_input(input, op);
  check_rois(rois, input, op);
  check_output_size(pooled_h, pooled_w, op);
  check_roi_pool_map(input, op);
  const c10::cuda::CUDAGuard guard(input.device());
  const int64_t K = rois.size(0), C = input.size(1);
  at::Tensor out = at::empty({K, C, pooled_h, pooled_w}, input.options());
  at::Tensor argmax = at::empty({K, C, pooled_h, pooled_w}, input.options().dtype(at::kInt));
  if (out.numel() == 0) return {out, argmax};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_pool", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor r = rois.to(c10::CppTypeToScalarType<T>::value).contiguous();
    roi_pool_forward_kernel<scalar_t, T>
        <<<cuda::blocks_for(out.numel()), cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
            map_view(input, input.const_data_ptr<scalar_t>()), r.const_data_ptr<T>(), K,
            static_cast<T>(spatial_scale), pooled_h, pooled_w, is_channels_last(input),
            out.mutable_data_ptr<scalar_t>(), argmax.mutable_data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out, argmax};
}

at::Tensor roi_pool_backward_cuda(const at::Tensor& grad, const at::Tensor& rois, const at::Tensor& argmax,
                                  double spatial_scale, int64_t pooled_h, int64_t pooled_w, int64_t N, int64_t C,
                                  int64_t H, int64_t W, bool channels_last) {
  constexpr const char* op = "_roi_pool_backward";
  check_rois(rois, grad, op);
  const int64_t K = rois.size(0);
  check_roi_grad(grad, K, C, pooled_h, pooled_w, op);
  check_roi_pool_argmax(argmax, grad, op);
  const c10::cuda::CUDAGuard guard(grad.device());
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "_roi_pool_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    constexpr auto acc_type = c10::CppTypeToScalarType<T>::value;
    at::Tensor gx = zeros_map(N, C, H, W, grad.options().dtype(acc_type), channels_last);
    if (gx.numel() > 0 && grad.numel() > 0) {
      const at::Tensor g = grad.to(acc_type).contiguous();
      const at::Tensor a = argmax.contiguous();
      const at::Tensor r = rois.to(acc_type).contiguous();
      auto stream = at::cuda::getCurrentCUDAStream();
      if (at::globalContext().deterministicAlgorithms()) {
        at::Tensor geometry =
            at::empty({K * static_cast<int64_t>(sizeof(PoolGeometry<T>))}, grad.options().dtype(at::kByte));
        auto* geo = reinterpret_cast<PoolGeometry<T>*>(geometry.mutable_data_ptr<uint8_t>());
        pool_geometry_kernel<T><<<cuda::blocks_for(K), cuda::kThreads, 0, stream>>>(
            r.const_data_ptr<T>(), K, N, static_cast<T>(spatial_scale), pooled_h, pooled_w, geo);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        const int64_t total = gx.numel();
        roi_pool_gather_kernel<T>
            <<<static_cast<unsigned int>((total + cuda::kThreads - 1) / cuda::kThreads), cuda::kThreads, 0,
               stream>>>(map_view(gx, gx.mutable_data_ptr<T>()), channels_last, g.const_data_ptr<T>(),
                         a.const_data_ptr<int32_t>(), geo, K, pooled_h, pooled_w);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      } else {
        roi_pool_backward_kernel<T><<<cuda::blocks_for(g.numel()), cuda::kThreads, 0, stream>>>(
            map_view(gx, gx.mutable_data_ptr<T>()), g.const_data_ptr<T>(), a.const_data_ptr<int32_t>(),
            r.const_data_ptr<T>(), K, pooled_h, pooled_w);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    }
    result = gx.to(grad.scalar_type());
  });
  return result;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("roi_pool", &vo::roi_pool_cuda);
  m.impl("_roi_pool_backward", &vo::roi_pool_backward_cuda);
}
