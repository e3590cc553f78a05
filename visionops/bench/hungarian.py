"""Benchmark cases of Hungarian matching on a DETR batch (--sizes is the
batch, default 64 images of 100 queries with 1 to 30 targets each):
batched ``linear_sum_assignment`` against scipy's in a loop over the
images' float64 cost blocks, and ``HungarianMatcher`` (92 classes, costs
1/5/2) against DETR's reference matcher (the algorithm of Carion et al.'s
models/matcher.py: the whole [B*Q, sum T] cost with torch ops and
torchvision's generalized_box_iou, split per image, scipy per image)."""

from __future__ import annotations

from collections.abc import Callable

import torch

import visionops
from visionops.bench.boxes import Case

ALL = ["linear_sum_assignment", "hungarian_matcher"]
DEFAULT_SIZES = [64]
QUERIES, CLASSES = 100, 92


def detr_batch(batch: int, generator: torch.Generator, dtype=torch.float32, device="cpu"):
    """DETR outputs and targets: boxes (cx, cy, w, h) normalized to [0, 1]."""
    g = generator

    def boxes(n: int) -> torch.Tensor:
        return torch.cat([torch.rand(n, 2, generator=g) * 0.8 + 0.1, torch.rand(n, 2, generator=g) * 0.3 + 0.02], 1)

    outputs = {"pred_logits": torch.randn(batch, QUERIES, CLASSES, generator=g).to(device, dtype),
               "pred_boxes": boxes(batch * QUERIES).view(batch, QUERIES, 4).to(device, dtype)}
    counts = torch.randint(1, 31, (batch,), generator=g).tolist()
    targets = [{"labels": torch.randint(0, CLASSES - 1, (n,), generator=g).to(device),
                "boxes": boxes(n).to(device, dtype)} for n in counts]
    return outputs, targets


def _scipy_loop(blocks) -> Callable[[], object] | None:
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        return None
    return lambda: [linear_sum_assignment(c) for c in blocks]


def _detr_reference(outputs, targets, w_class=1.0, w_bbox=5.0, w_giou=2.0) -> Callable[[], object] | None:
    try:
        from scipy.optimize import linear_sum_assignment
        from torchvision.ops import box_convert, generalized_box_iou
    except ImportError:
        return None

    @torch.no_grad()
    def run():
        bs, nq = outputs["pred_logits"].shape[:2]
        prob = outputs["pred_logits"].flatten(0, 1).softmax(-1)
        pred = outputs["pred_boxes"].flatten(0, 1)
        tgt_ids = torch.cat([t["labels"] for t in targets])
        tgt = torch.cat([t["boxes"] for t in targets])
        cost = (w_bbox * torch.cdist(pred, tgt, p=1) - w_class * prob[:, tgt_ids]
                - w_giou * generalized_box_iou(box_convert(pred, "cxcywh", "xyxy"), box_convert(tgt, "cxcywh", "xyxy")))
        cost = cost.view(bs, nq, -1).cpu()
        sizes = [len(t["boxes"]) for t in targets]
        return [linear_sum_assignment(c[i]) for i, c in enumerate(cost.split(sizes, -1))]

    return run


def cases(ops: list[str], sizes: list[int], elements: int, dtype: torch.dtype, device: str) -> list[Case]:
    unknown = [op for op in ops if op not in ALL]
    if unknown:
        raise ValueError(f"unknown hungarian op {unknown[0]!r}; choose from {', '.join(ALL)}")
    out: list[Case] = []
    for batch in sizes:
        g = torch.Generator().manual_seed(0)
        outputs, targets = detr_batch(batch, g, dtype, device)
        counts = [len(t["labels"]) for t in targets]
        name = f"DETR batch {batch}x{QUERIES}, 1-30 targets"
        if "linear_sum_assignment" in ops:
            cost = torch.rand(batch, QUERIES, 30, generator=g, dtype=torch.float64)
            blocks = [cost[b, :, : counts[b]].contiguous().numpy() for b in range(batch)]
            dev_cost = cost.to(device)
            col_counts = torch.tensor(counts).to(device)

            def ours(c=dev_cost, n=col_counts):
                return visionops.batched_linear_sum_assignment(c, None, n)

            base = _scipy_loop(blocks)
            if base is not None:
                out.append(Case("linear_sum_assignment", f"{name}, float64", ours, base, "scipy loop"))
        if "hungarian_matcher" in ops:
            matcher = visionops.HungarianMatcher(cost_class=1.0, cost_bbox=5.0, cost_giou=2.0)
            base = _detr_reference(outputs, targets)
            if base is not None:
                def ours_matcher(m=matcher, o=outputs, t=targets):
                    return m(o, t)

                out.append(Case("hungarian_matcher", f"{name}, {CLASSES} classes", ours_matcher, base, "DETR matcher"))
    return out
