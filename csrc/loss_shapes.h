// Shapes of the elementwise IoU losses: boxes1 and boxes2 of one shape
// [..., 4] (the Python wrapper broadcasts them first, as torchvision's
// elementwise code does), the loss of shape [...] or a scalar.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "checks.h"

namespace vo {

struct LossShapes {
  at::Tensor boxes1;  // [K, 4], contiguous
  at::Tensor boxes2;  // [K, 4], contiguous
  std::vector<int64_t> out_shape;  // the leading dimensions
  int64_t K;
};

inline LossShapes loss_shapes(const at::Tensor& boxes1, const at::Tensor& boxes2, const char* op) {
  check_boxes(boxes1, op, "boxes1", 1, "[..., 4]");
  check_boxes(boxes2, op, "boxes2", 1, "[..., 4]");
  check_same_dtype_device(boxes1, boxes2, op, "boxes1", "boxes2");
  TORCH_CHECK(boxes1.sizes() == boxes2.sizes(), "visionops.", op,
              ": boxes1 and boxes2 must have the same shape, got ", shape_str(boxes1), " and ", shape_str(boxes2));
  LossShapes s;
  s.out_shape.assign(boxes1.sizes().begin(), boxes1.sizes().end() - 1);
  s.boxes1 = boxes1.reshape({-1, 4}).contiguous();
  s.boxes2 = boxes2.reshape({-1, 4}).contiguous();
  s.K = s.boxes1.size(0);
  return s;
}

// The upstream gradient: one per pair for 'none', a scalar otherwise.
inline void check_loss_grad(const at::Tensor& grad, const LossShapes& s, Reduction red, const char* op) {
  if (red == Reduction::None) {
    TORCH_CHECK(grad.sizes() == at::IntArrayRef(s.out_shape), "visionops.", op, ": grad must have shape ",
                at::IntArrayRef(s.out_shape), ", got ", shape_str(grad));
  } else {
    TORCH_CHECK(grad.dim() == 0, "visionops.", op, ": grad must be a scalar for a reduced loss, got ",
                shape_str(grad));
  }
}

}  // namespace vo
