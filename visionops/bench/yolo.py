"""Benchmark cases of YOLO decoding: a YOLOv5 head for 640 x 640 images
(3 scales, strides 8, 16, 32, 3 anchors, 80 classes), batch 16, decoded to
each image's top 300 boxes above score 0.25, against the same decode in
plain PyTorch (YOLOv5's Detect arithmetic, then scores, threshold, top-k)."""

from __future__ import annotations

import torch

import visionops
from visionops.bench.boxes import Case

ALL = ["yolo_decode"]
DEFAULT_SIZES = [640]
_ANCHORS = [[[10.0, 13], [16, 30], [33, 23]], [[30.0, 61], [62, 45], [59, 119]], [[116.0, 90], [156, 198], [373, 326]]]
_STRIDES = [8, 16, 32]


def plain_decode(heads: list[torch.Tensor], anchors: torch.Tensor, strides: list[int], score_threshold: float,
                 k: int):
    """YOLOv5's decode in plain PyTorch ops, then each image's top-k boxes."""
    z = []
    for x, anc, s in zip(heads, anchors, strides):
        bs, _, ny, nx = x.shape
        na = anc.shape[0]
        y = x.view(bs, na, -1, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
        gy, gx = torch.meshgrid(torch.arange(ny, device=x.device), torch.arange(nx, device=x.device), indexing="ij")
        grid = torch.stack((gx, gy), 2).view(1, 1, ny, nx, 2).to(x.dtype)
        xy = (y[..., :2] * 2 - 0.5 + grid) * s
        wh = (y[..., 2:4] * 2) ** 2 * anc.view(1, na, 1, 1, 2)
        z.append(torch.cat((xy - wh / 2, xy + wh / 2, y[..., 4:]), -1).view(bs, -1, y.shape[-1]))
    pred = torch.cat(z, 1)
    conf, label = (pred[..., 5:] * pred[..., 4:5]).max(2)
    conf = torch.where(conf > score_threshold, conf, torch.full_like(conf, float("-inf")))
    top, idx = conf.topk(min(k, conf.shape[1]), dim=1)
    return pred[..., :4].gather(1, idx[..., None].expand(-1, -1, 4)), top, label.gather(1, idx)


def cases(ops: list[str], sizes: list[int], elements: int, dtype: torch.dtype, device: str) -> list[Case]:
    unknown = [op for op in ops if op not in ALL]
    if unknown:
        raise ValueError(f"unknown yolo op {unknown[0]!r}; choose from {', '.join(ALL)}")
    g = torch.Generator().manual_seed(0)
    anchors = torch.tensor(_ANCHORS).to(device=device)
    out: list[Case] = []
    for size in sizes:
        heads = [torch.randn(16, 3 * 85, size // s, size // s, generator=g).to(dtype=dtype, device=device)
                 for s in _STRIDES]
        out.append(Case(
            "yolo_decode", f"v5 {size}x{size} batch 16 80cls",
            lambda h=heads: visionops.yolo_decode(h, anchors, _STRIDES, score_threshold=0.25, max_detections=300),
            lambda h=heads: plain_decode(h, anchors.to(dtype), _STRIDES, 0.25, 300), "plain pytorch"))
    return out
