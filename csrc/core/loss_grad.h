// The upstream gradient of an elementwise loss, as the backward kernels of
// the IoU losses and the focal loss read it.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "core/checks.h"

namespace vo {

// Element k's upstream gradient is g[k * stride] * scale: 'none' has one
// gradient per element (stride 1), 'sum' one for all (stride 0), 'mean' one
// for all divided by the K elements.
struct LossGrad {
  at::Tensor g;  // contiguous, of the dtype asked for
  int64_t stride;
  double scale;
};

// grad: the loss's shape for 'none' (checked by the caller), a scalar otherwise.
inline LossGrad loss_grad(const at::Tensor& grad, Reduction red, int64_t K, at::ScalarType dtype) {
  const bool each = red == Reduction::None;
  return {(each ? grad : grad.reshape({1})).to(dtype).contiguous(), each ? 1 : 0,
          red == Reduction::Mean ? 1.0 / static_cast<double>(K) : 1.0};
}

}  // namespace vo
