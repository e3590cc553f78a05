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

from visionops.bench.dice import plain_dice_loss


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


# ----------------------------------------------------------------- RoI ops
#
# Written from the definitions (Mask R-CNN's RoI Align with torchvision's
# sampling rule, Fast R-CNN's RoI Pool with torchvision's rounding), point by
# point in float64. Slow: for tests on a few RoIs.


def _bilinear(plane: Tensor, y: float, x: float) -> Tensor:
    """plane [C, H, W] sampled at (y, x); zero more than a pixel off the map."""
    _, h, w = plane.shape
    if not (-1.0 <= y <= h and -1.0 <= x <= w):
        return plane.new_zeros(plane.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    hy, hx = 1.0 - ly, 1.0 - lx
    return hy * hx * plane[:, y0, x0] + hy * lx * plane[:, y0, x1] + ly * hx * plane[:, y1, x0] + ly * lx * plane[:, y1, x1]


def roi_align(input: Tensor, rois: Tensor, output_size: int | tuple[int, int], spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    x, r = input.double(), rois.double()
    ph_n, pw_n = (output_size, output_size) if isinstance(output_size, int) else output_size
    out = x.new_zeros(r.shape[0], x.shape[1], ph_n, pw_n)
    for k in range(r.shape[0]):
        n = int(r[k, 0])
        off = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = (float(v) * spatial_scale - off for v in r[k, 1:])
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / ph_n, rw / pw_n
        gh = sampling_ratio if sampling_ratio > 0 else max(math.ceil(rh / ph_n), 0)
        gw = sampling_ratio if sampling_ratio > 0 else max(math.ceil(rw / pw_n), 0)
        count = max(gh * gw, 1)
        for ph in range(ph_n):
            for pw in range(pw_n):
                acc = x.new_zeros(x.shape[1])
                for iy in range(gh):
                    yy = y1 + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        acc += _bilinear(x[n], yy, x1 + pw * bw + (ix + 0.5) * bw / gw)
                out[k, :, ph, pw] = acc / count
    return out


def _round_half_away(v: float) -> int:
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def roi_pool(input: Tensor, rois: Tensor, output_size: int | tuple[int, int], spatial_scale: float = 1.0) -> Tensor:
    x, r = input.double(), rois.double()
    _, c, h, w = x.shape
    ph_n, pw_n = (output_size, output_size) if isinstance(output_size, int) else output_size
    out = x.new_zeros(r.shape[0], c, ph_n, pw_n)
    for k in range(r.shape[0]):
        n = int(r[k, 0])
        x1, y1, x2, y2 = (_round_half_away(float(v) * spatial_scale) for v in r[k, 1:])
        rw, rh = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        for ph in range(ph_n):
            h0 = min(max(math.floor(ph * rh / ph_n) + y1, 0), h)
            h1 = min(max(math.ceil((ph + 1) * rh / ph_n) + y1, 0), h)
            for pw in range(pw_n):
                w0 = min(max(math.floor(pw * rw / pw_n) + x1, 0), w)
                w1 = min(max(math.ceil((pw + 1) * rw / pw_n) + x1, 0), w)
                if h1 > h0 and w1 > w0:
                    out[k, :, ph, pw] = x[n, :, h0:h1, w0:w1].amax(dim=(1, 2))
    return out


def fpn_levels(boxes: Tensor, k_min: int, k_max: int, canonical_scale: int = 224, canonical_level: int = 4) -> Tensor:
    """FPN eq. 1: the level (0 = k_min) of each [K, 4] box; -1 where it is NaN."""
    s = torch.sqrt((boxes[:, 2] - boxes[:, 0]).double() * (boxes[:, 3] - boxes[:, 1]).double())
    lvl = torch.floor(canonical_level + torch.log2(s / canonical_scale) + 1e-6).clamp(k_min, k_max)
    return torch.where(lvl.isnan(), -1, lvl.nan_to_num() - k_min).long()


def multi_scale_roi_align(features: list[Tensor], boxes: list[Tensor], output_size: tuple[int, int],
                          spatial_scales: list[float], sampling_ratio: int) -> Tensor:
    rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)])
    k_min, k_max = round(-math.log2(spatial_scales[0])), round(-math.log2(spatial_scales[-1]))
    levels = fpn_levels(rois[:, 1:], k_min, k_max) if len(features) > 1 else torch.zeros(len(rois), dtype=torch.long)
    out = features[0].new_zeros(rois.shape[0], features[0].shape[1], *output_size, dtype=torch.float64)
    for lvl, (f, s) in enumerate(zip(features, spatial_scales)):
        idx = (levels == lvl).nonzero().flatten()
        if len(idx):
            out[idx] = roi_align(f, rois[idx], output_size, s, sampling_ratio, False)
    return out


