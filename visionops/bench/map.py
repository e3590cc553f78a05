"""Benchmark cases of COCO mAP, end to end from per-image tensors, on a
synthetic COCO-like set (COCO's shape: 80 classes, about 7 objects and
100 detections per image, some crowd regions), against pycocotools'
COCOeval (results loaded with loadRes, then evaluate, accumulate and
summarize), faster-coco-eval's COCOeval_faster (the same steps) and
torchmetrics' MeanAveragePrecision (faster-coco-eval backend), each where
installed. --sizes is the number of images (default 1000; COCO val2017's
size, --sizes 5000, is the README's figure)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import torch

from visionops.bench.boxes import Case
from visionops.metrics import MeanAveragePrecision

ALL = ["mean_average_precision"]
DEFAULT_SIZES = [1000]


def synthetic_coco(n_images: int, n_classes: int = 80, generator: torch.Generator | None = None):
    """Per-image predictions and targets, xyxy boxes in a 640 x 480 image:
    about 7 objects per image, 100 detections (jittered copies of objects and
    random boxes, scores in [0, 1) rounded to 1/1000 so that some tie), 5% of
    objects crowd."""
    g = generator or torch.Generator().manual_seed(0)
    preds, targets = [], []
    for _ in range(n_images):
        m = int(torch.randint(1, 14, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * torch.tensor([560.0, 400.0])
        wh = 4 + torch.rand(m, 2, generator=g) ** 2 * 250
        gt = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(0, n_classes, (m,), generator=g)
        crowd = (torch.rand(m, generator=g) < 0.05).to(torch.uint8)
        k = 100
        src = torch.randint(0, m, (k,), generator=g)
        jitter = torch.randn(k, 4, generator=g) * (wh[src].repeat(1, 2) * 0.15)
        boxes = gt[src] + jitter
        random = torch.rand(k, generator=g) < 0.5
        rxy = torch.rand(k, 2, generator=g) * 560
        rand_boxes = torch.cat([rxy, rxy + 4 + torch.rand(k, 2, generator=g) * 200], 1)
        boxes = torch.where(random[:, None], rand_boxes, boxes)
        boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        det_labels = torch.where(random, torch.randint(0, n_classes, (k,), generator=g), labels[src])
        scores = torch.round(torch.rand(k, generator=g) * 1000) / 1000
        preds.append({"boxes": boxes, "scores": scores, "labels": det_labels})
        targets.append({"boxes": gt, "labels": labels, "iscrowd": crowd})
    return preds, targets


def to_coco(preds, targets, n_classes: int = 80):
    """The same set in COCO's format: the dataset dict and the result list,
    boxes (x, y, w, h) converted in float64 as MeanAveragePrecision does."""
    images, anns, dets = [], [], []
    for i, (p, t) in enumerate(zip(preds, targets)):
        images.append({"id": i + 1, "width": 640, "height": 480})
        b = t["boxes"].double()
        xywh = torch.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1).tolist()
        for box, label, crowd in zip(xywh, t["labels"].tolist(), t["iscrowd"].tolist()):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": label, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": crowd})
        b = p["boxes"].double()
        xywh = torch.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1).tolist()
        for box, label, score in zip(xywh, p["labels"].tolist(), p["scores"].double().tolist()):
            dets.append({"image_id": i + 1, "category_id": label, "bbox": box, "score": score})
    dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in range(n_classes)]}
    return dataset, dets


def _pycocotools(dataset, dets) -> Callable[[], object] | None:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()

    def run():
        with contextlib.redirect_stdout(io.StringIO()):
            e = COCOeval(gt, gt.loadRes(dets), "bbox")
            e.evaluate()
            e.accumulate()
            e.summarize()
        return e.stats

    return run


def _faster_coco_eval(dataset, dets) -> Callable[[], object] | None:
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(dataset)

    def run():
        with contextlib.redirect_stdout(io.StringIO()):
            e = COCOeval_faster(gt, gt.loadRes(dets), "bbox", print_function=lambda *a, **k: None)
            e.evaluate()
            e.accumulate()
            e.summarize()
        return e.stats

    return run


def _torchmetrics(preds, targets) -> Callable[[], object] | None:
    try:
        from torchmetrics.detection import MeanAveragePrecision as TMMeanAveragePrecision

        TMMeanAveragePrecision(backend="faster_coco_eval")
    except (ImportError, ModuleNotFoundError, ValueError, TypeError):
        return None

    def run():
        m = TMMeanAveragePrecision(backend="faster_coco_eval")
        m.update(preds, targets)
        return m.compute()

    return run


def cases(ops: list[str], sizes: list[int], elements: int, dtype: torch.dtype, device: str) -> list[Case]:
    unknown = [op for op in ops if op not in ALL]
    if unknown:
        raise ValueError(f"unknown map op {unknown[0]!r}; choose from {', '.join(ALL)}")
    out: list[Case] = []
    for n in sizes:
        preds, targets = synthetic_coco(n)
        preds = [{k: v.to(dtype=dtype if v.is_floating_point() else v.dtype, device=device) for k, v in p.items()}
                 for p in preds]
        targets = [{k: v.to(dtype=dtype if v.is_floating_point() else v.dtype, device=device) for k, v in t.items()}
                   for t in targets]
        dataset, dets = to_coco(preds, targets)

        def ours(preds=preds, targets=targets):
            m = MeanAveragePrecision()
            m.update(preds, targets)
            return m.compute()

        name = f"{n} images, 80 classes, bbox"
        for base_name, fn, runs in (("pycocotools", _pycocotools(dataset, dets), 1),
                                    ("faster-coco-eval", _faster_coco_eval(dataset, dets), 3),
                                    ("torchmetrics", _torchmetrics(preds, targets), 3)):
            if fn is not None:
                out.append(Case("mean_average_precision", name, ours, fn, base_name, baseline_runs=runs))
    return out
