"""The IoU losses: one fused native pass forward and one backward.

Same signatures, defaults and results as torchvision.ops 0.29's
generalized_box_iou_loss, distance_box_iou_loss and complete_box_iou_loss.
boxes1 and boxes2 are (x1, y1, x2, y2) boxes of the same shape [..., 4] (or
shapes that broadcast); the loss is float64 for float64 boxes and float32
otherwise. A NaN coordinate gives a NaN loss for that pair (and a NaN 'mean'
or 'sum'). The 'mean' of no boxes is 0, as in torchvision.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _broadcast(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    # Broadcast only well-formed boxes: anything else goes to the op as it is,
    # which then names the argument that is wrong.
    well_formed = boxes1.dim() >= 1 and boxes2.dim() >= 1 and boxes1.shape[-1] == 4 and boxes2.shape[-1] == 4
    if well_formed and boxes1.shape != boxes2.shape:
        try:
            return torch.broadcast_tensors(boxes1, boxes2)
        except RuntimeError:
            pass
    return boxes1, boxes2


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """1 - GIoU of each pair of boxes.

    Args:
        boxes1 (Tensor[..., 4]): predicted boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., 4]): target boxes, (x1, y1, x2, y2).
        reduction (str): ``'none'`` | ``'mean'`` | ``'sum'``.
        eps (float): added to the denominators.

    Returns:
        Tensor[...] for ``'none'``, else a scalar.
    """
    boxes1, boxes2 = _broadcast(boxes1, boxes2)
    return torch.ops.visionops.generalized_box_iou_loss(boxes1, boxes2, reduction, eps)


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """1 - DIoU of each pair of boxes.

    Args:
        boxes1 (Tensor[..., 4]): predicted boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., 4]): target boxes, (x1, y1, x2, y2).
        reduction (str): ``'none'`` | ``'mean'`` | ``'sum'``.
        eps (float): added to the denominators.

    Returns:
        Tensor[...] for ``'none'``, else a scalar.
    """
    boxes1, boxes2 = _broadcast(boxes1, boxes2)
    return torch.ops.visionops.distance_box_iou_loss(boxes1, boxes2, reduction, eps)


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """1 - CIoU of each pair of boxes.

    As in torchvision, ``eps`` enters the aspect-ratio weight alpha only; the
    DIoU part always uses 1e-7.

    Args:
        boxes1 (Tensor[..., 4]): predicted boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., 4]): target boxes, (x1, y1, x2, y2).
        reduction (str): ``'none'`` | ``'mean'`` | ``'sum'``.
        eps (float): added to alpha's denominator.

    Returns:
        Tensor[...] for ``'none'``, else a scalar.
    """
    boxes1, boxes2 = _broadcast(boxes1, boxes2)
    return torch.ops.visionops.complete_box_iou_loss(boxes1, boxes2, reduction, eps)


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2,
                       reduction: str = "none") -> Tensor:
    """RetinaNet's focal loss (torchvision's ``sigmoid_focal_loss``), fused.

    ``alpha_t * BCE(inputs, targets) * (1 - p_t) ** gamma`` elementwise, with
    ``p = sigmoid(inputs)``, ``p_t = p * targets + (1 - p) * (1 - targets)`` and
    ``alpha_t = alpha * targets + (1 - alpha) * (1 - targets)`` (``alpha < 0``:
    no weighting).

    Args:
        inputs (Tensor[...]): logits.
        targets (Tensor[...]): the same shape; 0/1 labels (soft labels work).
        alpha (float): weight of the positives, in [0, 1]; negative to disable.
        gamma (float): focusing exponent.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
        The loss, elementwise or reduced. Computed in float32 for half and
        bfloat16, with the backward in closed form (no saved activations).
        1 - p_t is formed without cancellation, so confident predictions keep
        full precision.
    """
    return torch.ops.visionops.sigmoid_focal_loss(inputs, targets, float(alpha), float(gamma), reduction)


def dice_loss(inputs: Tensor, targets: Tensor, *, mode: str = "binary", from_logits: bool = True,
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

    A class id outside [0, C) (not ``ignore_index``) raises IndexError; on
    CUDA that check is the op's one host synchronization.
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
