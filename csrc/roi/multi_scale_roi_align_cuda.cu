// CUDA kernels of multi_scale_roi_align and its backward: every RoI of
// every level in one launch. Each thread maps its RoI to a level with
// roi/math.h's fpn_level and pools from that level's map with the
// roi_align core of align_core_cuda.cuh. No host synchronization.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "core/cuda_launch.h"
#include "roi/align_core_cuda.cuh"
#include "roi/args.h"

namespace vo {
namespace {

using cuda::map_view;
using cuda::MapView;

// The levels travel to the kernels by value, as kernel arguments.
constexpr int64_t kMaxLevels = 8;

template <typename P, typename T>
struct Levels {
  MapView<P> map[kMaxLevels];
  T scale[kMaxLevels];
  LevelMapping mapping;
};

template <typename P, typename T>
Levels<P, T> levels_of(const LevelMapping& m, at::ArrayRef<double> scales) {
  Levels<P, T> l{};
  l.mapping = m;
  for (int64_t i = 0; i < m.levels; ++i) l.scale[i] = static_cast<T>(scales[i]);
  return l;
}

// The RoI's level, or -1 when it pools nothing.
template <typename P, typename T>
__device__ int64_t roi_level(const Levels<P, T>& l, const T* r) {
  return roi_map_level<T>(l.mapping, r);
}

// Grid (K RoIs, chunks of each RoI's outputs): each block pools one RoI from
// its level (see roi_align_block).
template <typename scalar_t, typename T>
__global__ void multi_scale_forward_kernel(Levels<const scalar_t, T> levels, const T* __restrict__ rois, int64_t C,
                                           int64_t PH, int64_t PW, int64_t sampling_ratio, bool channel_fastest,
                                           scalar_t* __restrict__ out) {
  __shared__ cuda::SharedPoints<T> sp;
  const int64_t k = blockIdx.x;
  const int64_t per_roi = C * PH * PW;
  const int64_t chunk = (per_roi + gridDim.y - 1) / gridDim.y;
  const int64_t e_begin = blockIdx.y * chunk;
  const int64_t e_end = e_begin + chunk < per_roi ? e_begin + chunk : per_roi;
  const T* r = rois + 5 * k;
  const int64_t lvl = roi_level(levels, r);
  const MapView<const scalar_t>& m = levels.map[lvl >= 0 ? lvl : 0];
  // No level, a bad batch index or an empty map: the RoI pools zeros.
  const int64_t n = (lvl >= 0 && m.H > 0 && m.W > 0) ? roi_batch_index(r[0], m.N) : -1;
  cuda::roi_align_block<scalar_t, T>(m, n, r + 1, levels.scale[lvl >= 0 ? lvl : 0], PH, PW, sampling_ratio, false,
                                     channel_fastest, e_begin, e_end, out + k * per_roi, sp);
}

template <typename T>
__global__ void multi_scale_backward_kernel(Levels<T, T> levels, const T* __restrict__ grad,
                                            const T* __restrict__ rois, int64_t K, int64_t C, int64_t PH, int64_t PW,
                                            int64_t sampling_ratio) {
  const int64_t total = K * C * PH * PW;
  VO_CUDA_1D_KERNEL_LOOP(i, total) {
    const cuda::RoiElement e = cuda::roi_element(i, C, PH, PW, false);
    const T* r = rois + 5 * e.k;
    const int64_t lvl = roi_level(levels, r);
    if (lvl < 0) continue;
    const MapView<T>& g = levels.map[lvl];
    const int64_t n = roi_batch_index(r[0], g.N);
    if (n < 0 || g.H == 0 || g.W == 0) continue;
    cuda::roi_align_bin_scatter<T>(g, n, e.c, r + 1, levels.scale[lvl], e.ph, e.pw, PH, PW, sampling_ratio, false,
                                   grad + i);
  }
}

template <typename T>
__global__ void level_kernel(Levels<T, T> levels, const T* __restrict__ rois, int64_t K,
                             int64_t* __restrict__ level) {
  VO_CUDA_1D_KERNEL_LOOP(k, K) { level[k] = roi_level(levels, rois + 5 * k); }
}

void check_level_count(int64_t levels, const char* op) {
  TORCH_CHECK(levels <= kMaxLevels, "visionops.", op, ": at most ", kMaxLevels,
              " feature maps are supported on CUDA, got ", levels);
}

at::Tensor multi_scale_roi_align_cuda(at::TensorList features, const at::Tensor& rois,
                                      at::ArrayRef<double> spatial_scales, int64_t pooled_h, int64_t pooled_w,
                                      int64_t sampling_ratio, int64_t canonical_scale, int64_t canonical_level,
                                      double eps) {
  constexpr const char* op = "multi_scale_roi_align";
  const LevelMapping m = check_multi_scale_args(features, rois, spatial_scales, pooled_h, pooled_w,
                                                canonical_scale, canonical_level, eps, op);
  check_sampling_ratio(sampling_ratio, op);
  check_level_count(m.levels, op);
  const at::Tensor& f0 = features[0];
  const c10::cuda::CUDAGuard guard(f0.device());
  const int64_t K = rois.size(0), C = f0.size(1);
  at::Tensor out = at::empty({K, C, pooled_h, pooled_w}, f0.options());
  if (out.numel() == 0) return out;
  TORCH_CHECK(K <= std::numeric_limits<int32_t>::max(), "visionops.", op, ": at most 2^31 - 1 RoIs, got ", K);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f0.scalar_type(), "multi_scale_roi_align", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor r = rois.to(c10::CppTypeToScalarType<T>::value).contiguous();
    auto levels = levels_of<const scalar_t, T>(m, spatial_scales);
    bool all_channels_last = true;
    for (int64_t l = 0; l < m.levels; ++l) {
      levels.map[l] = map_view(features[l], features[l].const_data_ptr<scalar_t>());
      all_channels_last = all_channels_last && cuda::is_channels_last(features[l]);
    }
    const dim3 grid(static_cast<unsigned int>(K), cuda::chunks_per_roi(K, C * pooled_h * pooled_w, cuda::kThreads));
    multi_scale_forward_kernel<scalar_t, T><<<grid, cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        levels, r.const_data_ptr<T>(), C, pooled_h, pooled_w, sampling_ratio, all_channels_last,
        out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::vector<at::Tensor> multi_scale_roi_align_backward_cuda(const at::Tensor& grad, const at::Tensor& rois,
                                                            at::ArrayRef<double> spatial_scales,
                                                            at::IntArrayRef heights, at::IntArrayRef widths,
                                                            int64_t N, int64_t C, int64_t sampling_ratio,
                                                            int64_t canonical_scale, int64_t canonical_level,
                                                            double eps, const c10::List<bool>& channels_last) {
  constexpr const char* op = "_multi_scale_roi_align_backward";
  const LevelMapping m =
      check_multi_scale_backward_args(grad, rois, spatial_scales, heights, widths, channels_last.size(), C,
                                      canonical_scale, canonical_level, eps, op);
  check_sampling_ratio(sampling_ratio, op);
  check_level_count(m.levels, op);
  const int64_t L = m.levels, K = rois.size(0);
  const int64_t pooled_h = grad.size(2), pooled_w = grad.size(3);
  const c10::cuda::CUDAGuard guard(grad.device());
  std::vector<at::Tensor> result;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "_multi_scale_roi_align_backward",
                                  [&] {
    using T = at::opmath_type<scalar_t>;
    constexpr auto acc_type = c10::CppTypeToScalarType<T>::value;
    std::vector<at::Tensor> gx;
    auto levels = levels_of<T, T>(m, spatial_scales);
    for (int64_t l = 0; l < L; ++l) {
      gx.push_back(zeros_map(N, C, heights[l], widths[l], grad.options().dtype(acc_type), channels_last.get(l)));
      levels.map[l] = map_view(gx.back(), gx.back().mutable_data_ptr<T>());
    }
    if (grad.numel() > 0) {
      const at::Tensor g = grad.to(acc_type).contiguous();
      const at::Tensor r = rois.to(acc_type).contiguous();
      auto stream = at::cuda::getCurrentCUDAStream();
      if (at::globalContext().deterministicAlgorithms()) {
        // One gather per level, over the RoIs of that level.
        at::Tensor level = at::empty({K}, grad.options().dtype(at::kLong));
        level_kernel<T><<<cuda::blocks_for(K), cuda::kThreads, 0, stream>>>(levels, r.const_data_ptr<T>(), K,
                                                                              level.mutable_data_ptr<int64_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        at::Tensor geometry =
            at::empty({K * static_cast<int64_t>(sizeof(cuda::RoiGeometry<T>))}, grad.options().dtype(at::kByte));
        auto* geo = reinterpret_cast<cuda::RoiGeometry<T>*>(geometry.mutable_data_ptr<uint8_t>());
        for (int64_t l = 0; l < L; ++l) {
          const int64_t total = gx[l].numel();
          if (total == 0) continue;
          cuda::roi_geometry_kernel<T><<<cuda::blocks_for(K), cuda::kThreads, 0, stream>>>(
              r.const_data_ptr<T>(), K, N, levels.scale[l], pooled_h, pooled_w, sampling_ratio, false,
              level.const_data_ptr<int64_t>(), l, geo);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
          cuda::roi_align_gather_kernel<T>
              <<<static_cast<unsigned int>((total + cuda::kThreads - 1) / cuda::kThreads), cuda::kThreads, 0,
                 stream>>>(levels.map[l], channels_last.get(l), g.const_data_ptr<T>(), geo, K, pooled_h, pooled_w);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        }
      } else {
        multi_scale_backward_kernel<T><<<cuda::blocks_for(g.numel()), cuda::kThreads, 0, stream>>>(
            levels, g.const_data_ptr<T>(), r.const_data_ptr<T>(), K, C, pooled_h, pooled_w, sampling_ratio);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    }
    for (int64_t l = 0; l < L; ++l) result.push_back(gx[l].to(grad.scalar_type()));
  });
  return result;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("multi_scale_roi_align", &vo::multi_scale_roi_align_cuda);
  m.impl("_multi_scale_roi_align_backward", &vo::multi_scale_roi_align_backward_cuda);
}
