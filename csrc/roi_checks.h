// Argument checks of the RoI ops (roi_align, roi_pool, multi_scale_roi_align)
// shared by the CPU and CUDA kernels; visionops/_registrations.py repeats
// them in the fake kernels with the same messages.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <c10/util/Exception.h>

#include "checks.h"
#include "common/roi.h"

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
}

// A zero [N, C, H, W] map stored channels-last (N, H, W, C) or channels-first.
// (at::zeros ignores a memory format passed in its options.)
inline at::Tensor zeros_map(int64_t N, int64_t C, int64_t H, int64_t W, const at::TensorOptions& options,
                            bool channels_last) {
  if (!channels_last) return at::zeros({N, C, H, W}, options);
  return at::zeros({N, H, W, C}, options).permute({0, 3, 1, 2});
}

// Batch indices are values, checked where that costs no device sync: on the
// CPU, before any work. rois must be contiguous [K, 5] of type T.
template <typename T>
void check_roi_batch_indices(const T* rois, int64_t K, int64_t batch, const char* op) {
  for (int64_t k = 0; k < K; ++k) {
    const T v = rois[5 * k];
    TORCH_CHECK_INDEX(roi_batch_index(v, batch) >= 0, "visionops.", op, ": rois[", k, ", 0] = ",
                      static_cast<double>(v), " is not a batch index of input, which has batch size ", batch);
  }
}

}  // namespace vo
