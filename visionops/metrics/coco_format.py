"""COCO-format evaluation: a COCO dataset (dict or JSON file) and a result
list (list or JSON file) evaluated by the native COCOeval of mean_ap.py,
with pycocotools' conventions for what it reads:

- images and categories: the dataset's (``imgIds``/``catIds`` sorted); a
  result on an image the dataset lacks is an error, as in loadRes;
- bbox: boxes (x, y, w, h) as given; a result's area is w * h; a ground
  truth's is its ``area`` entry (w * h when absent);
- segm: polygons (several per object merged, rasterized exactly as
  pycocotools' rleFrPoly), uncompressed RLE (run lengths) and compressed RLE
  strings, each of its image's ``height`` x ``width``; a result's area is
  its pixel count, a ground truth's its ``area`` entry (pixel count when
  absent).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import Tensor

from visionops.metrics.mean_ap import MeanAveragePrecision, evaluate_arrays

_OP = "visionops.evaluate_coco"


def _load(source: str | os.PathLike | dict | list) -> Any:
    if isinstance(source, (str, os.PathLike)):
        with open(source) as f:
            return json.load(f)
    return source


def _kind(segm: Any) -> str:
    if isinstance(segm, list):
        return "polygons"
    if isinstance(segm, dict) and "counts" in segm:
        return "runs" if isinstance(segm["counts"], list) else "string"
    raise ValueError(f"{_OP}: a segmentation must be a list of polygons or an RLE dict with 'counts', got "
                     f"{type(segm).__name__}")


def _decode_group(kind: str, segms: list[Any], hs: list[int], ws: list[int]) -> Tensor:
    """The packed masks of objects of one kind, concatenated."""
    for s, h, w in zip(segms, hs, ws):
        if isinstance(s, dict) and "size" in s and list(s["size"]) != [h, w]:
            raise ValueError(f"{_OP}: an RLE of size {list(s['size'])} on an image of {h} x {w}")
    if kind == "string":
        counts = [s["counts"].decode("ascii") if isinstance(s["counts"], bytes) else s["counts"] for s in segms]
        return torch.ops.visionops.coco_rle_decode(counts, hs, ws)
    if kind == "runs":
        runs = [r for s in segms for r in s["counts"]]
        return torch.ops.visionops.coco_runs_decode(torch.tensor(runs, dtype=torch.long),
                                                    [len(s["counts"]) for s in segms], hs, ws)
    xy = [v for s in segms for poly in s for v in poly[: len(poly) // 2 * 2]]
    return torch.ops.visionops.coco_polygons_decode(
        torch.tensor(xy, dtype=torch.float64), [len(poly) // 2 for s in segms for poly in s], [len(s) for s in segms],
        hs, ws)


def _decode(objs: list[dict], hs: list[int], ws: list[int]) -> Tensor:
    """The packed masks of every object, in order (one native call a kind)."""
    if not objs:
        return torch.zeros(0, dtype=torch.long)
    kinds = [_kind(o["segmentation"]) for o in objs]
    if len(set(kinds)) == 1:
        return _decode_group(kinds[0], [o["segmentation"] for o in objs], hs, ws)
    pieces: list[Tensor | None] = [None] * len(objs)
    for kind in set(kinds):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        words = _decode_group(kind, [objs[i]["segmentation"] for i in idx], [hs[i] for i in idx], [ws[i] for i in idx])
        sizes = [(hs[i] * ws[i] + 63) // 64 for i in idx]
        for i, part in zip(idx, torch.split(words, sizes)):
            pieces[i] = part
    return torch.cat(pieces)


def evaluate_coco(
    ground_truth: str | os.PathLike | dict,
    detections: str | os.PathLike | list[dict],
    iou_type: str = "bbox",
    **kwargs: Any,
) -> dict[str, Tensor]:
    """Evaluates COCO-format results against a COCO-format dataset.

    Args:
        ground_truth: a COCO dataset (``images``, ``annotations``,
            ``categories``) as a dict or the path of its JSON file.
        detections: a list of results (``image_id``, ``category_id``,
            ``score``, and ``bbox`` [x, y, w, h] or ``segmentation``) or the
            path of their JSON file.
        iou_type: ``"bbox"`` or ``"segm"``.
        kwargs: the thresholds and options of ``MeanAveragePrecision``.

    Returns:
        The summary of ``MeanAveragePrecision.compute`` over the dataset's
        images and categories (pycocotools' imgIds and catIds).
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"{_OP}: iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    gt = _load(ground_truth)
    dets = _load(detections)
    images = sorted(gt["images"], key=lambda img: img["id"])
    image_ids = [img["id"] for img in images]
    index = {img: i for i, img in enumerate(image_ids)}
    cat_ids = sorted({c["id"] for c in gt["categories"]})
    n = len(image_ids)
    gt_by_image: list[list[dict]] = [[] for _ in range(n)]
    for a in gt["annotations"]:
        gt_by_image[index[a["image_id"]]].append(a)
    det_by_image: list[list[dict]] = [[] for _ in range(n)]
    for d in dets:
        if d["image_id"] not in index:
            raise ValueError(f"{_OP}: detection of image {d['image_id']}, which is not in the ground truth's images")
        det_by_image[index[d["image_id"]]].append(d)
    gt_flat = [a for group in gt_by_image for a in group]
    det_flat = [d for group in det_by_image for d in group]
    metric = MeanAveragePrecision(iou_type=iou_type, box_format="xywh", **kwargs)
    nan_det = torch.full((len(det_flat),), float("nan"), dtype=torch.float64)  # w * h or pixel count, natively
    masks: tuple[Tensor | None, Tensor | None, Tensor | None] = (None, None, None)
    if iou_type == "bbox":
        gt_boxes = torch.tensor([a["bbox"] for a in gt_flat], dtype=torch.float64).reshape(-1, 4)
        det_boxes = torch.tensor([d["bbox"] for d in det_flat], dtype=torch.float64).reshape(-1, 4)
    else:
        try:
            hw = [(int(img["height"]), int(img["width"])) for img in images]
        except KeyError as e:
            raise ValueError(f"{_OP}: segm needs every image's 'height' and 'width', missing {e}") from None
        gt_hw = [hw[i] for i, group in enumerate(gt_by_image) for _ in group]
        det_hw = [hw[i] for i, group in enumerate(det_by_image) for _ in group]
        masks = (_decode(det_flat, [h for h, _ in det_hw], [w for _, w in det_hw]),
                 _decode(gt_flat, [h for h, _ in gt_hw], [w for _, w in gt_hw]),
                 torch.tensor([(h * w + 63) // 64 for h, w in hw], dtype=torch.long))
        gt_boxes = torch.zeros(len(gt_flat), 4, dtype=torch.float64)
        det_boxes = torch.zeros(len(det_flat), 4, dtype=torch.float64)
    classes = torch.tensor(cat_ids, dtype=torch.long)
    precision, recall, scores = evaluate_arrays(
        det_boxes, torch.tensor([d["score"] for d in det_flat], dtype=torch.float64),
        torch.tensor([d["category_id"] for d in det_flat], dtype=torch.long), nan_det,
        torch.tensor([len(g) for g in det_by_image], dtype=torch.long), gt_boxes,
        torch.tensor([a["category_id"] for a in gt_flat], dtype=torch.long),
        torch.tensor([int(bool(a.get("iscrowd", 0))) for a in gt_flat], dtype=torch.uint8),
        torch.tensor([a.get("area", float("nan")) for a in gt_flat], dtype=torch.float64),
        torch.tensor([len(g) for g in gt_by_image], dtype=torch.long), classes, metric.iou_thresholds,
        metric.rec_thresholds, list(metric.area_ranges.values()), metric.max_detection_thresholds, *masks,
    )
    return metric._summarize(precision, recall, scores, classes)
