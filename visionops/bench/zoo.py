"""YOLO, DETR and U-Net on visionops against the same pipeline with plain
PyTorch and torchvision ops swapped in: part of ``python -m visionops.bench
models``.

Each model is its small configuration at 256 x 256 with random weights,
batch 8. For inference and for a training step (forward, loss, backward),
the rows give images/s with our ops, images/s with the swapped ones, the
speedup, and each side's share of the time spent in those ops. What is
swapped (the models call ``visionops.<op>`` at call time, so the swap is a
rebinding for the duration of the run):

- YOLO: ``yolo_decode`` (YOLOv5's decode in plain PyTorch, then top-k) and
  ``padded_nms`` (torchvision's ``batched_nms`` image by image, padded) in
  inference; ``yolo_boxes`` (plain PyTorch) and ``complete_box_iou_loss``
  (torchvision's) in training.
- DETR: the matcher (``detr_matching_cost`` as DETR's reference builds it,
  ``torch.cdist`` and torchvision's ``generalized_box_iou``, and
  ``batched_linear_sum_assignment`` as a scipy loop) and the losses
  (torchvision's ``generalized_box_iou_loss`` and ``box_convert``) in
  training; inference has no NMS and nothing to swap.
- U-Net: ``dice_loss`` (the plain PyTorch definition) in training;
  inference has nothing to swap.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

import visionops

ZOO = ["yolo", "detr", "unet"]


@dataclass
class ZooRow:
    model: str
    threads: int
    part: str
    plain_images_per_s: float
    visionops_images_per_s: float
    speedup: float
    plain_ops_share: float
    visionops_ops_share: float


# ------------------------------------------------------------------ the plain ops


def plain_yolo_boxes(head: Tensor, anchors, stride: int, *, version: str = "v5") -> Tensor:
    b, _, h, w = head.shape
    anc = torch.as_tensor(anchors, dtype=head.dtype, device=head.device)
    a = anc.shape[0]
    t = head.view(b, a, -1, h, w)[:, :, :4].permute(0, 1, 3, 4, 2).sigmoid()
    gy, gx = torch.meshgrid(torch.arange(h, device=head.device), torch.arange(w, device=head.device), indexing="ij")
    grid = torch.stack((gx, gy), -1).to(head.dtype)
    xy = (t[..., :2] * 2 - 0.5 + grid) * stride
    wh = (t[..., 2:4] * 2) ** 2 * anc.view(1, a, 1, 1, 2)
    return torch.cat([xy - wh / 2, xy + wh / 2], -1)


def plain_yolo_decode(heads, anchors, strides, *, version="v5", score_threshold=0.25, max_detections=300):
    from visionops.bench.yolo import plain_decode

    anc = torch.as_tensor(anchors, dtype=heads[0].dtype, device=heads[0].device)
    boxes, scores, labels = plain_decode(heads, anc, list(strides), score_threshold, max_detections)
    valid = torch.isfinite(scores)
    return (torch.where(valid[..., None], boxes, 0.0), torch.where(valid, scores, 0.0),
            torch.where(valid, labels, -1), valid.sum(1))


def plain_padded_nms(boxes, scores, iou_threshold, max_output, *, idxs=None, score_threshold=None):
    from torchvision.ops import batched_nms

    out = torch.full((boxes.shape[0], max_output), -1, dtype=torch.long, device=boxes.device)
    counts = torch.zeros(boxes.shape[0], dtype=torch.long, device=boxes.device)
    for i in range(boxes.shape[0]):
        cand = torch.where(scores[i] > score_threshold)[0] if score_threshold is not None else \
            torch.arange(scores.shape[1], device=boxes.device)
        cls = idxs[i, cand] if idxs is not None else torch.zeros_like(cand)
        keep = cand[batched_nms(boxes[i, cand], scores[i, cand], cls, iou_threshold)][:max_output]
        out[i, : keep.numel()] = keep
        counts[i] = keep.numel()
    return out, counts


def plain_detr_matching_cost(logits, pred_boxes, labels, boxes, counts, class_weight=1.0, bbox_weight=1.0,
                             giou_weight=1.0):
    """DETR's reference cost: the whole [B*Q, T] matrix, then each image's block."""
    from torchvision.ops import box_convert, generalized_box_iou

    b, q = logits.shape[:2]
    prob = logits.flatten(0, 1).softmax(-1)
    pred = pred_boxes.flatten(0, 1)
    cost = (bbox_weight * torch.cdist(pred, boxes, p=1) - class_weight * prob[:, labels]
            - giou_weight * generalized_box_iou(box_convert(pred, "cxcywh", "xyxy"), box_convert(boxes, "cxcywh", "xyxy")))
    cost = cost.view(b, q, -1)
    out = cost.new_zeros(b, q, max(counts) if counts else 0)
    start = 0
    for i, n in enumerate(counts):
        out[i, :, :n] = cost[i, :, start:start + n]
        start += n
    return out


def plain_batched_lsa(cost, row_counts=None, col_counts=None, *, maximize=False, validate=None):
    from scipy.optimize import linear_sum_assignment

    out = torch.full(cost.shape[:2], -1, dtype=torch.long)
    for i in range(cost.shape[0]):
        n = int(col_counts[i]) if col_counts is not None else cost.shape[2]
        rows, cols = linear_sum_assignment(cost[i, :, :n].detach().cpu().numpy(), maximize=maximize)
        out[i, torch.as_tensor(rows)] = torch.as_tensor(cols)
    return out.to(cost.device)


def _plain_dice(*args, **kwargs):
    from visionops.bench.dice import plain_dice_loss

    return plain_dice_loss(*args, **kwargs)


def _torchvision(name: str) -> Callable:
    import torchvision.ops

    return getattr(torchvision.ops, name)


SWAPS: dict[str, dict[str, dict[str, Callable[[], Callable]]]] = {
    "yolo": {
        "inference": {"yolo_decode": lambda: plain_yolo_decode, "padded_nms": lambda: plain_padded_nms},
        "training step": {"yolo_boxes": lambda: plain_yolo_boxes,
                          "complete_box_iou_loss": lambda: _torchvision("complete_box_iou_loss")},
    },
    "detr": {
        "training step": {"detr_matching_cost": lambda: plain_detr_matching_cost,
                          "batched_linear_sum_assignment": lambda: plain_batched_lsa,
                          "generalized_box_iou_loss": lambda: _torchvision("generalized_box_iou_loss"),
                          "box_convert": lambda: _torchvision("box_convert")},
    },
    "unet": {"training step": {"dice_loss": lambda: _plain_dice}},
}


@contextlib.contextmanager
def bound(names: list[str], replacements: dict[str, Callable] | None, clock: list[float]) -> Iterator[None]:
    """visionops.<name> rebound to its replacement (or kept) and timed into clock[0]."""
    saved = {n: getattr(visionops, n) for n in names}
    depth = [0]

    def timed(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    clock[0] += time.perf_counter() - start

        return run

    try:
        for n in names:
            setattr(visionops, n, timed(replacements[n] if replacements else saved[n]))
        yield
    finally:
        for n, fn in saved.items():
            setattr(visionops, n, fn)


# ------------------------------------------------------------------ the pipelines


def _batch(side: int, n: int):
    from visionops.data import SyntheticShapes

    ds = SyntheticShapes(n, side, seed=0, split="test")
    items = [ds[i] for i in range(n)]
    return torch.stack([im for im, _ in items]), [t for _, t in items]


def _pipelines(name: str, side: int, batch: int):
    """(inference fn, training-step fn) of the model on one batch."""
    from visionops import models
    from visionops.train import registry

    images, targets = _batch(side, batch)
    torch.manual_seed(0)
    model = {"yolo": lambda: models.yolo_small(6, side), "detr": lambda: models.detr_small(7),
             "unet": lambda: models.unet_small(7)}[name]()
    spec = registry.MODELS[name]
    image_list = list(images)

    @torch.no_grad()
    def infer():
        model.eval()
        return model.forward_padded(images) if name != "unet" else model(images)

    def step():
        model.train()
        losses = spec.losses(model, image_list, targets)
        sum(losses.values()).backward()
        model.zero_grad(set_to_none=True)

    return infer, step


def _measure(fn: Callable[[], object], names: list[str], replacements, repeats: int) -> tuple[float, float]:
    clock = [0.0]
    with bound(names, replacements, clock):
        fn()
        times, shares = [], []
        for _ in range(repeats):
            clock[0] = 0.0
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            shares.append(clock[0] / elapsed)
    return statistics.median(times), statistics.median(shares)


def run(names: list[str], threads: list[int], repeats: int, side: int = 256, batch: int = 8) -> list[ZooRow]:
    from visionops.bench.timing import intra_op_threads

    rows: list[ZooRow] = []
    print(f"\nYOLO, DETR and U-Net (small configurations, random weights, batch {batch} of {side}x{side}): our ops "
          f"against plain PyTorch / torchvision / scipy swapped in; medians of {repeats}")
    print(f"{'model':<8}{'threads':>8}  {'part':<15}{'plain img/s':>12}{'ours img/s':>12}{'speedup':>9}"
          f"{'ops share plain':>17}{'ops share ours':>16}")
    for name in names:
        infer, step = _pipelines(name, side, batch)
        for t in threads:
            with intra_op_threads(t):
                for part, fn in (("inference", infer), ("training step", step)):
                    swap = SWAPS[name].get(part, {})
                    replacements = {k: make() for k, make in swap.items()}
                    ours_s, ours_share = _measure(fn, list(swap), None, repeats)
                    plain_s, plain_share = _measure(fn, list(swap), replacements, repeats)
                    row = ZooRow(name, t, part, batch / plain_s, batch / ours_s, plain_s / ours_s, plain_share,
                                 ours_share)
                    rows.append(row)
                    print(f"{name:<8}{t:>8}  {part:<15}{row.plain_images_per_s:>12.1f}"
                          f"{row.visionops_images_per_s:>12.1f}{row.speedup:>8.2f}x{100 * plain_share:>16.1f}%"
                          f"{100 * ours_share:>15.1f}%", flush=True)
    return rows
