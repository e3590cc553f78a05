// sigmoid_focal_loss at gamma == 0, for the CPU and CUDA entry points.
//
// With gamma == 0 the focal term (1 - p_t)^0 is 1 and the loss is alpha_t
// times the binary cross entropy. Users' code checks exactly that (and that
// the focal loss never exceeds the cross entropy), so this case is computed
// with torch's own binary_cross_entropy_with_logits and the tensor ops of
// torchvision's sigmoid_focal_loss, in its order: bit for bit torchvision's
// result and F.binary_cross_entropy_with_logits on every device and dtype.
// The fused kernel's exp and log are not torch's and may differ by an ulp.
#pragma once

#include <ATen/ATen.h>

#include "core/checks.h"

namespace vo {

inline at::Tensor sigmoid_focal_loss_gamma_zero(const at::Tensor& inputs, const at::Tensor& targets, double alpha,
                                                Reduction red) {
  const at::Tensor t = targets.to(inputs.scalar_type());
  at::Tensor loss = at::binary_cross_entropy_with_logits(inputs, t, {}, {}, at::Reduction::None);
  if (alpha >= 0) loss = (t * alpha + (1 - t) * (1 - alpha)) * loss;
  if (red == Reduction::Mean) return loss.mean();
  if (red == Reduction::Sum) return loss.sum();
  return loss;
}

}  // namespace vo
