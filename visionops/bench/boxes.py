"""Benchmark cases of the box family: the pairwise IoU ops, area and
conversion, the IoU losses forward and forward+backward, masks_to_boxes
(64 instance masks of 512 x 512, each a filled ellipse), and Mask R-CNN's
paste_masks_in_image (100 detections' 28 x 28 masks into 800 x 800 images,
against torchvision.models.detection.roi_heads.paste_masks_in_image): the
float masks, and the bool masks above 0.5 that users keep (torchvision's
paste then a comparison, against ours fused and ours unfused)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

import visionops
from visionops.bench.box_generators import detector_boxes

PAIRWISE = ["box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"]
ELEMENTWISE = ["box_area", "box_convert"]
LOSSES = ["generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"]
MASKS = ["masks_to_boxes", "paste_masks_in_image"]
ALL = PAIRWISE + ELEMENTWISE + LOSSES + MASKS
DEFAULT_SIZES = [1000, 4000]


@dataclass
class Case:
    op: str
    case: str
    visionops: Callable[[], object]
    run_baseline: Callable[[], object] | None  # None: the baseline is not installed or cannot run the case
    # what run_baseline runs: torchvision's op unless it names another implementation
    baseline: str = "torchvision"
    # Baselines that take tens of seconds (pycocotools) are timed this many
    # times, without a warm-up, instead of by autorange; 0: autorange.
    baseline_runs: int = 0


def _torchvision_ops():
    try:
        import torchvision.ops as tv_ops
    except ImportError:
        return None
    return tv_ops


def _torchvision_paste():
    try:
        from torchvision.models.detection.roi_heads import paste_masks_in_image
    except ImportError:
        return None
    return paste_masks_in_image


def mask_rcnn_detections(n: int, side: int, g: torch.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """n detections of Mask R-CNN on a side x side image: 28 x 28 mask
    probabilities and boxes 16 to 320 pixels a side inside the image."""
    xy = torch.rand(n, 2, generator=g) * (side * 0.6)
    wh = 16 + torch.rand(n, 2, generator=g) * 304
    boxes = torch.cat([xy, (xy + wh).clamp(max=side - 1)], 1)
    masks = torch.rand(n, 1, 28, 28, generator=g)
    return masks.to(device), boxes.to(device)


def _fwd_bwd(fn, p: torch.Tensor, t: torch.Tensor) -> Callable[[], None]:
    def run():
        x = p.detach().requires_grad_()
        fn(x, t, reduction="mean").backward()

    return run


def cases(ops: list[str], sizes: list[int], elements: int, dtype: torch.dtype, device: str) -> list[Case]:
    tv = _torchvision_ops()
    g = torch.Generator().manual_seed(0)
    out: list[Case] = []
    unknown = [op for op in ops if op not in ALL]
    if unknown:
        raise ValueError(f"unknown box op {unknown[0]!r}; choose from {', '.join(ALL)}")
    for op in ops:
        ours = getattr(visionops, op)
        theirs = getattr(tv, op, None) if tv is not None else None
        if op in PAIRWISE:
            for n in sizes:
                a, b = detector_boxes(n, dtype, device, g), detector_boxes(n, dtype, device, g)
                out.append(Case(op, f"{n}x{n}", lambda f=ours, a=a, b=b: f(a, b),
                                theirs and (lambda f=theirs, a=a, b=b: f(a, b))))
        elif op == "box_area":
            x = detector_boxes(elements, dtype, device, g)
            out.append(Case(op, f"{elements} boxes", lambda f=ours, x=x: f(x),
                            theirs and (lambda f=theirs, x=x: f(x))))
        elif op == "box_convert":
            x = detector_boxes(elements, dtype, device, g)
            out.append(Case(op, f"{elements} xyxy->cxcywh", lambda f=ours, x=x: f(x, "xyxy", "cxcywh"),
                            theirs and (lambda f=theirs, x=x: f(x, "xyxy", "cxcywh"))))
        elif op in LOSSES:
            p, t = detector_boxes(elements, dtype, device, g), detector_boxes(elements, dtype, device, g)
            t = (p + (t - p) * 0.1).contiguous()  # targets near the predictions, as in training
            out.append(Case(op, f"{elements} fwd", lambda f=ours, p=p, t=t: f(p, t, reduction="mean"),
                            theirs and (lambda f=theirs, p=p, t=t: f(p, t, reduction="mean"))))
            out.append(Case(op, f"{elements} fwd+bwd", _fwd_bwd(ours, p, t), theirs and _fwd_bwd(theirs, p, t)))
        elif op == "masks_to_boxes":
            m = _ellipse_masks(64, 512, g).to(device)
            out.append(Case(op, "64x512x512", lambda f=ours, m=m: f(m), theirs and (lambda f=theirs, m=m: f(m))))
        elif op == "paste_masks_in_image":
            out.extend(_paste_cases(ours, dtype, device, g))
    return out


def _paste_cases(ours, dtype: torch.dtype, device: str, g: torch.Generator) -> list[Case]:
    tv_paste = _torchvision_paste()
    m, b = mask_rcnn_detections(100, 800, g, device)
    m = m.to(dtype)
    size = (800, 800)
    name = "paste_masks_in_image"
    return [
        Case(name, "100 dets 800x800", lambda: ours(m, b, size), tv_paste and (lambda: tv_paste(m, b, size))),
        Case(name, "100 dets 800x800 >0.5 fused", lambda: ours(m, b, size, threshold=0.5),
             tv_paste and (lambda: tv_paste(m, b, size) > 0.5)),
        Case(name, "100 dets 800x800 >0.5 unfused", lambda: ours(m, b, size) > 0.5,
             tv_paste and (lambda: tv_paste(m, b, size) > 0.5)),
    ]


def _ellipse_masks(n: int, side: int, g: torch.Generator) -> torch.Tensor:
    """n boolean masks, each one filled ellipse at a random place and size."""
    ys = torch.arange(side, dtype=torch.float32).view(1, side, 1)
    xs = torch.arange(side, dtype=torch.float32).view(1, 1, side)
    centre = torch.rand(n, 2, generator=g) * side
    radii = 8 + torch.rand(n, 2, generator=g) * side / 4
    dy = (ys - centre[:, 1].view(n, 1, 1)) / radii[:, 1].view(n, 1, 1)
    dx = (xs - centre[:, 0].view(n, 1, 1)) / radii[:, 0].view(n, 1, 1)
    return dx * dx + dy * dy <= 1