# ----------------------------------------------------------------- Dice loss


def dice_loss(*args, dtype: torch.dtype = torch.float64, **kwargs) -> Tensor:
    """The definition of visionops.dice_loss in plain torch ops, in float64: the
    benchmark's plain-PyTorch baseline (one copy of the definition), run here
    in float64."""
    return plain_dice_loss(*args, dtype=dtype, **kwargs)


# ----------------------------------------------------------------- YOLO decoding


def yolo_boxes(head: Tensor, anchors: Tensor, stride: int, version: str = "v5") -> Tensor:
    """[B, A, H, W, 4] boxes (x1, y1, x2, y2) of one scale, from the definitions."""
    b, ch, h, w = head.shape
    a = anchors.shape[0]
    t = head.reshape(b, a, ch // a, h, w)[:, :, :4].to(torch.float64)
    gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    aw = anchors[:, 0].to(torch.float64)[None, :, None, None]
    ah = anchors[:, 1].to(torch.float64)[None, :, None, None]
    if version == "v3":
        cx, cy = (t[:, :, 0].sigmoid() + gx) * stride, (t[:, :, 1].sigmoid() + gy) * stride
        bw, bh = t[:, :, 2].exp() * aw, t[:, :, 3].exp() * ah
    else:
        cx, cy = (2 * t[:, :, 0].sigmoid() - 0.5 + gx) * stride, (2 * t[:, :, 1].sigmoid() - 0.5 + gy) * stride
        bw, bh = (2 * t[:, :, 2].sigmoid()) ** 2 * aw, (2 * t[:, :, 3].sigmoid()) ** 2 * ah
    return torch.stack((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), dim=-1)


def yolo_decode(heads: list[Tensor], anchors: Tensor, strides: list[int], version: str = "v5",
                score_threshold: float = 0.25, max_detections: int = 300):
    """Every candidate scored, then each image's top boxes (stable order), in float64."""
    boxes, scores, labels = [], [], []
    for head, anc, s in zip(heads, anchors, strides):
        b, ch, h, w = head.shape
        a = anc.shape[0]
        x = head.reshape(b, a, ch // a, h, w).to(torch.float64)
        best, label = x[:, :, 5:].max(dim=2)  # first maximum on ties
        scores.append((x[:, :, 4].sigmoid() * best.sigmoid()).reshape(b, -1))
        labels.append(label.reshape(b, -1))
        boxes.append(yolo_boxes(head, anc, s, version).reshape(b, -1, 4))
    boxes, scores, labels = torch.cat(boxes, 1), torch.cat(scores, 1), torch.cat(labels, 1)
    b, k = scores.shape[0], max_detections
    out_boxes = torch.zeros(b, k, 4, dtype=torch.float64)
    out_scores = torch.zeros(b, k, dtype=torch.float64)
    out_labels = torch.full((b, k), -1, dtype=torch.int64)
    counts = torch.zeros(b, dtype=torch.int64)
    for i in range(b):
        keep = (scores[i] > score_threshold).nonzero().flatten()
        order = keep[torch.sort(scores[i][keep], descending=True, stable=True).indices][:k]
        n = len(order)
        out_boxes[i, :n], out_scores[i, :n], out_labels[i, :n], counts[i] = boxes[i, order], scores[i, order], \
            labels[i, order], n
    return out_boxes, out_scores, out_labels, counts


def detr_matching_cost_from_probs(prob: Tensor, boxes: Tensor, labels: Tensor, targets: Tensor, class_weight: float,
                                  bbox_weight: float, giou_weight: float) -> Tensor:
    """DETR's matching cost [N, T] of N queries (class probabilities, cxcywh
    boxes) against T targets, in float64."""
    pred = boxes.double()
    tgt = targets.double()
    l1 = (pred[:, None, :] - tgt[None, :, :]).abs().sum(-1)
    giou = pairwise("giou", box_convert(pred, "cxcywh", "xyxy"), box_convert(tgt, "cxcywh", "xyxy"))
    return bbox_weight * l1 - class_weight * prob.double()[:, labels] - giou_weight * giou


def detr_matching_cost(logits: Tensor, boxes: Tensor, labels: Tensor, targets: Tensor, class_weight: float,
                       bbox_weight: float, giou_weight: float) -> Tensor:
    """The same from the queries' logits [N, K]."""
    return detr_matching_cost_from_probs(logits.double().softmax(-1), boxes, labels, targets, class_weight,
                                         bbox_weight, giou_weight)


def paste_boxes(boxes: Tensor, mask_width: int, padding: int = 1) -> list[tuple[int, int, int, int] | None]:
    """torchvision's expand_boxes then .to(int64), step by step in the boxes'
    own dtype; None for a box with a NaN coordinate (it pastes nothing)."""
    scale = float(mask_width + 2 * padding) / mask_width
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    expanded = torch.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], 1).double()
    limit = 2.0**61
    out: list[tuple[int, int, int, int] | None] = []
    for row in expanded.tolist():
        if any(math.isnan(v) for v in row):
            out.append(None)
        else:
            out.append(tuple(int(max(-limit, min(limit, v))) for v in row))
    return out


