"""Float64 pure-PyTorch references of the box ops, for tests.

Written from the definitions, term by term, in float64 whatever the input;
kept deliberately plain (no fusion, no broadcasting tricks beyond the
obvious). They follow torchvision's conventions where it has a choice: the
IoU losses count an intersection only where both sides are positive, and
complete_box_iou_loss's DIoU part uses eps = 1e-7 whatever eps is given.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _to_xyxy64(boxes: Tensor, fmt: str) -> Tensor:
    b = boxes.to(torch.float64)
    a, c, w, h = b.unbind(-1)
    if fmt == "xyxy":
        return b
    if fmt == "xywh":
        return torch.stack((a, c, a + w, c + h), dim=-1)
    if fmt == "cxcywh":
        return torch.stack((a - w / 2, c - h / 2, a + w / 2, c + h / 2), dim=-1)
    raise ValueError(fmt)


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    b = boxes.to(torch.float64)
    if fmt == "xyxy":
        return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return b[..., 2] * b[..., 3]


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    x1, y1, x2, y2 = _to_xyxy64(boxes, in_fmt).unbind(-1)
    if out_fmt == "xyxy":
        return torch.stack((x1, y1, x2, y2), dim=-1)
    if out_fmt == "xywh":
        return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def pairwise(variant: str, boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy", eps: float = 1e-7) -> Tensor:
    """IoU ('iou'), GIoU, DIoU or CIoU of every pair: [..., N, 4] x [..., M, 4] -> [..., N, M]."""
    a = _to_xyxy64(boxes1, fmt)[..., :, None, :]
    b = _to_xyxy64(boxes2, fmt)[..., None, :, :]
    area_a = box_area(boxes1, fmt)[..., :, None]
    area_b = box_area(boxes2, fmt)[..., None, :]
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = iw * ih
    union = area_a + area_b - inter
    iou = inter / union
    if variant == "iou":
        return iou
    ew = (torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])).clamp(min=0)
    eh = (torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])).clamp(min=0)
    if variant == "giou":
        enclosing = ew * eh
        return iou - (enclosing - union) / enclosing
    dist = ((a[..., 0] + a[..., 2]) / 2 - (b[..., 0] + b[..., 2]) / 2) ** 2 + (
        (a[..., 1] + a[..., 3]) / 2 - (b[..., 1] + b[..., 3]) / 2
    ) ** 2
    diou = iou - dist / (ew**2 + eh**2 + eps)
    if variant == "diou":
        return diou
    aspect_a = torch.atan((a[..., 2] - a[..., 0]) / (a[..., 3] - a[..., 1]))
    aspect_b = torch.atan((b[..., 2] - b[..., 0]) / (b[..., 3] - b[..., 1]))
    v = (4 / math.pi**2) * (aspect_a - aspect_b) ** 2
    alpha = (v / (1 - iou + v + eps)).detach()
    return diou - alpha * v


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum() * 0.0
    if reduction == "sum":
        return loss.sum()
    return loss


def box_iou_loss(variant: str, boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """1 - GIoU, DIoU or CIoU of each pair of xyxy boxes of one shape [..., 4]."""
    p = boxes1.to(torch.float64)
    t = boxes2.to(torch.float64)
    ix1, iy1 = torch.maximum(p[..., 0], t[..., 0]), torch.maximum(p[..., 1], t[..., 1])
    ix2, iy2 = torch.minimum(p[..., 2], t[..., 2]), torch.minimum(p[..., 3], t[..., 3])
    overlap = (ix2 > ix1) & (iy2 > iy1)
    inter = torch.where(overlap, (ix2 - ix1) * (iy2 - iy1), torch.zeros_like(ix1))
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_t = (t[..., 2] - t[..., 0]) * (t[..., 3] - t[..., 1])
    union = area_p + area_t - inter
    cw = torch.maximum(p[..., 2], t[..., 2]) - torch.minimum(p[..., 0], t[..., 0])
    ch = torch.maximum(p[..., 3], t[..., 3]) - torch.minimum(p[..., 1], t[..., 1])
    if variant == "giou":
        iou = inter / (union + eps)
        enclosing = cw * ch
        loss = 1 - iou + (enclosing - union) / (enclosing + eps)
        return _reduce(loss, reduction)
    deps = 1e-7 if variant == "ciou" else eps
    iou = inter / (union + deps)
    dist = ((p[..., 0] + p[..., 2]) / 2 - (t[..., 0] + t[..., 2]) / 2) ** 2 + (
        (p[..., 1] + p[..., 3]) / 2 - (t[..., 1] + t[..., 3]) / 2
    ) ** 2
    loss = 1 - iou + dist / (cw**2 + ch**2 + deps)
    if variant == "ciou":
        aspect_p = torch.atan((p[..., 2] - p[..., 0]) / (p[..., 3] - p[..., 1]))
        aspect_t = torch.atan((t[..., 2] - t[..., 0]) / (t[..., 3] - t[..., 1]))
        v = (4 / math.pi**2) * (aspect_t - aspect_p) ** 2
        alpha = (v / (1 - iou + v + eps)).detach()
        loss = loss + alpha * v
    return _reduce(loss, reduction)
