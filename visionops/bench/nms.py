"""Benchmark cases of NMS: nms and batched_nms (80 classes) on uniform and
clustered detector-like boxes (see issue: 1333 x 800 image, sides 10 to 300
px; clustered is N/20 objects with 20 jittered copies each).

Class ids for batched_nms: uniform boxes draw one per box; the copies of a
clustered object share their object's class, as a detector's duplicates do
(a class per copy would spread each object over the classes and leave
little to suppress within a class: the uniform case again)."""

from __future__ import annotations

import torch

import visionops
from visionops.bench.box_generators import layout_boxes, layout_classes
from visionops.bench.boxes import Case

ALL = ["nms", "batched_nms"]
DEFAULT_SIZES = [1000, 20000]
LAYOUTS = ["uniform", "clustered"]


def _torchvision_ops():
    try:
        import torchvision.ops as tv_ops
    except ImportError:
        return None
    return tv_ops


def cases(ops: list[str], sizes: list[int], elements: int, dtype: torch.dtype, device: str,
          iou_threshold: float = 0.5, classes: int = 80) -> list[Case]:
    unknown = [op for op in ops if op not in ALL]
    if unknown:
        raise ValueError(f"unknown nms op {unknown[0]!r}; choose from {', '.join(ALL)}")
    tv = _torchvision_ops()
    g = torch.Generator().manual_seed(0)
    out: list[Case] = []
    for op in ops:
        for layout in LAYOUTS:
            for n in sizes:
                b = layout_boxes(layout, n, dtype, device, g)
                s = torch.rand(n, generator=g).to(dtype=dtype, device=device)
                if op == "nms":
                    out.append(Case(op, f"{layout} {n}", lambda b=b, s=s: visionops.nms(b, s, iou_threshold),
                                    tv and (lambda b=b, s=s: tv.nms(b, s, iou_threshold))))
                else:
                    c = layout_classes(layout, n, classes, g).to(device)
                    out.append(Case(op, f"{layout} {n} {classes}cls",
                                    lambda b=b, s=s, c=c: visionops.batched_nms(b, s, c, iou_threshold),
                                    tv and (lambda b=b, s=s, c=c: tv.batched_nms(b, s, c, iou_threshold))))
    return out
