"""Benchmark cases of NMS: nms and batched_nms (80 classes) on uniform and
clustered detector-like boxes (see issue: 1333 x 800 image, sides 10 to 300
px; clustered is N/20 objects with 20 jittered copies each); padded_nms on a
batch of 16 images of N clustered boxes each (300 kept per image) against a
loop of torchvision's batched_nms over the images, as YOLO's
post-processing does; soft_nms (gaussian) against a plain PyTorch loop of
the same algorithm (torchvision has none).

Class ids for batched_nms: uniform boxes draw one per box; the copies of a
clustered object share their object's class, as a detector's duplicates do
(a class per copy would spread each object over the classes and leave
little to suppress within a class: the uniform case again). One more
batched_nms case is that spread, as multi-label heads give it: 100,000
clustered boxes, 25 copies per object, a class drawn at random per box
(the AVX2 issue's case)."""

from __future__ import annotations

import torch

import visionops
from visionops.bench.box_generators import clustered_boxes, layout_boxes, layout_classes
from visionops.bench.boxes import Case

ALL = ["nms", "batched_nms", "padded_nms", "soft_nms"]
DEFAULT_SIZES = [1000, 20000]
LAYOUTS = ["uniform", "clustered"]
MULTILABEL_BOXES = 100_000


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
        if op == "padded_nms":
            out += _padded_cases(sizes, dtype, device, iou_threshold, classes, tv, g)
            continue
        if op == "soft_nms":
            out += _soft_cases(sizes, dtype, device, g)
            continue
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
        if op == "batched_nms":
            n = MULTILABEL_BOXES
            b = clustered_boxes(n, dtype, device, g, copies_per_object=25)
            s = torch.rand(n, generator=g).to(dtype=dtype, device=device)
            c = torch.randint(0, classes, (n,), generator=g).to(device)
            out.append(Case(op, f"clustered {n} {classes}cls per box",
                            lambda b=b, s=s, c=c: visionops.batched_nms(b, s, c, iou_threshold),
                            tv and (lambda b=b, s=s, c=c: tv.batched_nms(b, s, c, iou_threshold))))
    return out


def _padded_cases(sizes, dtype, device, iou_threshold, classes, tv, g, batch: int = 16,
                  max_output: int = 300) -> list[Case]:
    out = []
    for n in sizes:
        b = torch.stack([layout_boxes("clustered", n, dtype, device, g) for _ in range(batch)])
        s = torch.rand(batch, n, generator=g).to(dtype=dtype, device=device)
        c = torch.stack([layout_classes("clustered", n, classes, g) for _ in range(batch)]).to(device)

        def loop(b=b, s=s, c=c):
            return [tv.batched_nms(b[i], s[i], c[i], iou_threshold)[:max_output] for i in range(batch)]

        out.append(Case("padded_nms", f"{batch}x{n} {classes}cls",
                        lambda b=b, s=s, c=c: visionops.padded_nms(b, s, iou_threshold, max_output, idxs=c),
                        tv and loop, baseline="a torchvision batched_nms loop"))
    return out


def plain_soft_nms(boxes: torch.Tensor, scores: torch.Tensor, sigma: float = 0.5,
                   score_threshold: float = 0.001) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian soft-NMS in plain PyTorch, one pick per step (the benchmark's baseline)."""
    scores = scores.clone()
    alive = scores >= score_threshold
    keep, kept_scores = [], []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while bool(alive.any()):
        i = int(torch.where(alive, scores, scores.new_tensor(-float("inf"))).argmax())
        keep.append(i)
        kept_scores.append(scores[i])
        alive[i] = False
        lt = torch.maximum(boxes[i, :2], boxes[:, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=1)
        iou = inter / (area[i] + area - inter)
        scores = torch.where(alive, scores * torch.exp(-(iou * iou) / sigma), scores)
        alive &= scores >= score_threshold
    return torch.tensor(keep, dtype=torch.long), torch.stack(kept_scores) if kept_scores else scores[:0]


def _soft_cases(sizes, dtype, device, g) -> list[Case]:
    out = []
    for n in sizes:
        n = min(n, 2000)  # the baseline takes one step per kept box
        b = layout_boxes("clustered", n, dtype, device, g)
        s = torch.rand(n, generator=g).to(dtype=dtype, device=device)
        out.append(Case("soft_nms", f"clustered {n} gaussian",
                        lambda b=b, s=s: visionops.soft_nms(b, s, 0.3, 0.5, 0.001, "gaussian"),
                        lambda b=b, s=s: plain_soft_nms(b, s), baseline="plain PyTorch", baseline_runs=3))
    return out
