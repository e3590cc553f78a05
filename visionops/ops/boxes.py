"""Box area, format conversion and the pairwise IoU family.

Same names, signatures, defaults and results as torchvision.ops 0.29 for the
axis-aligned formats. Formats:

- ``'xyxy'``: (x1, y1, x2, y2), top-left and bottom-right corners.
- ``'xywh'``: (x1, y1, w, h), top-left corner and size.
- ``'cxcywh'``: (cx, cy, w, h), centre and size.

dtypes: float32, float64, float16, bfloat16 (computed in float32) and the
integer types. The pairwise results are float64 for float64 boxes and float32
for every other dtype, as torchvision gives. Integer boxes are computed in
float64, so they never wrap (torchvision's uint8 subtraction can).

NaN: any NaN coordinate makes every value that involves that box NaN. Two
boxes whose union is empty (both of zero area) have IoU 0/0 = NaN, as in
torchvision.
"""

from __future__ import annotations

import torch
from torch import Tensor


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    """Area of each box.

    Args:
        boxes (Tensor[..., 4]): boxes in ``fmt``.
        fmt (str): ``'xyxy'`` (default), ``'xywh'`` or ``'cxcywh'``.

    Returns:
        Tensor[...]: the areas; float32 for half, bfloat16 and float32 boxes,
        float64 for float64, int64 for int64 and int32 for other integers.
    """
    return torch.ops.visionops.box_area(boxes, fmt)


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between ``'xyxy'``, ``'xywh'`` and ``'cxcywh'``.

    Args:
        boxes (Tensor[..., 4]): boxes in ``in_fmt``.
        in_fmt (str): the format of ``boxes``.
        out_fmt (str): the format wanted.

    Returns:
        Tensor[..., 4]: a new tensor of the same dtype; integer boxes become
        float32 when a centre is involved (cxcywh), as in torchvision.
    """
    return torch.ops.visionops.box_convert(boxes, in_fmt, out_fmt)


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """Intersection over union of every pair of boxes.

    Args:
        boxes1 (Tensor[..., N, 4]): first set of boxes.
        boxes2 (Tensor[..., M, 4]): second set of boxes; the leading
            dimensions broadcast against boxes1's.
        fmt (str): ``'xyxy'`` (default), ``'xywh'`` or ``'cxcywh'``.

    Returns:
        Tensor[..., N, M]: the IoU of boxes1[..., i] and boxes2[..., j].
    """
    return torch.ops.visionops.box_iou(boxes1, boxes2, fmt)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Generalized IoU (Rezatofighi et al., 2019) of every pair of xyxy boxes.

    Args:
        boxes1 (Tensor[..., N, 4]): first set of boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., M, 4]): second set of boxes, (x1, y1, x2, y2).

    Returns:
        Tensor[..., N, M]: IoU minus the share of the smallest enclosing box
        that the union leaves empty.
    """
    return torch.ops.visionops.generalized_box_iou(boxes1, boxes2)


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Distance IoU (Zheng et al., 2019) of every pair of xyxy boxes.

    Args:
        boxes1 (Tensor[..., N, 4]): first set of boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., M, 4]): second set of boxes, (x1, y1, x2, y2).
        eps (float): added to the squared diagonal of the enclosing box.

    Returns:
        Tensor[..., N, M]: IoU minus the squared distance between the centres
        over the squared diagonal of the smallest enclosing box.
    """
    return torch.ops.visionops.distance_box_iou(boxes1, boxes2, eps)


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU (Zheng et al., 2019) of every pair of xyxy boxes.

    Args:
        boxes1 (Tensor[..., N, 4]): first set of boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., M, 4]): second set of boxes, (x1, y1, x2, y2).
        eps (float): added to the denominators, as in torchvision.

    Returns:
        Tensor[..., N, M]: DIoU minus the aspect-ratio consistency term
        alpha * v, with alpha held constant for the gradient.
    """
    return torch.ops.visionops.complete_box_iou(boxes1, boxes2, eps)


def masks_to_boxes(masks: Tensor) -> Tensor:
    """The boxes around the nonzero pixels of each mask, as torchvision's ``masks_to_boxes``.

    Args:
        masks (Tensor[N, H, W]): masks of any dtype (nonzero, NaN included, is "in").

    Returns:
        Tensor[N, 4]: float32 boxes (x1, y1, x2, y2) of the first and last
        nonzero columns and rows. An empty mask gives (0, 0, 0, 0) (torchvision
        raises an error; detectron2 returns zeros).
    """
    return torch.ops.visionops.masks_to_boxes(masks)


def pack_masks(masks: Tensor) -> Tensor:
    """Binary masks as bits: pixel p (row-major) of mask n in bit p % 64 of
    ``out[n, p // 64]``, the last word zero-padded. 1/8 of the memory of a
    bool mask; COCO mask IoU runs on the packed form.

    Args:
        masks (Tensor[N, H, W]): any dtype; a pixel is set where it is nonzero.

    Returns:
        Tensor[N, ceil(H * W / 64)] (int64), on the CPU.
    """
    return torch.ops.visionops.pack_masks(masks.cpu())
