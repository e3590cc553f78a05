"""COCO-style mean average precision with pycocotools' numbers, natively.

``MeanAveragePrecision`` keeps the tensors it is given and, on ``compute``,
runs one native call (``torch.ops.visionops.coco_evaluate``) that does what
pycocotools' ``COCOeval.evaluate()`` and ``accumulate()`` do: per image and
class, the overlaps and the greedy matching at every IoU threshold and area
range, then per class the precision/recall curves sampled at the recall
thresholds (101-point interpolation). The summary is computed from those
arrays as ``COCOeval.summarize()`` does, so every number equals
pycocotools' (tests/metrics/ compares them to 1e-12).

Conventions, as pycocotools:
- boxes are converted to (x, y, w, h) in float64; a detection's area is
  ``w * h`` (its pixel count for masks); a ground truth's area, used for the
  area ranges only, is its ``area`` entry, else the same;
- ``iscrowd`` ground truths are ignored: a detection matched to one counts
  neither as a true nor as a false positive, and crowd IoU divides by the
  detection's area;
- a detection whose score is NaN sorts last; a NaN box overlaps everything
  with IoU NaN, which pycocotools' comparisons treat as a match;
- a class that has no ground truth in an area range has precision and
  recall -1 there, and is left out of the means (a class absent from both
  sides is not listed at all).

Unlike pycocotools' summary, which reads precision at 100 detections only,
AP here is read at the largest of ``max_detection_thresholds``, so custom
limits work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

_DEFAULT_AREAS = {"all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2),
                  "large": (96.0**2, 1e5**2)}
_OP = "visionops.MeanAveragePrecision"


def _linspace(start: float, stop: float, num: int) -> list[float]:
    """numpy.linspace's values exactly (i * step + start, last = stop): the
    thresholds are compared with '<', so they must be pycocotools' bits."""
    return np.linspace(start, stop, num, endpoint=True).tolist()


def coco_iou_thresholds() -> list[float]:
    """0.5:0.05:0.95, as pycocotools builds them."""
    return _linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)


def coco_recall_thresholds() -> list[float]:
    """0:0.01:1, as pycocotools builds them."""
    return _linspace(0.0, 1.0, int(np.round((1.00 - 0.0) / 0.01)) + 1)


def _xyxy_to_xywh64(boxes: Tensor, box_format: str) -> Tensor:
    b = boxes.to(torch.float64)
    if box_format == "xywh":
        return b
    if box_format == "xyxy":
        return torch.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], dim=1)
    # cxcywh
    return torch.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 2], b[:, 3]], dim=1)


