"""Benchmark cases of small inputs, where an op's fixed costs (argument
checks, dispatch, allocation, autograd) are most of its time: 10 and 12
boxes, a 16 x 16 feature map of 8 channels with 5 RoIs, 4 x 5 logits, one
64 x 64 Dice mask, whatever ``--sizes`` says (it sizes the other suites'
cases of the same ops, run alongside these). Against
torchvision, and the Dice loss against its plain-PyTorch definition. The
fwd+bwd cases run backward from the output's sum, as a training step does."""

from __future__ import annotations

from collections.abc import Callable

import torch

import visionops
from visionops.bench.boxes import Case, _torchvision_ops
from visionops.bench.dice import plain_dice_loss

ALL = ["box_iou", "generalized_box_iou", "box_area", "box_convert", "nms", "batched_nms", "masks_to_boxes",
       "roi_align", "roi_pool", "sigmoid_focal_loss", "generalized_box_iou_loss", "complete_box_iou_loss",
       "dice_loss"]
DEFAULT_SIZES = [10]


def _boxes(n: int, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 50 + 1
    return torch.cat([xy, xy + wh], 1)


def _fwd_bwd(fn: Callable, *inputs: torch.Tensor) -> Callable[[], None]:
    def run():
        fn(*[x.detach().requires_grad_() for x in inputs]).sum().backward()

    return run


def _rows(n: int, g: torch.Generator, dtype: torch.dtype, device: str, tv) -> list[Case]:
    """Every case, with n and n + 2 boxes."""
    a = _boxes(n, g).to(dtype=dtype, device=device)
    b = _boxes(n + 2, g).to(dtype=dtype, device=device)
    near = a + 1
    scores = torch.rand(n, generator=g).to(dtype=dtype, device=device)
    classes = torch.randint(0, 3, (n,), generator=g).to(device)
    feat = torch.randn(1, 8, 16, 16, generator=g).to(dtype=dtype, device=device)
    rois = torch.cat([torch.zeros(5, 1), _boxes(5, g) / 8], 1).to(dtype=dtype, device=device)
    masks = torch.randn(8, 16, 16, generator=g).to(device) > 0
    logits = torch.randn(4, 5, generator=g).to(dtype=dtype, device=device)
    labels = (torch.rand(4, 5, generator=g) > 0.5).to(dtype=dtype, device=device)
    seg = torch.randn(1, 1, 64, 64, generator=g).to(dtype=dtype, device=device)
    seg_t = (torch.rand(1, 1, 64, 64, generator=g) > 0.5).to(dtype=dtype, device=device)
    boxes_name = f"small {n}x{n + 2} boxes"
    return [
        Case("box_iou", boxes_name, lambda: visionops.box_iou(a, b), tv and (lambda: tv.box_iou(a, b))),
        Case("generalized_box_iou", boxes_name, lambda: visionops.generalized_box_iou(a, b),
         tv and (lambda: tv.generalized_box_iou(a, b))),
        Case("box_area", f"small {n} boxes", lambda: visionops.box_area(a), tv and (lambda: tv.box_area(a))),
        Case("box_convert", f"small {n} xyxy->cxcywh", lambda: visionops.box_convert(a, "xyxy", "cxcywh"),
         tv and (lambda: tv.box_convert(a, "xyxy", "cxcywh"))),
        Case("nms", f"small {n} boxes", lambda: visionops.nms(a, scores, 0.5), tv and (lambda: tv.nms(a, scores, 0.5))),
        Case("batched_nms", f"small {n} boxes 3cls", lambda: visionops.batched_nms(a, scores, classes, 0.5),
         tv and (lambda: tv.batched_nms(a, scores, classes, 0.5))),
        Case("masks_to_boxes", "small 8x16x16", lambda: visionops.masks_to_boxes(masks),
         tv and (lambda: tv.masks_to_boxes(masks))),
        Case("roi_align", "small 5 rois 7x7 fwd", lambda: visionops.roi_align(feat, rois, 7, 1.0, 2, True),
         tv and (lambda: tv.roi_align(feat, rois, 7, 1.0, 2, True))),
        Case("roi_align", "small 5 rois 7x7 fwd+bwd",
         _fwd_bwd(lambda f: visionops.roi_align(f, rois, 7, 1.0, 2, True), feat),
         tv and _fwd_bwd(lambda f: tv.roi_align(f, rois, 7, 1.0, 2, True), feat)),
        Case("roi_pool", "small 5 rois 7x7 fwd", lambda: visionops.roi_pool(feat, rois, 7, 1.0),
         tv and (lambda: tv.roi_pool(feat, rois, 7, 1.0))),
        Case("roi_pool", "small 5 rois 7x7 fwd+bwd", _fwd_bwd(lambda f: visionops.roi_pool(f, rois, 7, 1.0), feat),
         tv and _fwd_bwd(lambda f: tv.roi_pool(f, rois, 7, 1.0), feat)),
        Case("sigmoid_focal_loss", "small 4x5 fwd",
         lambda: visionops.sigmoid_focal_loss(logits, labels, reduction="mean"),
         tv and (lambda: tv.sigmoid_focal_loss(logits, labels, reduction="mean"))),
        Case("sigmoid_focal_loss", "small 4x5 fwd+bwd",
         _fwd_bwd(lambda x: visionops.sigmoid_focal_loss(x, labels, reduction="mean"), logits),
         tv and _fwd_bwd(lambda x: tv.sigmoid_focal_loss(x, labels, reduction="mean"), logits)),
        Case("generalized_box_iou_loss", f"small {n} fwd+bwd",
         _fwd_bwd(lambda p: visionops.generalized_box_iou_loss(p, near, reduction="mean"), a),
         tv and _fwd_bwd(lambda p: tv.generalized_box_iou_loss(p, near, reduction="mean"), a)),
        Case("complete_box_iou_loss", f"small {n} fwd+bwd",
         _fwd_bwd(lambda p: visionops.complete_box_iou_loss(p, near, reduction="mean"), a),
         tv and _fwd_bwd(lambda p: tv.complete_box_iou_loss(p, near, reduction="mean"), a)),
        Case("dice_loss", "small binary 1x1x64x64 fwd+bwd", _fwd_bwd(lambda x: visionops.dice_loss(x, seg_t), seg),
             _fwd_bwd(lambda x: plain_dice_loss(x, seg_t, dtype=x.dtype), seg), "plain pytorch"),
    ]


def cases(ops: list[str], sizes: list[int], elements: int, dtype: torch.dtype, device: str) -> list[Case]:
    unknown = [op for op in ops if op not in ALL]
    if unknown:
        raise ValueError(f"unknown small-input op {unknown[0]!r}; choose from {', '.join(ALL)}")
    tv = _torchvision_ops()
    g = torch.Generator().manual_seed(0)
    return [c for c in _rows(DEFAULT_SIZES[0], g, dtype, device, tv) if c.op in ops]
