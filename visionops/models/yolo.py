"""YOLO (v5-style), on visionops' ops.

As the lecture notes describe it: the image is seen at three scales (strides
8, 16 and 32); every cell of each scale's grid predicts, for each of its
three anchors, a box (offsets of its centre in the cell, and a size relative
to the anchor), an objectness and one logit per class.

- Backbone and neck: a small CSP network (YOLOv5's C3 blocks, SPPF, and a
  PANet neck of top-down and bottom-up paths), scaled by a width and a depth
  multiplier (``yolo_small``: 0.25 and 0.33).
- Targets: a ground-truth box goes to every anchor whose width and height
  ratios to it are within ``anchor_t`` (4), at its centre's cell and the two
  nearest neighbouring cells (YOLOv5's rule, which triples the positives).
- Loss per cell: box ``1 - CIoU`` (our ``complete_box_iou_loss``, on boxes
  decoded by our differentiable ``yolo_boxes``), objectness BCE against the
  CIoU of each positive (0 elsewhere), class BCE; YOLOv5's weights.
- Inference: ``yolo_decode`` (every scale to each image's best candidates)
  then ``padded_nms`` per class: fixed-size outputs, no host sync, which
  ``torch.export`` accepts (``forward_padded``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import visionops


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU(inplace=True))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1, self.cv2 = ConvBNAct(c, c, 1), ConvBNAct(c, c, 3)
        self.add = shortcut

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block: half the channels through n bottlenecks, half around them."""

    def __init__(self, cin: int, cout: int, n: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        hidden = cout // 2
        self.cv1, self.cv2 = ConvBNAct(cin, hidden), ConvBNAct(cin, hidden)
        self.m = nn.Sequential(*(Bottleneck(hidden, shortcut) for _ in range(n)))
        self.cv3 = ConvBNAct(2 * hidden, cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.cv3(torch.cat([self.m(self.cv1(x)), self.cv2(x)], 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max pools."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        hidden = cin // 2
        self.cv1, self.cv2 = ConvBNAct(cin, hidden), ConvBNAct(4 * hidden, cout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.cv1(x)
        y1 = F.max_pool2d(x, 5, 1, 2)
        y2 = F.max_pool2d(y1, 5, 1, 2)
        return self.cv2(torch.cat([x, y1, y2, F.max_pool2d(y2, 5, 1, 2)], 1))


def default_anchors(image_size: int = 256) -> list[list[list[float]]]:
    """Anchors (w, h) in pixels per scale for the synthetic shapes at
    `image_size` (objects of 12% to 45% of the side, rotated)."""
    base = [[[20, 20], [30, 22], [22, 30]], [[44, 44], [62, 46], [46, 62]], [[92, 92], [130, 100], [100, 130]]]
    f = image_size / 256
    return [[[w * f, h * f] for w, h in level] for level in base]


class YOLO(nn.Module):
    """Args:
        num_classes: object classes (no background class).
        width, depth: YOLOv5's multipliers of channels (64 ... 1024) and C3
            depths (3, 6, 9, 3).
        anchors: [3 scales][A][2] anchor sizes in pixels.
        image_size: the training image side (it sets the default anchors).
        score_threshold, iou_threshold, max_detections: inference.
    """

    strides = (8, 16, 32)

    def __init__(self, num_classes: int, *, width: float = 0.25, depth: float = 0.33, anchors=None,
                 image_size: int = 256, score_threshold: float = 0.001, iou_threshold: float = 0.6,
                 max_detections: int = 100, candidates: int = 1000) -> None:
        super().__init__()
        c = [max(8, round(v * width / 8) * 8) for v in (64, 128, 256, 512, 1024)]
        n = [max(1, round(v * depth)) for v in (3, 6, 9, 3)]
        self.num_classes = num_classes
        self.score_threshold, self.iou_threshold = score_threshold, iou_threshold
        self.max_detections, self.candidates = max_detections, candidates
        self.register_buffer("anchors", torch.tensor(anchors or default_anchors(image_size), dtype=torch.float32))
        a = self.anchors.shape[1]
        # Backbone: P3 (stride 8), P4 (16), P5 (32).
        self.stem = nn.Sequential(ConvBNAct(3, c[0], 6, 2), ConvBNAct(c[0], c[1], 3, 2), C3(c[1], c[1], n[0]))
        self.down3 = nn.Sequential(ConvBNAct(c[1], c[2], 3, 2), C3(c[2], c[2], n[1]))
        self.down4 = nn.Sequential(ConvBNAct(c[2], c[3], 3, 2), C3(c[3], c[3], n[2]))
        self.down5 = nn.Sequential(ConvBNAct(c[3], c[4], 3, 2), C3(c[4], c[4], n[3]), SPPF(c[4], c[4]))
        # PANet neck.
        self.lat5, self.td4 = ConvBNAct(c[4], c[3]), C3(2 * c[3], c[3], n[0], shortcut=False)
        self.lat4, self.td3 = ConvBNAct(c[3], c[2]), C3(2 * c[2], c[2], n[0], shortcut=False)
        self.bu3, self.out4 = ConvBNAct(c[2], c[2], 3, 2), C3(2 * c[2], c[3], n[0], shortcut=False)
        self.bu4, self.out5 = ConvBNAct(c[3], c[3], 3, 2), C3(2 * c[3], c[4], n[0], shortcut=False)
        self.heads = nn.ModuleList(nn.Conv2d(ch, a * (5 + num_classes), 1) for ch in (c[2], c[3], c[4]))
        self._init_biases(image_size)

    def _init_biases(self, image_size: int) -> None:
        # YOLOv5's priors: about 8 objects per 640^2 image, classes near uniform.
        a = self.anchors.shape[1]
        for head, s in zip(self.heads, self.strides):
            b = head.bias.detach().view(a, -1)
            b[:, 4] = math.log(8 / (640 / s) ** 2)
            b[:, 5:] = math.log(0.6 / max(self.num_classes - 0.99, 1e-3))
            head.bias.data = b.view(-1)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Images [B, 3, H, W] (H, W multiples of 32), normalized to [0, 1],
        to the raw head of each scale [B, A * (5 + C), H / s, W / s]."""
        p3 = self.down3(self.stem(x))
        p4 = self.down4(p3)
        p5 = self.down5(p4)
        l5 = self.lat5(p5)
        t4 = self.td4(torch.cat([F.interpolate(l5, scale_factor=2.0, mode="nearest"), p4], 1))
        l4 = self.lat4(t4)
        o3 = self.td3(torch.cat([F.interpolate(l4, scale_factor=2.0, mode="nearest"), p3], 1))
        o4 = self.out4(torch.cat([self.bu3(o3), l4], 1))
        o5 = self.out5(torch.cat([self.bu4(o4), l5], 1))
        return [head(f) for head, f in zip(self.heads, (o3, o4, o5))]

    def forward_padded(self, images: Tensor) -> dict[str, Tensor]:
        """Fixed-size inference: images [B, 3, H, W] to ``boxes`` [B, D, 4]
        (x1, y1, x2, y2 pixels), ``scores`` [B, D], ``labels`` [B, D] (class
        index, 0 past each image's count) and ``counts`` [B], D =
        max_detections. No host synchronization; torch.export accepts it."""
        heads = self.forward(images)
        boxes, scores, classes, _ = visionops.yolo_decode(heads, self.anchors, list(self.strides), version="v5",
                                                          score_threshold=self.score_threshold,
                                                          max_detections=self.candidates)
        keep, counts = visionops.padded_nms(boxes, scores, self.iou_threshold, self.max_detections,
                                            idxs=classes.clamp(min=0), score_threshold=0.0)
        kept = keep >= 0
        idx = keep.clamp(min=0)
        h, w = images.shape[-2:]
        out_boxes = boxes.gather(1, idx[..., None].expand(-1, -1, 4))
        out_boxes = torch.minimum(out_boxes.clamp(min=0), out_boxes.new_tensor([w, h, w, h]))
        return {
            "boxes": torch.where(kept[..., None], out_boxes, 0.0),
            "scores": torch.where(kept, scores.gather(1, idx), 0.0),
            "labels": torch.where(kept, classes.gather(1, idx), 0),
            "counts": counts,
        }


class YOLOLoss(nn.Module):
    """YOLOv5's loss with our ops (see the module docstring).

    ``forward(heads, targets)``: targets are one dict per image with
    ``boxes`` [K, 4] (x1, y1, x2, y2 pixels) and ``labels`` [K] (class
    indices in [0, C)). Returns ``loss_box``, ``loss_obj`` and ``loss_cls``.
    """

    balance = (4.0, 1.0, 0.4)  # objectness weight per scale (YOLOv5)

    def __init__(self, anchors: Tensor, strides=(8, 16, 32), num_classes: int = 80, anchor_t: float = 4.0,
                 box_weight: float = 0.05, obj_weight: float = 1.0, cls_weight: float = 0.5) -> None:
        super().__init__()
        self.anchors, self.strides, self.num_classes = anchors, tuple(strides), num_classes
        self.anchor_t = anchor_t
        self.box_weight, self.obj_weight, self.cls_weight = box_weight, obj_weight, cls_weight

    def assign(self, level: int, shape: tuple[int, int], targets: list[dict[str, Tensor]], device):
        """Positives of one scale: (image, anchor, row, column, gt box, label)."""
        h, w = shape
        stride = self.strides[level]
        anchors = self.anchors[level].to(device)
        rows = []
        for b, t in enumerate(targets):
            boxes = t["boxes"].to(device, torch.float32)
            if boxes.numel() == 0:
                continue
            wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
            ratio = wh[:, None, :] / anchors[None]  # [K, A, 2]
            ok = torch.maximum(ratio, 1 / ratio).amax(-1) < self.anchor_t
            k_idx, a_idx = torch.where(ok)
            centre = (boxes[k_idx, :2] + boxes[k_idx, 2:]) / 2 / stride  # grid units
            cells = [centre.floor()]
            frac = centre - centre.floor()
            # YOLOv5: also the nearer horizontal and vertical neighbours.
            for axis in (0, 1):
                for near, step in ((frac[:, axis] < 0.5, -1.0), (frac[:, axis] > 0.5, 1.0)):
                    shifted = centre.floor().clone()
                    shifted[:, axis] += step
                    lim = w if axis == 0 else h
                    valid = near & (shifted[:, axis] >= 0) & (shifted[:, axis] < lim)
                    cells.append(torch.where(valid[:, None], shifted, torch.full_like(shifted, -1)))
            for cell in cells:
                keep = (cell[:, 0] >= 0) & (cell[:, 0] < w) & (cell[:, 1] >= 0) & (cell[:, 1] < h)
                if keep.any():
                    kk = k_idx[keep]
                    rows.append((torch.full_like(kk, b), a_idx[keep], cell[keep, 1].long(), cell[keep, 0].long(),
                                 boxes[kk], t["labels"].to(device)[kk]))
        if not rows:
            z = torch.zeros(0, dtype=torch.long, device=device)
            return z, z, z, z, torch.zeros(0, 4, device=device), z
        return tuple(torch.cat(parts) for parts in zip(*rows))

    def forward(self, heads: list[Tensor], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        device = heads[0].device
        box_losses, obj_loss, cls_losses = [], heads[0].new_zeros(()), []
        for level, head in enumerate(heads):
            bsz, _, h, w = head.shape
            a = self.anchors.shape[1]
            p = head.view(bsz, a, 5 + self.num_classes, h, w)
            obj_target = torch.zeros(bsz, a, h, w, device=device, dtype=head.dtype)
            b, ai, gy, gx, gt, labels = self.assign(level, (h, w), targets, device)
            if b.numel():
                pred_boxes = visionops.yolo_boxes(head, self.anchors[level], self.strides[level], version="v5")
                pb = pred_boxes[b, ai, gy, gx]
                box_losses.append(visionops.complete_box_iou_loss(pb, gt, reduction="none"))
                ciou = 1 - box_losses[-1].detach()
                obj_target[b, ai, gy, gx] = ciou.clamp(min=0).to(head.dtype)
                logits = p[b, ai, 5:, gy, gx]
                onehot = F.one_hot(labels, self.num_classes).to(logits.dtype)
                cls_losses.append(F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").mean(1))
            obj_loss = obj_loss + self.balance[level] * F.binary_cross_entropy_with_logits(p[:, :, 4], obj_target)
        zero = heads[0].sum() * 0
        box = torch.cat(box_losses).mean() if box_losses else zero
        cls = torch.cat(cls_losses).mean() if cls_losses else zero
        return {"loss_box": self.box_weight * box, "loss_obj": self.obj_weight * obj_loss,
                "loss_cls": self.cls_weight * cls}


def yolo_small(num_classes: int, image_size: int = 256, **kwargs) -> YOLO:
    """YOLOv5 at width 0.25 and depth 0.33 (YOLOv5n's), for CPU training."""
    return YOLO(num_classes, image_size=image_size, **{"width": 0.25, "depth": 0.33, **kwargs})
