// Arguments of the losses family (dice_loss, sigmoid_focal_loss): checks
// shared by the CPU and CUDA entry points. visionops/ops/losses.py's fake
// kernels raise the same messages.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>
#include <string_view>

#include "core/checks.h"
#include "losses/math.h"

namespace vo {

// ---- dice_loss

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

// The target dtypes the Dice kernels read as they are: bytes, int64 and
// float32 (masks and class ids as datasets give them), and the inputs' own
// dtype (in_t). Each kernel is compiled for every pair of input and target
// dtype (and on the CPU for every instruction set), so the ten dtypes
// targets may have made dice_loss_cpu.cpp take minutes to compile, for no
// gain: the rest are converted first (dice_kernel_targets), and the values
// the kernels compute with stay the same. The body sees the type as tgt_t.
#define VO_DISPATCH_DICE_KERNEL_TARGETS(in_t, TYPE, ...)                                                         \
  [&] {                                                                                                          \
    const at::ScalarType vo_target_type = (TYPE);                                                                \
    switch (vo_target_type) {                                                                                    \
      case at::kByte: {                                                                                          \
        using tgt_t = uint8_t;                                                                                   \
        return __VA_ARGS__();                                                                                    \
      }                                                                                                          \
      case at::kLong: {                                                                                          \
        using tgt_t = int64_t;                                                                                   \
        return __VA_ARGS__();                                                                                    \
      }                                                                                                          \
      case at::kFloat: {                                                                                         \
        using tgt_t = float;                                                                                     \
        return __VA_ARGS__();                                                                                    \
      }                                                                                                          \
      default: {                                                                                                 \
        TORCH_CHECK(vo_target_type == c10::CppTypeToScalarType<in_t>::value,                                   \
                    "visionops.dice_loss: internal error: targets of dtype ", vo_target_type, " reached the kernel"); \
        using tgt_t = in_t;                                                                                      \
        return __VA_ARGS__();                                                                                    \
      }                                                                                                          \
    }                                                                                                            \
  }()

// Targets (contiguous) as the Dice kernels read them. bool as bytes: the
// same 0/1 values (and GCC converts bool loads one at a time, bytes a vector
// at a time: 7x faster). Other dtypes outside VO_DISPATCH_DICE_KERNEL_TARGETS'
// are converted: class ids (integers: check_dice_args) to int64, exactly,
// and masks to the dtype the kernels compute in (float32, or float64 for
// float64 inputs), which holds every value they would have cast to it. One
// pass over the targets: about a class plane's share of the multiclass
// work, and as much as the inputs' pass for binary masks of, say, int32.
inline at::Tensor dice_kernel_targets(const at::Tensor& t, const DiceShape& sh, at::ScalarType in_dtype) {
  const at::ScalarType st = t.scalar_type();
  if (st == at::kBool) return t.view(at::kByte);
  if (st == at::kByte || st == at::kLong || st == at::kFloat || st == in_dtype) return t;
  if (sh.mode == DiceMode::Multiclass) return t.to(at::kLong);
  return t.to(in_dtype == at::kDouble ? at::kDouble : at::kFloat);
}

// The Dice backward's arguments: its forward's, the forward's statistics
// [3, C] (float64), and grad like the loss ([C] for 'none', else a scalar),
// all on inputs' device.
inline DiceShape check_dice_backward_args(const at::Tensor& grad, const at::Tensor& inputs, const at::Tensor& targets,
                                          const at::Tensor& stats, std::string_view mode,
                                          const std::optional<at::Tensor>& weight, Reduction red, const char* op) {
  const DiceShape sh = check_dice_args(inputs, targets, mode, weight, op);
  TORCH_CHECK(stats.dim() == 2 && stats.size(0) == 3 && stats.size(1) == sh.C && stats.scalar_type() == at::kDouble,
              "visionops.", op, ": stats must be a float64 tensor of shape [3, ", sh.C, "], got ", stats.scalar_type(),
              " ", shape_str(stats));
  TORCH_CHECK(stats.device() == inputs.device(), "visionops.", op, ": stats must be on ", inputs.device(), ", got ",
              stats.device());
  if (red == Reduction::None) {
    TORCH_CHECK(grad.dim() == 1 && grad.size(0) == sh.C, "visionops.", op, ": grad must have shape [", sh.C,
                "] (one loss per class), got ", shape_str(grad));
  } else {
    TORCH_CHECK(grad.dim() == 0, "visionops.", op, ": grad must be a scalar for a reduced loss, got ",
                shape_str(grad));
  }
  check_grad_device(grad, inputs, op);
  return sh;
}

// ---- sigmoid_focal_loss

// alpha in [0, 1], or -1 to turn the class weighting off: torchvision's rule
// and its "Invalid alpha value" wording.
inline void check_focal_alpha(double alpha, const char* op) {
  TORCH_CHECK_VALUE((alpha >= 0 && alpha <= 1) || alpha == -1, "visionops.", op, ": Invalid alpha value: ", alpha,
                    "; alpha must be in [0, 1], or -1 to turn the class weighting off");
}

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

// The focal backward's arguments: its forward's, and grad like the loss (of
// inputs' shape for 'none', a scalar otherwise) on inputs' device.
inline Reduction check_focal_backward_args(const at::Tensor& grad, const at::Tensor& inputs, const at::Tensor& targets,
                                           double alpha, std::string_view reduction, const char* op) {
  const Reduction red = parse_reduction(reduction, op);
  check_focal_alpha(alpha, op);
  check_focal_args(inputs, targets, op);
  if (red == Reduction::None) {
    TORCH_CHECK(grad.sizes() == inputs.sizes(), "visionops.", op, ": grad must have the shape of inputs, ",
                shape_str(inputs), ", got ", shape_str(grad));
  } else {
    TORCH_CHECK(grad.dim() == 0, "visionops.", op, ": grad must be a scalar for a reduced loss, got ",
                shape_str(grad));
  }
  TORCH_CHECK(at::isFloatingType(grad.scalar_type()), "visionops.", op,
              ": grad must be a floating point tensor, got ", grad.scalar_type());
  check_grad_device(grad, inputs, op);
  return red;
}

}  // namespace vo
