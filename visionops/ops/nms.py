"""Non-maximum suppression: greedy NMS and class-aware batched NMS.

Exactly torchvision.ops.nms's kept indices, in the same order: boxes are
visited in decreasing score order, ties broken by index (a stable sort), and
a box is dropped when its IoU with an already kept box is strictly greater
than ``iou_threshold``. The IoU test is torchvision's float32 division,
reproduced without dividing (see csrc/nms/math.h).

NaN: a NaN score sorts before every number, as torch.sort orders it (so
such boxes are visited first), unless ``score_threshold`` is given, which a
NaN score never passes. A box with a NaN coordinate has a NaN IoU with
everything, so it is kept and never suppresses another box, as in
torchvision. Empty, inverted and infinite boxes likewise never overlap.
"""

from __future__ import annotations

import torch
from torch import Tensor

from visionops._checks import LIB, MAX_FIXED_OUTPUTS, check_at_most, dtype_name, dynamic_count

__all__ = [
    "batched_nms",
    "nms",
    "padded_nms",
    "soft_nms",
]


def nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    score_threshold: float | None = None,
    max_output: int | None = None,
) -> Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format, float32,
            float64, float16 or bfloat16.
        scores (Tensor[N]): one score per box, of the boxes' dtype.
        iou_threshold (float): drop boxes with IoU > iou_threshold with a
            kept box.
        score_threshold (float, optional): first drop boxes whose score is
            not greater than this.
        max_output (int, optional): keep at most this many boxes (the
            highest scored); the pass stops once it has them.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, by decreasing score.
    """
    return torch.ops.visionops.nms(boxes, scores, iou_threshold, score_threshold=score_threshold,
                                   max_output=max_output)


def batched_nms(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor,
    iou_threshold: float,
    score_threshold: float | None = None,
    max_output: int | None = None,
) -> Tensor:
    """NMS within each category, as one native call.

    Exactly ``nms`` applied to the boxes of each value of ``idxs`` on its
    own, merged in decreasing score order with ties by index: no coordinate
    offsets (torchvision's trick, which can flip borderline boxes in float32
    and breaks in float16 or with negative coordinates).

    Args:
        boxes (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format.
        scores (Tensor[N]): one score per box, of the boxes' dtype.
        idxs (Tensor[N]): integer category of each box.
        iou_threshold (float): as in ``nms``.
        score_threshold (float, optional): as in ``nms``.
        max_output (int, optional): keep at most this many boxes overall.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, by decreasing score.
        No boxes give an empty result before anything else is looked at, as
        in torchvision (scores, idxs and iou_threshold may then be None).
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    return torch.ops.visionops.batched_nms(boxes, scores, idxs, iou_threshold, score_threshold=score_threshold,
                                           max_output=max_output)


def padded_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    max_output: int,
    *,
    idxs: Tensor | None = None,
    score_threshold: float | None = None,
) -> tuple[Tensor, Tensor]:
    """NMS of every image of a padded batch, with a fixed-size result.

    For detector heads that emit the same number of boxes per image: the
    output shapes do not depend on the data, so nothing waits for the GPU
    (the contract of TensorRT's EfficientNMS) and ``torch.compile`` and
    ``torch.export`` see static shapes. Image b's result is exactly
    ``nms(boxes[b], scores[b], ...)`` (``batched_nms`` with ``idxs[b]``),
    truncated to ``max_output``.

    Args:
        boxes (Tensor[B, N, 4]): boxes in (x1, y1, x2, y2) format.
        scores (Tensor[B, N]): one score per box, of the boxes' dtype.
        iou_threshold (float): as in ``nms``.
        max_output (int): the most boxes kept per image.
        idxs (Tensor[B, N], optional): integer category of each box; NMS then
            runs within each category.
        score_threshold (float, optional): as in ``nms``.

    Returns:
        (Tensor[B, max_output], Tensor[B]), int64: per image, the indices of
        its kept boxes (into its N boxes) by decreasing score, padded with
        -1, and how many were kept.
    """
    return torch.ops.visionops.padded_nms(boxes, scores, iou_threshold, max_output, idxs=idxs,
                                          score_threshold=score_threshold)


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    method: str = "linear",
) -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al., 2017), as mmcv and ensemble-boxes define it.

    Repeatedly picks the box with the highest current score (ties: the lowest
    index) and scales every other box's score by its overlap with the pick:
    ``'linear'``, by 1 - IoU where IoU > ``iou_threshold``; ``'gaussian'``,
    by exp(-IoU^2 / sigma). A box whose score is below ``score_threshold``
    (from the start, or once decayed) is dropped; so is a NaN score.

    Args:
        boxes (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format.
        scores (Tensor[N]): one score per box, of the boxes' dtype.
        iou_threshold (float): the linear method's overlap threshold.
        sigma (float): the gaussian method's width (> 0).
        score_threshold (float): boxes scoring below this are dropped.
        method (str): ``'linear'`` or ``'gaussian'``.

    Returns:
        (Tensor[K] int64, Tensor[K]): the picked indices, in the order
        picked, and their scores when picked (the scores' dtype).
    """
    return torch.ops.visionops.soft_nms(boxes, scores, iou_threshold, sigma, score_threshold, method)


# ================================================================= dispatcher registrations
# Fake kernels run csrc/nms/args.h's checks with the same messages.


def check_nms_inputs(boxes: Tensor, scores: Tensor, idxs: Tensor | None, dims: int, op: str) -> None:
    torch._check(
        boxes.dim() == dims and boxes.shape[-1] == 4,
        lambda: f"visionops.{op}: boxes must have shape {'[N, 4]' if dims == 2 else '[B, N, 4]'}, "
        f"got {list(boxes.shape)}",
    )
    torch._check(
        boxes.dtype.is_floating_point,
        lambda: f"visionops.{op}: boxes must be a floating point tensor, got {dtype_name(boxes.dtype)}",
    )
    per_box = list(boxes.shape[:-1])
    torch._check(
        list(scores.shape) == per_box,
        lambda: f"visionops.{op}: scores must have shape {per_box} (one per box), got {list(scores.shape)}",
    )
    torch._check(
        scores.dtype == boxes.dtype,
        lambda: f"visionops.{op}: scores must have the same dtype as boxes, got {dtype_name(scores.dtype)} and "
        f"{dtype_name(boxes.dtype)}",
    )
    torch._check(
        scores.device == boxes.device,
        lambda: f"visionops.{op}: scores must be on the same device as boxes, got {scores.device} and "
        f"{boxes.device}",
    )
    if idxs is not None:
        torch._check(
            list(idxs.shape) == per_box,
            lambda: f"visionops.{op}: idxs must have shape {per_box} (one per box), got {list(idxs.shape)}",
        )
        torch._check(
            not (idxs.dtype.is_floating_point or idxs.dtype.is_complex or idxs.dtype == torch.bool),
            lambda: f"visionops.{op}: idxs must be an integer tensor, got {dtype_name(idxs.dtype)}",
        )
        torch._check(
            idxs.device == boxes.device,
            lambda: f"visionops.{op}: idxs must be on the same device as boxes, got {idxs.device} and {boxes.device}",
        )


def check_nms_args(boxes: Tensor, scores: Tensor, idxs: Tensor | None, max_output: int | None, op: str) -> None:
    check_nms_inputs(boxes, scores, idxs, 2, op)
    torch._check_value(
        max_output is None or max_output >= 0,
        lambda: f"visionops.{op}: max_output must be >= 0, got {max_output}",
    )


def _kept_indices(boxes: Tensor, max_output: int | None) -> Tensor:
    # The number kept depends on the data: at most N (and at most max_output).
    return boxes.new_empty((dynamic_count(boxes.shape[0] if max_output is None else max_output),), dtype=torch.int64)


@torch.library.register_fake(LIB + "nms")
def _nms_fake(boxes, scores, iou_threshold, *, score_threshold=None, max_output=None):
    check_nms_args(boxes, scores, None, max_output, "nms")
    return _kept_indices(boxes, max_output)


@torch.library.register_fake(LIB + "batched_nms")
def _batched_nms_fake(boxes, scores, idxs, iou_threshold, *, score_threshold=None, max_output=None):
    check_nms_args(boxes, scores, idxs, max_output, "batched_nms")
    return _kept_indices(boxes, max_output)


@torch.library.register_fake(LIB + "padded_nms")
def _padded_nms_fake(boxes, scores, iou_threshold, max_output, *, idxs=None, score_threshold=None):
    check_nms_inputs(boxes, scores, idxs, 3, "padded_nms")
    torch._check_value(max_output >= 0, lambda: f"visionops.padded_nms: max_output must be >= 0, got {max_output}")
    check_at_most(max_output, MAX_FIXED_OUTPUTS, "padded_nms", "max_output", "the fixed output size per image")
    B = boxes.shape[0]
    return boxes.new_empty((B, max_output), dtype=torch.int64), boxes.new_empty((B,), dtype=torch.int64)


@torch.library.register_fake(LIB + "soft_nms")
def _soft_nms_fake(boxes, scores, iou_threshold=0.3, sigma=0.5, score_threshold=0.001, method="linear"):
    check_nms_args(boxes, scores, None, None, "soft_nms")
    torch._check_value(
        method in ("linear", "gaussian"),
        lambda: f"visionops.soft_nms: method must be 'linear' or 'gaussian', got '{method}'",
    )
    torch._check_value(
        method != "gaussian" or sigma > 0, lambda: f"visionops.soft_nms: sigma must be > 0, got {sigma:g}"
    )
    k = dynamic_count(boxes.shape[0])
    return boxes.new_empty((k,), dtype=torch.int64), scores.new_empty((k,))