def _linear_taps(in_size: int, out_size: int, dst: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bilinear align_corners=False source pixels and weights, in float64."""
    src = (dst.double() + 0.5) * (in_size / out_size) - 0.5
    src = src.clamp(min=0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    l1 = (src - i0).clamp(0, 1)
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, 1 - l1, l1


def paste_masks_in_image(masks: Tensor, boxes: Tensor, img_shape: tuple[int, int], padding: int = 1) -> Tensor:
    """Mask R-CNN's paste step in float64: each [M, M] mask padded with zeros,
    resized bilinearly to its expanded integer box and written into zeros
    [H, W]; only the part of the box inside the image (none for a NaN box)."""
    h_img, w_img = img_shape
    n = masks.shape[0]
    out = torch.zeros(n, 1, h_img, w_img, dtype=torch.float64)
    padded = torch.nn.functional.pad(masks.double().reshape(n, masks.shape[-2], masks.shape[-1]), (padding,) * 4)
    for i, box in enumerate(paste_boxes(boxes, masks.shape[-1], padding)):
        if box is None:
            continue
        x1, y1, x2, y2 = box
        w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        xs, xe = max(x1, 0), min(x2 + 1, w_img)
        ys, ye = max(y1, 0), min(y2 + 1, h_img)
        if xe <= xs or ye <= ys:
            continue
        cx0, cx1, wx0, wx1 = _linear_taps(padded.shape[2], w, torch.arange(xs, xe) - x1)
        ry0, ry1, wy0, wy1 = _linear_taps(padded.shape[1], h, torch.arange(ys, ye) - y1)
        p = padded[i]
        rows0 = p[ry0][:, cx0] * wx0 + p[ry0][:, cx1] * wx1
        rows1 = p[ry1][:, cx0] * wx0 + p[ry1][:, cx1] * wx1
        out[i, 0, ys:ye, xs:xe] = rows0 * wy0[:, None] + rows1 * wy1[:, None]
    return out
