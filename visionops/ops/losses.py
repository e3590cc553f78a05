"""The losses family: RetinaNet's sigmoid focal loss and the soft Dice loss,
fused native passes forward and closed-form backward passes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from visionops._checks import (
    LIB,
    check_grad_device,
    check_loss_grad,
    check_reduction,
    dtype_name,
    refuse_double_backward,
)

__all__ = [
    "DiceLoss",
    "dice_loss",
    "sigmoid_focal_loss",
]


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2,
                       reduction: str = "none") -> Tensor:
    """RetinaNet's focal loss (torchvision's ``sigmoid_focal_loss``), fused.

    ``alpha_t * BCE(inputs, targets) * (1 - p_t) ** gamma`` elementwise, with
    ``p = sigmoid(inputs)``, ``p_t = p * targets + (1 - p) * (1 - targets)`` and
    ``alpha_t = alpha * targets + (1 - alpha) * (1 - targets)`` (``alpha = -1``:
    no weighting).

    Args:
        inputs (Tensor[...]): logits.
        targets (Tensor[...]): the same shape; 0/1 labels (soft labels work).
        alpha (float): weight of the positives, in [0, 1]; -1 to disable. Any
            other value raises ValueError ("Invalid alpha value"), as in
            torchvision.
        gamma (float): focusing exponent.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
        The loss, elementwise or reduced. Computed in float32 for half and
        bfloat16, with the backward in closed form (no saved activations).
        1 - p_t is formed without cancellation, so confident predictions keep
        full precision.

        ``gamma = 0`` gives ``alpha_t * F.binary_cross_entropy_with_logits``
        bit for bit (torch's own BCE, as torchvision computes it), in every
        dtype. For any gamma >= 0 the loss is at most the cross entropy
        elementwise: exactly so against torch's BCE in float32 and float64 for
        ``gamma = 0`` and ``gamma >= 1e-3`` (for smaller gamma it may exceed
        it by an ulp). In half and bfloat16 this loss is rounded once from
        float32 while torch's BCE rounds each of its steps, so there the bound
        holds only up to that rounding of torch's BCE.
    """
    return torch.ops.visionops.sigmoid_focal_loss(inputs, targets, float(alpha), float(gamma), reduction)


def dice_loss(inputs: Tensor, targets: Tensor, mode: str = "binary", from_logits: bool = True,
              smooth: float = 0.0, eps: float = 1e-7, squared: bool = False, ignore_index: int | None = None,
              weight: Tensor | None = None, log_loss: bool = False, reduction: str = "mean") -> Tensor:
    """Soft Dice loss, fused: one pass forward, a closed-form backward that
    recomputes the sigmoid or softmax (no activations are saved).

    For each class c, over the whole batch and the pixels not ignored:
    ``dice_c = (2 * sum(p * t) + smooth) / max(sum(p) + sum(t) + smooth, eps)``
    (``p ** 2`` and ``t ** 2`` when ``squared``), and the loss is ``1 - dice_c``
    (``-log(max(dice_c, eps))`` with ``log_loss``). A class without target
    pixels contributes 0, as in segmentation_models_pytorch (Dice is undefined
    for it); so a perfect prediction gives 0 and no overlap gives 1. This is
    smp's ``DiceLoss`` for ``smooth = 0`` and MONAI's ``DiceLoss(batch=True)``
    with ``smooth_nr = smooth_dr = smooth`` where every class is present.

    Args:
        inputs (Tensor[B, C, ...]): logits (or probabilities with
            ``from_logits=False``). ``'binary'``: C = 1.
        targets: ``'binary'``: one 0/1 value per input, [B, 1, ...] or [B, ...];
            ``'multiclass'``: a class map [B, ...] of ids in [0, C) (bool,
            uint8, int64, ...); ``'multilabel'``: 0/1 of the inputs' shape.
        mode (str): ``'binary'`` (sigmoid), ``'multiclass'`` (softmax over C)
            or ``'multilabel'`` (sigmoid per class).
        ignore_index (int, optional): target value whose pixels are left out.
        weight (Tensor[C], optional): class weights; ``'mean'`` is then the
            weighted mean over classes.
        reduction (str): ``'mean'`` over classes, ``'sum'``, or ``'none'``
            (the [C] per-class losses).

    Targets of any real dtype give the same result. On the CPU, bool, uint8,
    int64, float32 and the inputs' dtype are read as they are, except int64
    masks of float32, float16 and bfloat16 inputs (read as float32 by the
    vectorized sigmoid loops); others are converted first (class ids to
    int64, masks to float32, or float64 for float64 inputs): one extra pass
    over the targets.

    A class id outside [0, C) (not ``ignore_index``) raises IndexError; on
    CUDA that check is the op's one host synchronization. A NaN input makes
    its class's loss NaN, and the gradient of every pixel of that class (with
    softmax, of every class); a loss reduced over the classes is then NaN.
    """
    loss, _ = torch.ops.visionops.dice_loss(inputs, targets, mode, from_logits, float(smooth), float(eps), squared,
                                            ignore_index, weight, log_loss, reduction)
    return loss


class DiceLoss(torch.nn.Module):
    """Module form of :func:`dice_loss` (same keyword arguments)."""

    def __init__(self, mode: str = "binary", *, from_logits: bool = True, smooth: float = 0.0, eps: float = 1e-7,
                 squared: bool = False, ignore_index: int | None = None, weight: Tensor | None = None,
                 log_loss: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        self.mode, self.from_logits, self.smooth, self.eps = mode, from_logits, smooth, eps
        self.squared, self.ignore_index, self.log_loss, self.reduction = squared, ignore_index, log_loss, reduction
        self.register_buffer("weight", weight)

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        return dice_loss(inputs, targets, mode=self.mode, from_logits=self.from_logits, smooth=self.smooth,
                         eps=self.eps, squared=self.squared, ignore_index=self.ignore_index, weight=self.weight,
                         log_loss=self.log_loss, reduction=self.reduction)


# ================================================================= dispatcher registrations
# Fake kernels run csrc/losses/args.h's checks with the same messages.


def check_focal_alpha(alpha: float, op: str) -> None:
    torch._check_value(
        (0 <= alpha <= 1) or alpha == -1,
        lambda: f"visionops.{op}: Invalid alpha value: {alpha:g}; alpha must be in [0, 1], or -1 to turn the class "
        "weighting off",
    )


def check_focal_args(inputs: Tensor, targets: Tensor, op: str) -> None:
    torch._check(
        inputs.dtype.is_floating_point,
        lambda: f"visionops.{op}: inputs must be a floating point tensor, got {dtype_name(inputs.dtype)}",
    )
    torch._check_value(
        inputs.shape == targets.shape,
        lambda: f"visionops.{op}: targets must have the shape of inputs, {list(inputs.shape)}, got "
        f"{list(targets.shape)}",
    )
    torch._check(
        targets.dtype.is_floating_point,
        lambda: f"visionops.{op}: targets must be a floating point tensor, got {dtype_name(targets.dtype)}",
    )
    torch._check(
        inputs.device == targets.device,
        lambda: f"visionops.{op}: inputs and targets must be on the same device, got {inputs.device} and "
        f"{targets.device}",
    )


@torch.library.register_fake(LIB + "sigmoid_focal_loss")
def _sigmoid_focal_loss_fake(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    check_reduction(reduction, "sigmoid_focal_loss")
    check_focal_alpha(alpha, "sigmoid_focal_loss")
    check_focal_args(inputs, targets, "sigmoid_focal_loss")
    return inputs.new_empty(inputs.shape if reduction == "none" else ())


@torch.library.register_fake(LIB + "_sigmoid_focal_loss_backward")
def _sigmoid_focal_loss_backward_fake(grad, inputs, targets, alpha, gamma, reduction, targets_grad=True):
    op = "_sigmoid_focal_loss_backward"
    check_reduction(reduction, op)
    check_focal_alpha(alpha, op)
    check_focal_args(inputs, targets, op)
    if reduction == "none":
        torch._check(
            grad.shape == inputs.shape,
            lambda: f"visionops.{op}: grad must have the shape of inputs, {list(inputs.shape)}, got "
            f"{list(grad.shape)}",
        )
    else:
        check_loss_grad(grad, (), reduction, op)
    torch._check(
        grad.dtype.is_floating_point,
        lambda: f"visionops.{op}: grad must be a floating point tensor, got {dtype_name(grad.dtype)}",
    )
    check_grad_device(grad, inputs, op)
    return inputs.new_empty(inputs.shape), targets.new_empty(targets.shape if targets_grad else (0,))


def _focal_setup(ctx, inputs, output):
    x, t, ctx.alpha, ctx.gamma, ctx.reduction = inputs
    ctx.save_for_backward(x, t)


def _focal_backward(ctx, grad: Tensor):
    x, t = ctx.saved_tensors
    # The targets' gradient only where they require it (it would be a second
    # output as large as the inputs, and its arithmetic).
    targets_grad = ctx.needs_input_grad[1]
    gx, gt = torch.ops.visionops._sigmoid_focal_loss_backward(grad, x, t, ctx.alpha, ctx.gamma, ctx.reduction,
                                                              targets_grad)
    return gx, (gt if targets_grad else None), None, None, None


torch.library.register_autograd(LIB + "sigmoid_focal_loss", _focal_backward, setup_context=_focal_setup)


# ----------------------------------------------------------------- Dice loss

_DICE_MODES = ("binary", "multiclass", "multilabel")


def check_dice_args(inputs: Tensor, targets: Tensor, mode: str, weight, op: str) -> None:
    torch._check_value(
        mode in _DICE_MODES,
        lambda: f"visionops.{op}: mode must be one of 'binary', 'multiclass', 'multilabel', got '{mode}'",
    )
    torch._check(
        inputs.dtype.is_floating_point,
        lambda: f"visionops.{op}: inputs must be a floating point tensor, got {dtype_name(inputs.dtype)}",
    )
    torch._check(inputs.dim() >= 2, lambda: f"visionops.{op}: inputs must have shape [B, C, ...], got "
                 f"{list(inputs.shape)}")
    torch._check(
        inputs.device == targets.device,
        lambda: f"visionops.{op}: inputs and targets must be on the same device, got {inputs.device} and "
        f"{targets.device}",
    )
    c = inputs.shape[1]
    if mode == "multiclass":
        expected = [inputs.shape[0], *inputs.shape[2:]]
        torch._check_value(
            list(targets.shape) == expected,
            lambda: f"visionops.{op}: targets must be a class map of shape [B, ...] = {expected} for inputs "
            f"{list(inputs.shape)}, got {list(targets.shape)}",
        )
        torch._check(
            not targets.dtype.is_floating_point and not targets.dtype.is_complex,
            lambda: f"visionops.{op}: multiclass targets must be an integer class map, got "
            f"{dtype_name(targets.dtype)}",
        )
    elif mode == "binary":
        torch._check_value(
            c == 1, lambda: f"visionops.{op}: binary inputs must have one channel, [B, 1, ...], got {list(inputs.shape)}"
        )
        torch._check_value(
            targets.numel() == inputs.numel() and targets.dim() >= 1 and targets.shape[0] == inputs.shape[0],
            lambda: f"visionops.{op}: targets must hold one value per input, shape [B, 1, ...] or [B, ...], got "
            f"{list(targets.shape)} for inputs {list(inputs.shape)}",
        )
    else:
        torch._check_value(
            targets.shape == inputs.shape,
            lambda: f"visionops.{op}: multilabel targets must have the shape of inputs, {list(inputs.shape)}, got "
            f"{list(targets.shape)}",
        )
    if weight is not None:
        torch._check_value(
            weight.dim() == 1 and weight.shape[0] == c,
            lambda: f"visionops.{op}: weight must have one value per class, [{c}], got {list(weight.shape)}",
        )
        torch._check(
            weight.device == inputs.device,
            lambda: f"visionops.{op}: weight must be on the device of inputs, got {weight.device}",
        )


@torch.library.register_fake(LIB + "dice_loss")
def _dice_loss_fake(inputs, targets, mode="binary", from_logits=True, smooth=0.0, eps=1e-7, squared=False,
                    ignore_index=None, weight=None, log_loss=False, reduction="mean"):
    check_reduction(reduction, "dice_loss")
    check_dice_args(inputs, targets, mode, weight, "dice_loss")
    c = inputs.shape[1]
    loss = inputs.new_empty((c,) if reduction == "none" else ())
    return loss, inputs.new_empty((3, c), dtype=torch.float64)


@torch.library.register_fake(LIB + "_dice_loss_backward")
def _dice_loss_backward_fake(grad, inputs, targets, stats, mode, from_logits, smooth, eps, squared, ignore_index,
                             weight, log_loss, reduction):
    op = "_dice_loss_backward"
    check_reduction(reduction, op)
    check_dice_args(inputs, targets, mode, weight, op)
    c = inputs.shape[1]
    torch._check(
        stats.dim() == 2 and stats.shape[0] == 3 and stats.shape[1] == c and stats.dtype == torch.float64,
        lambda: f"visionops.{op}: stats must be a float64 tensor of shape [3, {c}], got {dtype_name(stats.dtype)} "
        f"{list(stats.shape)}",
    )
    torch._check(
        stats.device == inputs.device, lambda: f"visionops.{op}: stats must be on {inputs.device}, got {stats.device}"
    )
    if reduction == "none":
        torch._check(
            grad.dim() == 1 and grad.shape[0] == c,
            lambda: f"visionops.{op}: grad must have shape [{c}] (one loss per class), got {list(grad.shape)}",
        )
    else:
        check_loss_grad(grad, (), reduction, op)
    check_grad_device(grad, inputs, op)
    return inputs.new_empty(inputs.shape)


def _dice_setup(ctx, inputs, output):
    (x, t, ctx.mode, ctx.from_logits, ctx.smooth, ctx.eps, ctx.squared, ctx.ignore_index, weight, ctx.log_loss,
     ctx.reduction) = inputs
    ctx.save_for_backward(x, t, output[1], weight)


def _dice_backward(ctx, grad: Tensor, _grad_stats):
    x, t, stats, weight = ctx.saved_tensors
    gx = torch.ops.visionops._dice_loss_backward(grad, x, t, stats, ctx.mode, ctx.from_logits, ctx.smooth, ctx.eps,
                                                 ctx.squared, ctx.ignore_index, weight, ctx.log_loss, ctx.reduction)
    return gx, None, None, None, None, None, None, None, None, None, None


torch.library.register_autograd(LIB + "dice_loss", _dice_backward, setup_context=_dice_setup)


refuse_double_backward("_sigmoid_focal_loss_backward", "sigmoid_focal_loss")
refuse_double_backward("_dice_loss_backward", "dice_loss")
