// Arguments of multi_scale_roi_align, shared by the CPU and CUDA kernels:
// the checks (mirrored in visionops/_registrations.py) and the FPN level
// mapping derived from the maps' scales.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "roi_checks.h"

namespace vo {

struct LevelMapping {
  int64_t levels;
  int64_t k_min, k_max;  // FPN levels of the first and last map
  int64_t canonical_scale, canonical_level;
  double eps;
};

// torchvision: k = int(-log2(scale)) in float32, for the first and last map.
inline LevelMapping level_mapping(at::ArrayRef<double> scales, int64_t canonical_scale, int64_t canonical_level,
                                  double eps) {
  const auto level_of = [](double s) { return static_cast<int64_t>(-std::log2(static_cast<float>(s))); };
  return {static_cast<int64_t>(scales.size()), level_of(scales.front()), level_of(scales.back()), canonical_scale,
          canonical_level, eps};
}

inline LevelMapping check_multi_scale_args(at::TensorList features, const at::Tensor& rois,
                                           at::ArrayRef<double> scales, int64_t pooled_h, int64_t pooled_w,
                                           int64_t canonical_scale, int64_t canonical_level, double eps,
                                           const char* op) {
  TORCH_CHECK_VALUE(!features.empty(), "visionops.", op, ": features must hold at least one feature map");
  TORCH_CHECK_VALUE(scales.size() == features.size(), "visionops.", op,
                    ": spatial_scales must have one scale per feature map, got ", scales.size(), " scales for ",
                    features.size(), " maps");
  const at::Tensor& f0 = features[0];
  for (size_t l = 0; l < features.size(); ++l) {
    const at::Tensor& f = features[l];
    check_roi_input(f, op, "features");
    check_same_dtype_device(f0, f, op, "features[0]", "every feature map");
    TORCH_CHECK(f.size(0) == f0.size(0) && f.size(1) == f0.size(1), "visionops.", op,
                ": every feature map must have the batch size and channels of features[0], ", shape_str(f0),
                ", got ", shape_str(f), " at level ", l);
    TORCH_CHECK_VALUE(scales[l] > 0 && std::isfinite(scales[l]), "visionops.", op,
                      ": spatial_scales must be positive and finite, got ", scales[l], " at level ", l);
  }
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, "visionops.", op, ": rois must have shape [K, 5], got ",
              shape_str(rois));
  check_same_dtype_device(f0, rois, op, "features", "rois");
  check_output_size(pooled_h, pooled_w, op);
  TORCH_CHECK_VALUE(canonical_scale > 0, "visionops.", op, ": canonical_scale must be positive, got ",
                    canonical_scale);
  return level_mapping(scales, canonical_scale, canonical_level, eps);
}

}  // namespace vo
