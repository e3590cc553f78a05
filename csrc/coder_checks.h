// Argument checks of the box coding ops, shared by the CPU and CUDA kernels
// (and mirrored by the fake kernels in visionops/_registrations.py).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "checks.h"
#include "common/coder.h"

namespace vo {

template <typename T>
CoderWeights<T> check_coder_weights(at::ArrayRef<double> weights, const char* op) {
  TORCH_CHECK_VALUE(weights.size() == 4, "visionops.", op, ": weights must hold 4 values (x, y, w, h), got ",
                    weights.size());
  return {static_cast<T>(weights[0]), static_cast<T>(weights[1]), static_cast<T>(weights[2]),
          static_cast<T>(weights[3])};
}

inline void check_decode_args(const at::Tensor& rel_codes, const at::Tensor& boxes, const char* op) {
  TORCH_CHECK(rel_codes.dim() == 2 && rel_codes.size(1) % 4 == 0, "visionops.", op,
              ": rel_codes must have shape [N, 4 * C] (a multiple of 4 per box), got ", shape_str(rel_codes));
  TORCH_CHECK(at::isFloatingType(rel_codes.scalar_type()), "visionops.", op,
              ": rel_codes must be a floating point tensor, got ", rel_codes.scalar_type());
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4 && boxes.size(0) == rel_codes.size(0), "visionops.", op,
              ": boxes must have shape [", rel_codes.size(0), ", 4] (one per row of rel_codes), got ",
              shape_str(boxes));
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()), "visionops.", op,
              ": boxes must be a floating point tensor, got ", boxes.scalar_type());
  TORCH_CHECK(rel_codes.device() == boxes.device(), "visionops.", op,
              ": rel_codes and boxes must be on the same device, got ", rel_codes.device(), " and ", boxes.device());
}

inline void check_encode_args(const at::Tensor& reference_boxes, const at::Tensor& proposals, const char* op) {
  TORCH_CHECK(reference_boxes.dim() == 2 && reference_boxes.size(1) == 4, "visionops.", op,
              ": reference_boxes must have shape [N, 4], got ", shape_str(reference_boxes));
  TORCH_CHECK(proposals.dim() == 2 && proposals.size(1) == 4 && proposals.size(0) == reference_boxes.size(0),
              "visionops.", op, ": proposals must have shape [", reference_boxes.size(0),
              ", 4] (one per reference box), got ", shape_str(proposals));
  TORCH_CHECK(at::isFloatingType(reference_boxes.scalar_type()), "visionops.", op,
              ": reference_boxes must be a floating point tensor, got ", reference_boxes.scalar_type());
  check_same_dtype_device(reference_boxes, proposals, op, "reference_boxes", "proposals");
}

}  // namespace vo
