"""visionops.models' Faster R-CNN and Mask R-CNN against torchvision's, with
the same (random) weights: part of ``python -m visionops.bench models``.

Per model and thread count, inference on a batch of images (the models
resize them to --size), medians:

- total: the whole forward, images to detections (and pasted masks);
- backbone+FPN: the same torchvision modules on both sides;
- after backbone: RPN, RoI heads and postprocessing, from the same features;
- detection work: "after backbone" less the time inside convolutions,
  linear layers and their activations in the same run (timed around each
  nn.Conv2d, nn.ConvTranspose2d, nn.Linear and nn.ReLU call), which are the
  same code on both sides: anchors, box coding, top-k, NMS, RoI Align,
  post-processing, mask pasting and the Python glue between them;

and a training step (forward and backward of the losses, same seed).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

RCNN = ["faster", "mask"]


@dataclass
class RcnnRow:
    model: str
    threads: int
    part: str
    torchvision_ms: float
    visionops_ms: float
    speedup: float


def build_pair(name: str, side: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    from torchvision.models import detection

    from visionops import models

    torch.manual_seed(0)
    if name == "faster":
        theirs = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=side, max_size=side)
        ours = models.fasterrcnn_resnet50_fpn(min_size=side, max_size=side)
    else:
        theirs = detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=side, max_size=side)
        ours = models.maskrcnn_resnet50_fpn(min_size=side, max_size=side)
    ours.load_state_dict(theirs.state_dict())
    return ours.eval(), theirs.eval()


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _features(model) -> Callable[[torch.Tensor], object]:
    """The model's backbone as its forward runs it: ours through
    ``features`` (channels-last on CPUs by default), torchvision's as is."""
    return getattr(model, "features", model.backbone)


def _heads(model, images: list[torch.Tensor]) -> Callable[[], object]:
    """Everything after the backbone, from fixed features."""
    original = [tuple(im.shape[-2:]) for im in images]
    with torch.no_grad():
        image_list, _ = model.transform(images)
        features = _features(model)(image_list.tensors)

    def run():
        with torch.no_grad():
            proposals, _ = model.rpn(image_list, features)
            detections, _ = model.roi_heads(features, proposals, image_list.image_sizes)
            return model.transform.postprocess(detections, image_list.image_sizes, original)

    return run


def _detection_ms(model: torch.nn.Module, fn: Callable[[], object], repeats: int) -> float:
    """Median over runs of fn of its wall time less the time spent, in that
    same run, in the model's convolutions, linear layers and their
    activations (timed around each nn.Conv2d, nn.ConvTranspose2d, nn.Linear
    and nn.ReLU call)."""
    spent = [0.0]
    starts: list[float] = []

    def before(module, args):
        starts.append(time.perf_counter())

    def after(module, args, output):
        spent[0] += time.perf_counter() - starts.pop()

    dense_types = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear, torch.nn.ReLU)
    handles = []
    for m in model.modules():
        if isinstance(m, dense_types):
            handles += [m.register_forward_pre_hook(before), m.register_forward_hook(after)]
    rest = []
    try:
        fn()
        for _ in range(repeats):
            spent[0] = 0.0
            start = time.perf_counter()
            fn()
            rest.append((time.perf_counter() - start - spent[0]) * 1e3)
    finally:
        for h in handles:
            h.remove()
    return statistics.median(rest)


def _train_step(model, images, targets) -> Callable[[], object]:
    def run():
        model.train()
        torch.manual_seed(5)
        losses = model(images, targets)
        sum(losses.values()).backward()
        model.zero_grad(set_to_none=True)
        model.eval()

    return run


def _targets(images: list[torch.Tensor], masks: bool, g: torch.Generator) -> list[dict]:
    out = []
    for im in images:
        h, w = im.shape[-2:]
        xy = torch.rand(6, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = 30 + torch.rand(6, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3])
        boxes = torch.cat([xy, xy + wh], 1)
        t = {"boxes": boxes, "labels": torch.randint(1, 91, (6,), generator=g)}
        if masks:
            m = torch.zeros(6, h, w, dtype=torch.uint8)
            for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
                m[i, y1:y2, x1:x2] = 1
            t["masks"] = m
        out.append(t)
    return out


def run(names: list[str], threads: list[int], side: int, batch: int, repeats: int, train_step: bool) -> list[RcnnRow]:
    from visionops.bench.timing import intra_op_threads

    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, side, side, generator=g) for _ in range(batch)]
    rows: list[RcnnRow] = []
    print(f"\nvisionops.models against torchvision, the same random weights: batch {batch} of {side}x{side}; "
          f"medians of {repeats}")
    print(f"{'model':<14}{'threads':>8}  {'part':<18}{'torchvision ms':>16}{'visionops ms':>14}{'speedup':>9}")
    for name in names:
        ours, theirs = build_pair(name, side)
        targets = _targets(images, name == "mask", g)
        for t in threads:
            with intra_op_threads(t):
                parts = {}
                for label, model in (("tv", theirs), ("vo", ours)):
                    with torch.no_grad():
                        parts[label, "total"] = _median_ms(lambda m=model: m(images), repeats)
                        image_list, _ = model.transform(images)
                        features = _features(model)
                        parts[label, "backbone+FPN"] = _median_ms(lambda f=features, x=image_list.tensors: f(x),
                                                                  repeats)
                    heads = _heads(model, images)
                    parts[label, "after backbone"] = _median_ms(heads, repeats)
                    parts[label, "detection work"] = _detection_ms(model, heads, max(repeats, 3))
                    if train_step:
                        parts[label, "training step"] = _median_ms(_train_step(model, images, targets),
                                                                   max(1, repeats - 1))
                for part in ("total", "backbone+FPN", "after backbone", "detection work", "training step"):
                    if ("tv", part) not in parts:
                        continue
                    row = RcnnRow(name, t, part, parts["tv", part], parts["vo", part],
                                  parts["tv", part] / parts["vo", part])
                    rows.append(row)
                    print(f"{name + ' r-cnn':<14}{t:>8}  {part:<18}{row.torchvision_ms:>16.1f}"
                          f"{row.visionops_ms:>14.1f}{row.speedup:>8.2f}x", flush=True)
    return rows
