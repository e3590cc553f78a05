// Arguments of paste_masks: checks and the output shape, shared by the CPU
// and CUDA entry points. visionops/ops/masks.py's fake kernel raises the
// same messages.
#pragma once

#include <ATen/ATen.h>

#include <c10/util/Exception.h>

#include <cstdint>
#include <vector>

#include "core/checks.h"

namespace vo {

// More padding than this is surely a mistake (the resized mask would be
// almost all border); the bound keeps M + 2 * padding far from overflow.
constexpr int64_t kMaxPastePadding = int64_t(1) << 20;

// masks [N, 1, Mh, Mw] floating point, boxes [N, 4] floating point on the
// same device; height, width and padding non-negative. Returns the output
// shape [N, 1, height, width].
inline std::vector<int64_t> check_paste_masks_args(const at::Tensor& masks, const at::Tensor& boxes, int64_t height,
                                                   int64_t width, int64_t padding, const char* op) {
  TORCH_CHECK(masks.dim() == 4 && masks.size(1) == 1, "visionops.", op, ": masks must have shape [N, 1, M, M], got ",
              shape_str(masks));
  TORCH_CHECK(at::isFloatingType(masks.scalar_type()), "visionops.", op,
              ": masks must be a floating point tensor, got ", masks.scalar_type());
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4 && boxes.size(0) == masks.size(0), "visionops.", op,
              ": boxes must have shape [", masks.size(0), ", 4] (one box per mask), got ", shape_str(boxes));
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()), "visionops.", op,
              ": boxes must be a floating point tensor, got ", boxes.scalar_type());
  TORCH_CHECK(masks.device() == boxes.device(), "visionops.", op,
              ": masks and boxes must be on the same device, got ", masks.device(), " and ", boxes.device());
  TORCH_CHECK_VALUE(height >= 0 && width >= 0, "visionops.", op,
                    ": the image size must not be negative, got (", height, ", ", width, ")");
  TORCH_CHECK_VALUE(padding >= 0 && padding <= kMaxPastePadding, "visionops.", op,
                    ": padding must be in [0, ", kMaxPastePadding, "], got ", padding);
  TORCH_CHECK_VALUE(masks.size(0) == 0 || (masks.size(2) > 0 && masks.size(3) > 0), "visionops.", op,
                    ": masks must not be empty, got ", shape_str(masks));
  return {masks.size(0), 1, height, width};
}

}  // namespace vo
