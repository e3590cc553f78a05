"""YOLO head decoding, fused: every scale of a YOLO head to each image's top
boxes with scores and classes, ready for :func:`visionops.padded_nms` (or
``batched_nms``), and the differentiable box decoding that a box loss needs.

A head of one scale is ``[B, A * (5 + C), H, W]``: per anchor, the box
logits (tx, ty, tw, th), the objectness and C class logits. Anchors are
given per scale in pixels (``[L, A, 2]``, e.g. YOLOv5's
``[[10, 13], [16, 30], [33, 23]]`` for stride 8). Boxes are
(x1, y1, x2, y2) in pixels:

- ``'v3'``: centre ``(sigmoid(t) + cell) * stride``, size ``exp(t) * anchor``;
- ``'v5'``: centre ``(2 sigmoid(t) - 0.5 + cell) * stride``, size
  ``(2 sigmoid(t)) ** 2 * anchor``.

A box's score is ``sigmoid(objectness) * sigmoid(best class logit)`` and
its class the best one (one label per box; the first class wins ties).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _anchors_tensor(anchors, like: Tensor) -> Tensor:
    a = anchors if isinstance(anchors, Tensor) else torch.tensor(anchors, dtype=torch.float32)
    return a.to(device=like.device, dtype=torch.float32)


def yolo_decode(heads: list[Tensor], anchors, strides: list[int], *, version: str = "v5",
                score_threshold: float = 0.25, max_detections: int = 300
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The top ``max_detections`` boxes of each image, over every scale.

    Args:
        heads (list of Tensor[B, A * (5 + C), H_l, W_l]): the head of each scale.
        anchors (Tensor[L, A, 2] or nested lists): anchor sizes in pixels, per scale.
        strides (list of int): each scale's stride in pixels.
        version (str): ``'v3'`` or ``'v5'``.
        score_threshold (float): scores must be above it.
        max_detections (int): boxes kept per image.

    Returns:
        boxes (Tensor[B, K, 4]), scores (Tensor[B, K]), classes (Tensor[B, K],
        int64) and counts (Tensor[B], int64), K = ``max_detections``: each
        image's boxes by decreasing score (ties in candidate order: scale,
        anchor, row, column), padded with zero boxes and scores and class -1.
        No host synchronization on CUDA.
    """
    return torch.ops.visionops.yolo_decode(list(heads), _anchors_tensor(anchors, heads[0]), [int(s) for s in strides],
                                           version, float(score_threshold), int(max_detections))


def yolo_boxes(head: Tensor, anchors, stride: int, *, version: str = "v5") -> Tensor:
    """Differentiable box decoding of one scale: [B, A, H, W, 4] boxes (x1, y1, x2, y2).

    Args:
        head (Tensor[B, A * (5 + C), H, W]): the head (only its box logits are read).
        anchors (Tensor[A, 2] or list): this scale's anchor sizes in pixels.
        stride (int): the scale's stride in pixels.
        version (str): ``'v3'`` or ``'v5'``.
    """
    return torch.ops.visionops.yolo_boxes(head, _anchors_tensor(anchors, head), int(stride), version)
