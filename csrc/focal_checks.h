// Argument checks of sigmoid_focal_loss, shared by the CPU and CUDA kernels
// (mirrored by the fake kernel in visionops/_registrations.py).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "checks.h"

namespace vo {

inline void check_focal_args(const at::Tensor& inputs, const at::Tensor& targets, const char* op) {
  TORCH_CHECK(at::isFloatingType(inputs.scalar_type()), "visionops.", op,
              ": inputs must be a floating point tensor, got ", inputs.scalar_type());
  // torchvision's binary_cross_entropy_with_logits raises ValueError here.
  TORCH_CHECK_VALUE(inputs.sizes() == targets.sizes(), "visionops.", op, ": targets must have the shape of inputs, ",
                    shape_str(inputs), ", got ", shape_str(targets));
  TORCH_CHECK(at::isFloatingType(targets.scalar_type()), "visionops.", op,
              ": targets must be a floating point tensor, got ", targets.scalar_type());
  TORCH_CHECK(inputs.device() == targets.device(), "visionops.", op,
              ": inputs and targets must be on the same device, got ", inputs.device(), " and ", targets.device());
}

}  // namespace vo