class MeanAveragePrecision:
    """COCO mAP and mAR over a stream of batches, identical to pycocotools.

    Args:
        iou_type: ``"bbox"`` or ``"segm"`` (binary masks).
        box_format: format of the boxes given to ``update``: ``"xyxy"``,
            ``"xywh"`` or ``"cxcywh"``.
        iou_thresholds: default 0.5:0.05:0.95.
        rec_thresholds: default 0:0.01:1 (101 points).
        max_detection_thresholds: detections per image and class, default
            [1, 10, 100]; AP uses the largest.
        area_ranges: name -> (min area, max area); default COCO's all,
            small, medium and large. "all" is the range AP and AR use.
        class_metrics: also report AP and AR per class.
        extended_summary: also return the precision [T, R, K, A, M], recall
            [T, K, A, M] and scores arrays (COCOeval.eval's layout).
        sync_on_compute: under torch.distributed, gather every rank's state
            before computing, so that every rank gets the result of the
            whole set (images in rank order).
    """

    def __init__(
        self,
        iou_type: str = "bbox",
        box_format: str = "xyxy",
        iou_thresholds: Sequence[float] | None = None,
        rec_thresholds: Sequence[float] | None = None,
        max_detection_thresholds: Sequence[int] | None = None,
        area_ranges: dict[str, tuple[float, float]] | None = None,
        class_metrics: bool = False,
        extended_summary: bool = False,
        sync_on_compute: bool = True,
    ) -> None:
        if iou_type not in ("bbox", "segm"):
            raise ValueError(f"{_OP}: iou_type must be 'bbox' or 'segm', got {iou_type!r}")
        if box_format not in ("xyxy", "xywh", "cxcywh"):
            raise ValueError(f"{_OP}: box_format must be 'xyxy', 'xywh' or 'cxcywh', got {box_format!r}")
        self.iou_type = iou_type
        self.box_format = box_format
        self.iou_thresholds = list(iou_thresholds) if iou_thresholds is not None else coco_iou_thresholds()
        self.rec_thresholds = list(rec_thresholds) if rec_thresholds is not None else coco_recall_thresholds()
        self.max_detection_thresholds = (
            [int(m) for m in max_detection_thresholds] if max_detection_thresholds is not None else [1, 10, 100]
        )
        if not self.max_detection_thresholds or min(self.max_detection_thresholds) < 1:
            raise ValueError(f"{_OP}: max_detection_thresholds must be positive integers, got "
                             f"{self.max_detection_thresholds}")
        self.area_ranges = dict(area_ranges) if area_ranges is not None else dict(_DEFAULT_AREAS)
        if "all" not in self.area_ranges:
            raise ValueError(f"{_OP}: area_ranges must include 'all', got {list(self.area_ranges)}")
        self.class_metrics = class_metrics
        self.extended_summary = extended_summary
        self.sync_on_compute = sync_on_compute
        self.reset()

    def reset(self) -> None:
        """Forget every image seen so far."""
        self._det: dict[str, list[Tensor]] = {"boxes": [], "scores": [], "labels": [], "masks": []}
        self._gt: dict[str, list[Tensor]] = {"boxes": [], "labels": [], "iscrowd": [], "area": [], "masks": []}
        self._mask_words: list[int] = []

    # ------------------------------------------------------------------ update

    def _check(self, d: dict[str, Tensor], keys: tuple[str, ...], what: str, i: int) -> int:
        for key in keys:
            if key not in d:
                raise ValueError(f"{_OP}.update: {what}[{i}] must have the key '{key}'")
        n = d["labels"].shape[0] if d["labels"].dim() == 1 else -1
        if n < 0:
            raise ValueError(f"{_OP}.update: {what}[{i}]['labels'] must have shape [N], got {list(d['labels'].shape)}")
        if self.iou_type == "bbox":
            b = d["boxes"]
            if b.dim() != 2 or b.shape[-1] != 4 or b.shape[0] != n:
                raise ValueError(f"{_OP}.update: {what}[{i}]['boxes'] must have shape [{n}, 4], got {list(b.shape)}")
        else:
            m = d["masks"]
            if m.dim() != 3 or m.shape[0] != n:
                raise ValueError(f"{_OP}.update: {what}[{i}]['masks'] must have shape [{n}, H, W], got "
                                 f"{list(m.shape)}")
        for key in ("scores", "iscrowd", "area"):
            if key in d and key in keys + ("iscrowd", "area") and d[key].shape != (n,):
                raise ValueError(f"{_OP}.update: {what}[{i}]['{key}'] must have shape [{n}], got "
                                 f"{list(d[key].shape)}")
        return n

    def update(self, preds: Sequence[dict[str, Tensor]], target: Sequence[dict[str, Tensor]]) -> None:
        """Adds a batch of images.

        Args:
            preds: one dict per image: ``boxes`` [N, 4] (or ``masks`` [N, H,
                W] for segm), ``scores`` [N], ``labels`` [N] (int).
            target: one dict per image: ``boxes`` [M, 4] (or ``masks``),
                ``labels`` [M]; optional ``iscrowd`` [M] and ``area`` [M].
        """
        if len(preds) != len(target):
            raise ValueError(f"{_OP}.update: preds and target must have one dict per image, got {len(preds)} and "
                             f"{len(target)}")
        geo = "boxes" if self.iou_type == "bbox" else "masks"
        for i, (p, t) in enumerate(zip(preds, target)):
            self._check(p, (geo, "scores", "labels"), "preds", i)
            n = self._check(t, (geo, "labels"), "target", i)
            if self.iou_type == "segm" and p["masks"].shape[1:] != t["masks"].shape[1:]:
                raise ValueError(f"{_OP}.update: preds[{i}]['masks'] and target[{i}]['masks'] must have the same "
                                 f"H, W, got {list(p['masks'].shape[1:])} and {list(t['masks'].shape[1:])}")
            self._det["scores"].append(p["scores"].detach())
            self._det["labels"].append(p["labels"])
            self._gt["labels"].append(t["labels"])
            self._gt["iscrowd"].append(t["iscrowd"].to(torch.uint8) if "iscrowd" in t else
                                       torch.zeros(n, dtype=torch.uint8))
            # NaN: the native default (the box's w * h, or the mask's pixel count).
            self._gt["area"].append(t["area"].detach().to(torch.float64) if "area" in t else
                                    torch.full((n,), float("nan"), dtype=torch.float64))
            if self.iou_type == "bbox":
                self._det["boxes"].append(p["boxes"].detach())
                self._gt["boxes"].append(t["boxes"].detach())
            else:
                # Packed at once: 1 bit a pixel instead of a byte or more.
                self._det["masks"].append(torch.ops.visionops.pack_masks(p["masks"].detach().cpu()).flatten())
                self._gt["masks"].append(torch.ops.visionops.pack_masks(t["masks"].detach().cpu()).flatten())
                h, w = t["masks"].shape[1:]
                self._mask_words.append((h * w + 63) // 64)

    # ------------------------------------------------------------------ compute

    def _state(self) -> dict[str, Any]:
        """The state as a few flat CPU tensors."""

        def cat(ts: list[Tensor], dtype: torch.dtype, shape: tuple[int, ...] = (0,)) -> Tensor:
            if not ts:
                return torch.zeros(shape, dtype=dtype)
            # One concatenation (on the tensors' device), then one copy. update
            # checked the shapes ([N] or [N, 4]; a [0] tensor joins either).
            return torch.cat(ts).to("cpu", dtype)

        state = {
            "det_counts": torch.tensor([t.shape[0] for t in self._det["labels"]], dtype=torch.long),
            "gt_counts": torch.tensor([t.shape[0] for t in self._gt["labels"]], dtype=torch.long),
            "det_scores": cat(self._det["scores"], torch.float64),
            "det_labels": cat(self._det["labels"], torch.long),
            "gt_labels": cat(self._gt["labels"], torch.long),
            "gt_crowd": cat(self._gt["iscrowd"], torch.uint8),
            "gt_area": cat(self._gt["area"], torch.float64),
        }
        if self.iou_type == "bbox":
            state["det_boxes"] = cat(self._det["boxes"], torch.float64, (0, 4))
            state["gt_boxes"] = cat(self._gt["boxes"], torch.float64, (0, 4))
        else:
            state["det_masks"] = cat(self._det["masks"], torch.long)
            state["gt_masks"] = cat(self._gt["masks"], torch.long)
            state["mask_words"] = torch.tensor(self._mask_words, dtype=torch.long)
        return state

    def _gathered_state(self) -> dict[str, Any]:
        state = self._state()
        dist = torch.distributed
        if not (self.sync_on_compute and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return state
        parts: list[dict[str, Any] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, state)
        return {key: torch.cat([p[key] for p in parts]) for key in state}

    def compute(self) -> dict[str, Tensor]:
        """The COCO summary: ``map``, ``map_50``, ``map_75``, ``map_<area>``,
        ``mar_<m>`` for each detection limit, ``mar_<area>``, ``classes``, and
        with ``class_metrics`` ``map_per_class`` and ``mar_<m>_per_class``;
        float64 tensors (-1 where undefined, as pycocotools)."""
        s = self._gathered_state()
        nan_det = torch.full_like(s["det_scores"], float("nan"))  # the native default: w * h or pixel count
        if self.iou_type == "bbox":
            det_boxes = _xyxy_to_xywh64(s["det_boxes"], self.box_format)
            gt_boxes = _xyxy_to_xywh64(s["gt_boxes"], self.box_format)
            masks = (None, None, None)
        else:
            det_boxes = torch.zeros(s["det_scores"].shape[0], 4, dtype=torch.float64)
            gt_boxes = torch.zeros(s["gt_labels"].shape[0], 4, dtype=torch.float64)
            masks = (s["det_masks"], s["gt_masks"], s["mask_words"])
        classes = torch.unique(torch.cat([s["det_labels"], s["gt_labels"]]))
        return self._summarize(*evaluate_arrays(
            det_boxes, s["det_scores"], s["det_labels"], nan_det, s["det_counts"], gt_boxes, s["gt_labels"],
            s["gt_crowd"], s["gt_area"], s["gt_counts"], classes, self.iou_thresholds, self.rec_thresholds,
            list(self.area_ranges.values()), self.max_detection_thresholds, *masks,
        ), classes)

    def _summarize(self, precision: Tensor, recall: Tensor, scores: Tensor, classes: Tensor) -> dict[str, Tensor]:
        p, r = precision.numpy(), recall.numpy()
        areas = list(self.area_ranges)
        a_all = areas.index("all")
        m_last = int(np.argmax(self.max_detection_thresholds))
        thresholds = np.array(self.iou_thresholds)

        def ap(area: int, t: float | None = None) -> float:
            s = p[:, :, :, area, m_last]
            if t is not None:
                s = s[np.where(t == thresholds)[0]]
            s = s[s > -1]
            return -1.0 if len(s) == 0 else float(np.mean(s))

        def ar(area: int, m: int) -> float:
            s = r[:, :, area, m]
            s = s[s > -1]
            return -1.0 if len(s) == 0 else float(np.mean(s))

        out = {"map": ap(a_all), "map_50": ap(a_all, 0.5), "map_75": ap(a_all, 0.75)}
        for a, name in enumerate(areas):
            if name != "all":
                out[f"map_{name}"] = ap(a)
        for m, limit in enumerate(self.max_detection_thresholds):
            out[f"mar_{limit}"] = ar(a_all, m)
        for a, name in enumerate(areas):
            if name != "all":
                out[f"mar_{name}"] = ar(a, m_last)
        result = {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}
        result["classes"] = classes
        if self.class_metrics:
            per_ap, per_ar = [], []
            for k in range(len(classes)):
                s = p[:, :, k, a_all, m_last]
                s = s[s > -1]
                per_ap.append(-1.0 if len(s) == 0 else float(np.mean(s)))
                s = r[:, k, a_all, m_last]
                s = s[s > -1]
                per_ar.append(-1.0 if len(s) == 0 else float(np.mean(s)))
            result["map_per_class"] = torch.tensor(per_ap, dtype=torch.float64)
            result[f"mar_{self.max_detection_thresholds[m_last]}_per_class"] = torch.tensor(per_ar, dtype=torch.float64)
        if self.extended_summary:
            result["precision"], result["recall"], result["scores"] = precision, recall, scores
        return result


def evaluate_arrays(det_boxes, det_scores, det_labels, det_areas, det_counts, gt_boxes, gt_labels, gt_crowd,
                    gt_areas, gt_counts, classes, iou_thresholds, rec_thresholds, area_ranges, max_dets,
                    det_masks=None, gt_masks=None, mask_words=None) -> tuple[Tensor, Tensor, Tensor]:
    """The native evaluation: COCOeval.eval's precision, recall and scores."""
    return torch.ops.visionops.coco_evaluate(
        det_boxes, det_scores, det_labels, det_areas, det_counts, gt_boxes, gt_labels, gt_crowd, gt_areas,
        gt_counts, classes, torch.tensor(iou_thresholds, dtype=torch.float64),
        torch.tensor(rec_thresholds, dtype=torch.float64), torch.tensor(area_ranges, dtype=torch.float64),
        list(max_dets), det_masks, gt_masks, mask_words,
    )


def precision_recall(scores: Tensor, is_true_positive: Tensor, num_ground_truth: int) -> tuple[Tensor, Tensor]:
    """The raw precision/recall points of one class: detections by decreasing
    score (ties in input order), precision TP / (TP + FP) and recall
    TP / num_ground_truth after each, float64. COCO's AP is the area under
    this curve made monotone and read at 101 recall points.

    Args:
        scores (Tensor[N]): detection scores.
        is_true_positive (Tensor[N], bool): whether each detection matched a
            ground truth.
        num_ground_truth (int): the ground truths of the class.

    Returns:
        (precision, recall), Tensor[N] each.
    """
    if scores.shape != is_true_positive.shape or scores.dim() != 1:
        raise ValueError(f"visionops.metrics.precision_recall: scores and is_true_positive must have the same shape "
                         f"[N], got {list(scores.shape)} and {list(is_true_positive.shape)}")
    if num_ground_truth <= 0:
        raise ValueError(f"visionops.metrics.precision_recall: num_ground_truth must be positive, got "
                         f"{num_ground_truth}")
    order = torch.sort(scores, descending=True, stable=True).indices
    tp = torch.cumsum(is_true_positive[order].to(torch.float64), 0)
    seen = torch.arange(1, scores.shape[0] + 1, dtype=torch.float64)
    return tp / seen, tp / num_ground_truth
