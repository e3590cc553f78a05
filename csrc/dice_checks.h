// Arguments of dice_loss, shared by the CPU and CUDA kernels (mirrored by
// the fake kernel in visionops/_registrations.py).
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <optional>
#include <string_view>

#include "checks.h"
#include "common/dice.h"

namespace vo {

enum class DiceMode : int { Binary = 0, Multiclass = 1, Multilabel = 2 };

// inputs seen as [B, C, S]: batch, classes, pixels.
struct DiceShape {
  DiceMode mode;
  int64_t B, C, S;
};

inline DiceMode parse_dice_mode(std::string_view mode, const char* op) {
  if (mode == "binary") return DiceMode::Binary;
  if (mode == "multiclass") return DiceMode::Multiclass;
  if (mode == "multilabel") return DiceMode::Multilabel;
  TORCH_CHECK_VALUE(false, "visionops.", op, ": mode must be one of 'binary', 'multiclass', 'multilabel', got '",
                    std::string(mode), "'");
}

inline DiceShape check_dice_args(const at::Tensor& inputs, const at::Tensor& targets, std::string_view mode_name,
                                 const std::optional<at::Tensor>& weight, const char* op) {
  const DiceMode mode = parse_dice_mode(mode_name, op);
  TORCH_CHECK(at::isFloatingType(inputs.scalar_type()), "visionops.", op,
              ": inputs must be a floating point tensor, got ", inputs.scalar_type());
  TORCH_CHECK(inputs.dim() >= 2, "visionops.", op, ": inputs must have shape [B, C, ...], got ", shape_str(inputs));
  TORCH_CHECK(inputs.device() == targets.device(), "visionops.", op,
              ": inputs and targets must be on the same device, got ", inputs.device(), " and ", targets.device());
  const int64_t B = inputs.size(0), C = inputs.size(1);
  DiceShape s{mode, B, C, C > 0 ? inputs.numel() / std::max<int64_t>(1, B * C) : 0};
  if (mode == DiceMode::Multiclass) {
    bool same = targets.dim() == inputs.dim() - 1 && targets.size(0) == B;
    for (int64_t d = 1; same && d < targets.dim(); ++d) same = targets.size(d) == inputs.size(d + 1);
    TORCH_CHECK_VALUE(same, "visionops.", op, ": targets must be a class map of shape [B, ...] = ",
                      shape_str(inputs.select(1, 0)), " for inputs ", shape_str(inputs), ", got ", shape_str(targets));
    TORCH_CHECK(!at::isFloatingType(targets.scalar_type()) && !at::isComplexType(targets.scalar_type()), "visionops.",
                op, ": multiclass targets must be an integer class map, got ", targets.scalar_type());
  } else {
    if (mode == DiceMode::Binary) {
      TORCH_CHECK_VALUE(C == 1, "visionops.", op, ": binary inputs must have one channel, [B, 1, ...], got ",
                        shape_str(inputs));
      TORCH_CHECK_VALUE(targets.numel() == inputs.numel() && targets.dim() >= 1 && targets.size(0) == B, "visionops.",
                        op, ": targets must hold one value per input, shape [B, 1, ...] or [B, ...], got ",
                        shape_str(targets), " for inputs ", shape_str(inputs));
    } else {
      TORCH_CHECK_VALUE(targets.sizes() == inputs.sizes(), "visionops.", op,
                        ": multilabel targets must have the shape of inputs, ", shape_str(inputs), ", got ",
                        shape_str(targets));
    }
    TORCH_CHECK(!at::isComplexType(targets.scalar_type()), "visionops.", op,
                ": targets must be real, got ", targets.scalar_type());
  }
  if (weight) {
    TORCH_CHECK_VALUE(weight->dim() == 1 && weight->size(0) == C, "visionops.", op,
                      ": weight must have one value per class, [", C, "], got ", shape_str(*weight));
    TORCH_CHECK(weight->device() == inputs.device(), "visionops.", op, ": weight must be on the device of inputs, got ",
                weight->device());
  }
  return s;
}

// Targets as the kernels read them: contiguous, and multiclass class ids
// checked (an id outside [0, C) that is not ignore_index is an error: on
// CUDA that check reads one flag back, the op's only host sync).
#define VO_DISPATCH_DICE_TARGETS(TYPE, NAME, ...) \
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

inline at::Tensor checked_targets(const at::Tensor& targets, const DiceShape& sh, std::optional<int64_t> ignore,
                                  const char* op) {
  at::Tensor t = targets.contiguous();
  if (sh.mode != DiceMode::Multiclass || t.numel() == 0) return t;
  std::optional<int64_t> bad;
  if (t.is_cpu()) {  // a plain loop: no temporaries
    VO_DISPATCH_DICE_TARGETS(t.scalar_type(), "dice_loss_check", [&] {
      const scalar_t* p = t.data_ptr<scalar_t>();
      for (int64_t i = 0; i < t.numel() && !bad; ++i) {
        const int64_t v = static_cast<int64_t>(p[i]);
        if ((v < 0 || v >= sh.C) && !(ignore && v == *ignore)) bad = v;
      }
    });
  } else {
    const at::Tensor tl = t.to(at::kLong);
    at::Tensor out = (tl < 0).logical_or(tl >= sh.C);
    if (ignore) out = out.logical_and(tl != *ignore);
    if (out.any().item<bool>()) bad = tl.masked_select(out)[0].item<int64_t>();
  }
  TORCH_CHECK_INDEX(!bad, "visionops.", op, ": targets hold class id ", bad.value_or(0), ", outside [0, ", sh.C,
                    ") and not ignore_index");
  return t;
}

// Per-class losses [C] (float64, on the statistics' device, no host sync)
// from the statistics [3, C] = (I, P, T); see common/dice.h.
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
