// The Dice loss from its per-class statistics, and the per-class
// coefficients of its gradient: a few [C]-sized tensor expressions, shared by
// the CPU and CUDA entry points (they run on the statistics' device, with no
// host sync). The per-pixel math is in losses/math.h.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <utility>

#include "core/checks.h"
#include "losses/math.h"

namespace vo {

// Per-class losses [C] (float64, on the statistics' device, no host sync)
// from the statistics [3, C] = (I, P, T); see losses/math.h.
inline at::Tensor dice_class_losses(const at::Tensor& stats, const DiceParams& p) {
  const at::Tensor I = stats[0], P = stats[1], T = stats[2];
  const at::Tensor dice = (2.0 * I + p.smooth) / (P + T + p.smooth).clamp_min(p.eps);
  const at::Tensor loss = p.log_loss ? -dice.clamp_min(p.eps).log() : 1.0 - dice;
  return at::where(T > 0, loss, at::zeros_like(loss));
}

inline at::Tensor dice_weights(const std::optional<at::Tensor>& weight, int64_t C, const at::Tensor& like) {
  return weight ? weight->to(like.options()) : at::ones({C}, like.options());
}

// The losses reduced as requested: 'mean' is the weighted mean over classes
// (smp's class_weights), 'sum' the weighted sum, 'none' the weighted losses.
inline at::Tensor dice_reduce(const at::Tensor& stats, const DiceParams& p, const std::optional<at::Tensor>& weight,
                              Reduction red) {
  const at::Tensor w = dice_weights(weight, stats.size(1), stats);
  const at::Tensor loss = dice_class_losses(stats, p) * w;
  if (red == Reduction::None) return loss;
  if (red == Reduction::Sum) return loss.sum();
  return loss.sum() / w.sum();
}

// Coefficients a and b [C] of each class's pixel gradient (dice_pixel_grad),
// given the upstream gradient of the reduced loss.
inline std::pair<at::Tensor, at::Tensor> dice_coefficients(const at::Tensor& stats, const DiceParams& p,
                                                           const std::optional<at::Tensor>& weight, Reduction red,
                                                           const at::Tensor& grad) {
  const int64_t C = stats.size(1);
  const at::Tensor w = dice_weights(weight, C, stats);
  const at::Tensor g = grad.to(stats.options());
  at::Tensor up = red == Reduction::None ? g * w : g.reshape({1}) * w;
  if (red == Reduction::Mean) up = up / w.sum();
  const at::Tensor I = stats[0], P = stats[1], T = stats[2];
  const at::Tensor denom = P + T + p.smooth;
  const at::Tensor pass = denom >= p.eps;  // clamp_min passes the gradient at and above the bound
  const at::Tensor d = denom.clamp_min(p.eps);
  const at::Tensor dice = (2.0 * I + p.smooth) / d;
  at::Tensor dl_ddice = at::full_like(dice, -1.0);
  if (p.log_loss) dl_ddice = at::where(dice >= p.eps, -1.0 / dice, at::zeros_like(dice));
  const at::Tensor gg = at::where(T > 0, up * dl_ddice, at::zeros_like(dice));
  const at::Tensor a = gg * 2.0 / d;
  const at::Tensor b = at::where(pass, -gg * (2.0 * I + p.smooth) / (d * d), at::zeros_like(dice));
  return {a, b};
}

}  // namespace vo
