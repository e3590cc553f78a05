// CPU kernels of multi_scale_roi_align (torchvision's MultiScaleRoIAlign in
// one call) and its backward. Each RoI's FPN level comes from
// roi/math.h's fpn_level; the pooling is the roi_align core of
// align_core_cpu.h on that level's map. torchvision instead loops over the
// levels in Python, gathering and scattering the RoIs of each.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/huge_pages.h"
#include "roi/align_core_cpu.h"
#include "roi/args.h"
#include "roi/map_slices.h"

namespace vo {
namespace {

// Level of each RoI: -1 where the RoI pools nothing.
template <typename T>
std::vector<int64_t> roi_levels(const T* roi, int64_t K, const LevelMapping& m) {
  std::vector<int64_t> level(K);
  for (int64_t k = 0; k < K; ++k) level[k] = roi_map_level<T>(m, roi + 5 * k);
  return level;
}

// The RoIs of each level, in order.
std::vector<std::vector<int64_t>> rois_per_level(const std::vector<int64_t>& level, int64_t L) {
  std::vector<std::vector<int64_t>> ids(L);
  for (int64_t k = 0; k < static_cast<int64_t>(level.size()); ++k)
    if (level[k] >= 0) ids[level[k]].push_back(k);
  return ids;
}

at::Tensor multi_scale_roi_align_cpu(at::TensorList features, const at::Tensor& rois,
                                     at::ArrayRef<double> spatial_scales, int64_t pooled_h, int64_t pooled_w,
                                     int64_t sampling_ratio, int64_t canonical_scale, int64_t canonical_level,
                                     double eps) {
  constexpr const char* op = "multi_scale_roi_align";
  const LevelMapping m = check_multi_scale_args(features, rois, spatial_scales, pooled_h, pooled_w,
                                                canonical_scale, canonical_level, eps, op);
  check_sampling_ratio(sampling_ratio, op);
  const at::Tensor& f0 = features[0];
  const int64_t K = rois.size(0), N = f0.size(0), C = f0.size(1);
  at::Tensor out = at::empty({K, C, pooled_h, pooled_w}, f0.options());
  if (out.numel() == 0) return out;
  advise_huge_pages(out);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f0.scalar_type(), "multi_scale_roi_align", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor r = rois.to(c10::CppTypeToScalarType<T>::value).contiguous();
    const T* roi = r.data_ptr<T>();
    std::vector<int64_t> level = roi_levels(roi, K, m);
    for (const int64_t k : cpu::invalid_rois(roi, K, N)) level[k] = -1;  // pools zeros
    const auto ids = rois_per_level(level, m.levels);
    // RoIs that map to no level, or to an empty map, pool zeros.
    const int64_t per_roi = C * pooled_h * pooled_w;
    scalar_t* outp = out.data_ptr<scalar_t>();
    for (int64_t k = 0; k < K; ++k) {
      const int64_t l = level[k];
      if (l < 0 || features[l].size(2) == 0 || features[l].size(3) == 0)
        std::fill(outp + k * per_roi, outp + (k + 1) * per_roi, scalar_t(0));
    }
    for (int64_t l = 0; l < m.levels; ++l) {
      const at::Tensor& f = features[l];
      if (ids[l].empty() || f.size(2) == 0 || f.size(3) == 0) continue;
      const cpu::RoisByImage<T> groups(roi, ids[l], N);
      cpu::roi_align_forward_map<scalar_t, T>(cpu::readable_map(f), roi, groups,
                                              {spatial_scales[l], pooled_h, pooled_w, sampling_ratio, false},
                                              outp);
    }
  });
  return out;
}

std::vector<at::Tensor> multi_scale_roi_align_backward_cpu(const at::Tensor& grad, const at::Tensor& rois,
                                                           at::ArrayRef<double> spatial_scales,
                                                           at::IntArrayRef heights, at::IntArrayRef widths, int64_t N,
                                                           int64_t C, int64_t sampling_ratio, int64_t canonical_scale,
                                                           int64_t canonical_level, double eps,
                                                           const c10::List<bool>& channels_last) {
  constexpr const char* op = "_multi_scale_roi_align_backward";
  const LevelMapping m =
      check_multi_scale_backward_args(grad, rois, spatial_scales, heights, widths, channels_last.size(), C,
                                      canonical_scale, canonical_level, eps, op);
  check_sampling_ratio(sampling_ratio, op);
  const int64_t L = m.levels, K = rois.size(0);
  const int64_t pooled_h = grad.size(2), pooled_w = grad.size(3);
  std::vector<at::Tensor> result;
  for (int64_t l = 0; l < L; ++l)
    result.push_back(cpu::empty_map(N, C, heights[l], widths[l], grad.options(), channels_last.get(l)));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "_multi_scale_roi_align_backward",
                                  [&] {
    using T = at::opmath_type<scalar_t>;
    constexpr auto acc_type = c10::CppTypeToScalarType<T>::value;
    const at::Tensor r = rois.to(acc_type).contiguous();
    const T* roi = r.data_ptr<T>();
    const auto ids = rois_per_level(roi_levels(roi, K, m), L);  // RoIsByImage leaves out invalid batch indices
    const at::Tensor g = grad.to(acc_type).contiguous();
    for (int64_t l = 0; l < L; ++l) {
      if (result[l].numel() == 0) continue;
      const cpu::RoisByImage<T> groups(roi, ids[l], N);
      cpu::roi_align_backward_map<scalar_t, T>(g.data_ptr<T>(), roi, groups,
                                               {spatial_scales[l], pooled_h, pooled_w, sampling_ratio, false},
                                               result[l], channels_last.get(l));
    }
  });
  return result;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("multi_scale_roi_align", &vo::multi_scale_roi_align_cpu);
  m.impl("_multi_scale_roi_align_backward", &vo::multi_scale_roi_align_backward_cpu);
}
