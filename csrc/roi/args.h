// Arguments of the RoI ops (roi_align, roi_pool, multi_scale_roi_align):
// checks and output layout shared by the CPU and CUDA entry points.
// visionops/ops/roi.py's fake kernels raise the same messages.
#pragma once

#include <ATen/ATen.h>

#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/checks.h"
#include "core/limits.h"
#include "roi/math.h"

namespace vo {

inline void check_roi_input(const at::Tensor& input, const char* op, const char* arg = "input") {
  TORCH_CHECK(input.dim() == 4, "visionops.", op, ": ", arg, " must be a 4-D tensor [N, C, H, W], got ",
              shape_str(input));
  TORCH_CHECK(at::isFloatingType(input.scalar_type()), "visionops.", op, ": ", arg,
              " must be a floating point tensor, got ", input.scalar_type());
}

inline void check_rois(const at::Tensor& rois, const at::Tensor& input, const char* op) {
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, "visionops.", op, ": rois must have shape [K, 5], got ",
              shape_str(rois));
  check_same_dtype_device(input, rois, op, "input", "rois");
}

inline void check_output_size(int64_t pooled_height, int64_t pooled_width, const char* op) {
  TORCH_CHECK_VALUE(pooled_height >= 0 && pooled_width >= 0, "visionops.", op,
                    ": output_size must not be negative, got (", pooled_height, ", ", pooled_width, ")");
  check_at_most(pooled_height > pooled_width ? pooled_height : pooled_width, kMaxPooledSide, op, "output_size",
                "bins per side");
}

// Checked before any work: the points of a bin are sampling_ratio^2.
inline void check_sampling_ratio(int64_t sampling_ratio, const char* op) {
  check_at_most(sampling_ratio, kMaxSamplingRatio, op, "sampling_ratio",
                "sampling points per bin side; 0 or less picks about one per pixel");
}

// The output gradient of K RoIs over C channels.
inline void check_roi_grad(const at::Tensor& grad, int64_t K, int64_t C, int64_t pooled_h, int64_t pooled_w,
                           const char* op) {
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == K && grad.size(1) == C && grad.size(2) == pooled_h &&
                  grad.size(3) == pooled_w,
              "visionops.", op, ": grad must have shape [", K, ", ", C, ", ", pooled_h, ", ", pooled_w, "], got ",
              shape_str(grad));
}

// roi_pool's argmax holds pixel indices h * W + w as int32.
inline void check_roi_pool_map(const at::Tensor& input, const char* op) {
  TORCH_CHECK(input.size(2) * input.size(3) <= std::numeric_limits<int32_t>::max(), "visionops.", op,
              ": input maps of more than 2^31 pixels are not supported (argmax is int32), got ", shape_str(input));
}

inline void check_roi_pool_argmax(const at::Tensor& argmax, const at::Tensor& grad, const char* op) {
  TORCH_CHECK(argmax.sizes() == grad.sizes() && argmax.scalar_type() == at::kInt, "visionops.", op,
              ": argmax must be an int32 tensor of grad's shape ", shape_str(grad), ", got ", argmax.scalar_type(),
              " ", shape_str(argmax));
  TORCH_CHECK(argmax.device() == grad.device(), "visionops.", op, ": argmax must be on ", grad.device(), ", got ",
              argmax.device());
}

// A zero [N, C, H, W] map stored channels-last (N, H, W, C) or channels-first.
// (at::zeros ignores a memory format passed in its options.)
inline at::Tensor zeros_map(int64_t N, int64_t C, int64_t H, int64_t W, const at::TensorOptions& options,
                            bool channels_last) {
  if (!channels_last) return at::zeros({N, C, H, W}, options);
  return at::zeros({N, H, W, C}, options).permute({0, 3, 1, 2});
}

// ---- multi_scale_roi_align: FPN maps of one batch and channel count, one
// scale each, and the level mapping their scales give.
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
  return level_mapping(scales.data(), static_cast<int64_t>(scales.size()), canonical_scale, canonical_level, eps);
}

// The backward's arguments: one scale, size and layout per level, and grad
// [K, C, PH, PW] of rois' dtype and device.
inline LevelMapping check_multi_scale_backward_args(const at::Tensor& grad, const at::Tensor& rois,
                                                    at::ArrayRef<double> scales, at::IntArrayRef heights,
                                                    at::IntArrayRef widths, int64_t layouts, int64_t C,
                                                    int64_t canonical_scale, int64_t canonical_level, double eps,
                                                    const char* op) {
  const int64_t L = static_cast<int64_t>(scales.size());
  TORCH_CHECK(L > 0 && static_cast<int64_t>(heights.size()) == L && static_cast<int64_t>(widths.size()) == L &&
                  layouts == L,
              "visionops.", op, ": spatial_scales, heights, widths and channels_last must have one entry per level");
  check_rois(rois, grad, op);
  TORCH_CHECK(grad.dim() == 4, "visionops.", op, ": grad must be 4-D, got ", shape_str(grad));
  check_roi_grad(grad, rois.size(0), C, grad.size(2), grad.size(3), op);
  return level_mapping(scales.data(), L, canonical_scale, canonical_level, eps);
}

}  // namespace vo
