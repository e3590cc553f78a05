// Soft Dice loss: the per-class statistics and their gradient, shared by the
// CPU and CUDA kernels.
//
// For class c, over the batch and every pixel not ignored (p the predicted
// probability, t the target, m the ignore mask):
//   I = sum m p t,  P = sum m p (or p^2 when squared),  T = sum m t (or t^2)
//   dice = (2 I + smooth) / max(P + T + smooth, eps)
//   loss = 1 - dice, or -log(max(dice, eps)) with log_loss
// and a class without target pixels (T == 0) contributes 0, as in
// segmentation_models_pytorch (its Dice is undefined there). The classic
// formula, so it equals smp's for smooth = 0 and MONAI's (batch=True) with
// smooth_nr = smooth_dr = smooth.
#pragma once

#include "../macros.h"
#include "fast_math.h"

namespace vo {

struct DiceParams {
  double smooth, eps;
  bool squared, log_loss;
};

// d loss / d p at one pixel of one class: the class's coefficients a (of the
// target) and b (of dP/dp, which is 1, or 2p when squared). See
// dice_coefficients in dice_checks.h.
template <typename T>
VO_HOST_DEVICE_INLINE T dice_pixel_grad(T a, T b, T t, T p, bool squared) {
  const T dp = T(2) * p;
  return a * t + b * (squared ? dp : T(1));
}

// The same with squared as a 0/1 factor instead of a flag: CPU loops over
// pixels vectorize with it (GCC does not vectorize a select on a
// loop-invariant flag well). Equal to dice_pixel_grad for finite p.
template <typename T>
VO_HOST_DEVICE_INLINE T dice_pixel_grad_factor(T a, T b, T t, T p, T squared) {
  return a * t + b * (T(2) * p * squared + (T(1) - squared));
}

}  // namespace vo
