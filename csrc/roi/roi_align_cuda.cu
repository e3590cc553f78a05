// CUDA kernels of roi_align and its backward; the core is
// align_core_cuda.cuh, the geometry roi/math.h. No host synchronization:
// a RoI whose batch index is out of range pools zeros and passes no gradient
// (checking it would need a copy to the host).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <limits>

#include "core/cuda_launch.h"
#include "roi/align_core_cuda.cuh"
#include "roi/args.h"

namespace vo {
namespace {

using cuda::is_channels_last;
using cuda::map_view;
using cuda::MapView;

// Grid (K RoIs, chunks of each RoI's outputs); see roi_align_block.
template <typename scalar_t, typename T>
__global__ void roi_align_forward_kernel(MapView<const scalar_t> m, const T* __restrict__ rois, T scale, int64_t PH,
                                         int64_t PW, int64_t sampling_ratio, bool aligned, bool channel_fastest,
                                         scalar_t* __restrict__ out) {
  __shared__ cuda::SharedPoints<T> sp;
  const int64_t k = blockIdx.x;
  const int64_t per_roi = m.C * PH * PW;
  const int64_t chunk = (per_roi + gridDim.y - 1) / gridDim.y;
  const int64_t e_begin = blockIdx.y * chunk;
  const int64_t e_end = e_begin + chunk < per_roi ? e_begin + chunk : per_roi;
  const T* r = rois + 5 * k;
  cuda::roi_align_block<scalar_t, T>(m, roi_batch_index(r[0], m.N), r + 1, scale, PH, PW, sampling_ratio, aligned,
                                     channel_fastest, e_begin, e_end, out + k * per_roi, sp);
}

// One thread per kVec channels of one output bin. kVec = 2 for channels-last
// gradient maps with an even channel count: the pair's atomics go out as one.
template <typename T, int kVec>
__global__ void roi_align_backward_kernel(MapView<T> g, const T* __restrict__ grad, const T* __restrict__ rois,
                                          int64_t K, T scale, int64_t PH, int64_t PW, int64_t sampling_ratio,
                                          bool aligned) {
  const int64_t groups = g.C / kVec;
  const int64_t total = K * groups * PH * PW;
  VO_CUDA_1D_KERNEL_LOOP(i, total) {
    const cuda::RoiElement e = cuda::roi_element(i, groups, PH, PW, false);
    const T* r = rois + 5 * e.k;
    const int64_t n = roi_batch_index(r[0], g.N);
    if (n < 0) continue;
    const int64_t c = e.c * kVec;
    T gv[kVec];
    for (int j = 0; j < kVec; ++j) gv[j] = grad[((e.k * g.C + c + j) * PH + e.ph) * PW + e.pw];
    cuda::roi_align_bin_scatter<T, kVec>(g, n, c, r + 1, scale, e.ph, e.pw, PH, PW, sampling_ratio, aligned, gv);
  }
}

at::Tensor roi_align_cuda(const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                          int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  constexpr const char* op = "roi_align";
  check_roi_input(input, op);
  check_rois(rois, input, op);
  check_output_size(pooled_h, pooled_w, op);
  check_sampling_ratio(sampling_ratio, op);
  const c10::cuda::CUDAGuard guard(input.device());
  const int64_t K = rois.size(0), C = input.size(1);
  at::Tensor out = at::empty({K, C, pooled_h, pooled_w}, input.options());
  if (out.numel() == 0) return out;
  if (input.size(2) == 0 || input.size(3) == 0) return out.zero_();
  TORCH_CHECK(K <= std::numeric_limits<int32_t>::max(), "visionops.", op, ": at most 2^31 - 1 RoIs, got ", K);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor r = rois.to(c10::CppTypeToScalarType<T>::value).contiguous();
    const dim3 grid(static_cast<unsigned int>(K), cuda::chunks_per_roi(K, C * pooled_h * pooled_w, cuda::kThreads));
    roi_align_forward_kernel<scalar_t, T><<<grid, cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        map_view(input, input.const_data_ptr<scalar_t>()), r.const_data_ptr<T>(), static_cast<T>(spatial_scale),
        pooled_h, pooled_w, sampling_ratio, aligned, is_channels_last(input), out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor roi_align_backward_cuda(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                   int64_t pooled_h, int64_t pooled_w, int64_t N, int64_t C, int64_t H, int64_t W,
                                   int64_t sampling_ratio, bool aligned, bool channels_last) {
  constexpr const char* op = "_roi_align_backward";
  check_rois(rois, grad, op);
  const int64_t K = rois.size(0);
  check_roi_grad(grad, K, C, pooled_h, pooled_w, op);
  check_sampling_ratio(sampling_ratio, op);
  const c10::cuda::CUDAGuard guard(grad.device());
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "_roi_align_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    constexpr auto acc_type = c10::CppTypeToScalarType<T>::value;
    // Accumulated in float for half and bfloat16, then rounded once.
    at::Tensor gx = zeros_map(N, C, H, W, grad.options().dtype(acc_type), channels_last);
    if (gx.numel() > 0 && grad.numel() > 0) {
      const at::Tensor g = grad.to(acc_type).contiguous();
      const at::Tensor r = rois.to(acc_type).contiguous();
      const T scale = static_cast<T>(spatial_scale);
      auto stream = at::cuda::getCurrentCUDAStream();
      if (at::globalContext().deterministicAlgorithms()) {
        at::Tensor geometry =
            at::empty({K * static_cast<int64_t>(sizeof(cuda::RoiGeometry<T>))}, grad.options().dtype(at::kByte));
        auto* geo = reinterpret_cast<cuda::RoiGeometry<T>*>(geometry.mutable_data_ptr<uint8_t>());
        cuda::roi_geometry_kernel<T><<<cuda::blocks_for(K), cuda::kThreads, 0, stream>>>(
            r.const_data_ptr<T>(), K, N, scale, pooled_h, pooled_w, sampling_ratio, aligned, nullptr, 0, geo);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        const int64_t total = gx.numel();
        cuda::roi_align_gather_kernel<T>
            <<<static_cast<unsigned int>((total + cuda::kThreads - 1) / cuda::kThreads), cuda::kThreads, 0,
               stream>>>(map_view(gx, gx.mutable_data_ptr<T>()), channels_last, g.const_data_ptr<T>(), geo, K,
                         pooled_h, pooled_w);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      } else {
        const auto view = map_view(gx, gx.mutable_data_ptr<T>());
        if (channels_last && C % 2 == 0) {
          roi_align_backward_kernel<T, 2><<<cuda::blocks_for(g.numel() / 2), cuda::kThreads, 0, stream>>>(
              view, g.const_data_ptr<T>(), r.const_data_ptr<T>(), K, scale, pooled_h, pooled_w, sampling_ratio,
              aligned);
        } else {
          roi_align_backward_kernel<T, 1><<<cuda::blocks_for(g.numel()), cuda::kThreads, 0, stream>>>(
              view, g.const_data_ptr<T>(), r.const_data_ptr<T>(), K, scale, pooled_h, pooled_w, sampling_ratio,
              aligned);
        }
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
  m.impl("roi_align", &vo::roi_align_cuda);
  m.impl("_roi_align_backward", &vo::roi_align_backward_cuda);
}
