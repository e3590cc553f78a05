"""Benchmark cases of the RoI ops on detector shapes.

- Faster R-CNN box head: features [2, 256, 200, 272] (an 800 x 1088 image at
  stride 4), N RoIs (default 2,000) with centres uniform in the image and
  sides of 16 to 400 px, 7 x 7 bins, sampling_ratio 2, aligned.
- Mask R-CNN mask head: the same map, 512 RoIs, 14 x 14 bins.
- roi_pool: the Faster R-CNN shape.
- MultiScaleRoIAlign: a 4-level FPN (strides 4 to 32) of an 800 x 1088 image,
  256 channels, batch 2, 1,000 RoIs per image of 16 to 800 px, 7 x 7,
  sampling_ratio 2.

Backward cases time the backward op alone on a fixed output gradient;
"fwd+bwd" cases time a forward and a backward through autograd.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch

import visionops
from visionops.bench.box_generators import random_boxes
from visionops.bench.boxes import Case

ALL = ["roi_align", "roi_pool", "multi_scale_roi_align"]
DEFAULT_SIZES = [2000]
_IMAGE = (800, 1088)


def _boxes(k: int, max_side: float, g: torch.Generator) -> torch.Tensor:
    return random_boxes(k, image=(_IMAGE[1], _IMAGE[0]), sides=(16.0, max_side), anchor="centre",
                        dtype=torch.float32, generator=g)


def _rois(k: int, batch: int, max_side: float, g: torch.Generator) -> torch.Tensor:
    idx = torch.randint(0, batch, (k, 1), generator=g).float()
    return torch.cat([idx, _boxes(k, max_side, g)], dim=1)


def _torchvision():
    try:
        import torchvision
    except ImportError:
        return None
    return torchvision


def _works(fn: Callable[[], object] | None) -> Callable[[], object] | None:
    """fn, or None where torchvision does not support the case (e.g. half on the CPU)."""
    if fn is None:
        return None
    try:
        fn()
    except (RuntimeError, NotImplementedError):
        return None
    return fn


def _fwd_bwd(module, feats: OrderedDict, boxes: list, grad: torch.Tensor) -> Callable[[], None]:
    def run():
        x = OrderedDict((k, v.detach().requires_grad_()) for k, v in feats.items())
        module(x, boxes, [_IMAGE] * len(boxes)).backward(grad)

    return run


def _multi_scale_cases(tv, dtype: torch.dtype, device: str, g: torch.Generator) -> list[Case]:
    op = "multi_scale_roi_align"
    feats = OrderedDict(
        (f"p{lvl}", torch.randn(2, 256, _IMAGE[0] >> lvl, _IMAGE[1] >> lvl, generator=g).to(dtype=dtype, device=device))
        for lvl in range(2, 6)
    )
    boxes = [_boxes(1000, 800, g).to(dtype=dtype, device=device) for _ in range(2)]
    grad = torch.randn(2000, 256, 7, 7, generator=g).to(dtype=dtype, device=device)
    ours = visionops.MultiScaleRoIAlign(list(feats), 7, 2)
    theirs = tv.ops.MultiScaleRoIAlign(list(feats), 7, 2) if tv is not None else None
    shapes = [_IMAGE] * 2
    return [
        Case(op, "fpn 4 levels 2x1000 rois fwd", lambda: ours(feats, boxes, shapes),
             _works(theirs and (lambda: theirs(feats, boxes, shapes)))),
        Case(op, "fpn 4 levels 2x1000 rois fwd+bwd", _fwd_bwd(ours, feats, boxes, grad),
             _works(theirs and _fwd_bwd(theirs, feats, boxes, grad))),
    ]


def cases(ops: list[str], sizes: list[int], elements: int, dtype: torch.dtype, device: str) -> list[Case]:
    unknown = [op for op in ops if op not in ALL]
    if unknown:
        raise ValueError(f"unknown roi op {unknown[0]!r}; choose from {', '.join(ALL)}")
    tv = _torchvision()
    tvo = torch.ops.torchvision if tv is not None else None
    vo = torch.ops.visionops
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 256, 200, 272, generator=g).to(dtype=dtype, device=device)
    out: list[Case] = []
    for op in ops:
        if op == "roi_align":
            shapes = [(f"faster-rcnn {k} rois 7x7", k, 7) for k in sizes] + [("mask-rcnn 512 rois 14x14", 512, 14)]
            for name, k, p in shapes:
                r = _rois(k, 2, 400, g).to(dtype=dtype, device=device)
                grad = torch.randn(k, 256, p, p, generator=g).to(dtype=dtype, device=device)
                args = (r, 0.25, p, p, 2, True)
                bargs = (grad, r, 0.25, p, p, 2, 256, 200, 272, 2, True)
                out.append(Case(op, f"{name} fwd", lambda a=args: vo.roi_align(x, *a),
                                _works(tvo and (lambda a=args: tvo.roi_align(x, *a)))))
                out.append(Case(op, f"{name} bwd", lambda a=bargs: vo._roi_align_backward(*a, False),
                                _works(tvo and (lambda a=bargs: tvo._roi_align_backward(*a)))))
        elif op == "roi_pool":
            for k in sizes:
                r = _rois(k, 2, 400, g).to(dtype=dtype, device=device)
                grad = torch.randn(k, 256, 7, 7, generator=g).to(dtype=dtype, device=device)
                _, argmax = vo.roi_pool(x, r, 0.25, 7, 7)
                bargs = (grad, r, argmax, 0.25, 7, 7, 2, 256, 200, 272)
                out.append(Case(op, f"{k} rois 7x7 fwd", lambda r=r: vo.roi_pool(x, r, 0.25, 7, 7),
                                _works(tvo and (lambda r=r: tvo.roi_pool(x, r, 0.25, 7, 7)))))
                out.append(Case(op, f"{k} rois 7x7 bwd", lambda a=bargs: vo._roi_pool_backward(*a, False),
                                _works(tvo and (lambda a=bargs: tvo._roi_pool_backward(*a)))))
        elif op == "multi_scale_roi_align":
            out += _multi_scale_cases(tv, dtype, device, g)
    return out
