"""MeanAveragePrecision and evaluate_coco against pycocotools' COCOeval:
the full precision, recall and scores arrays and every summary number, on
random sets and on the tricky cases (no detections, no ground truth, a class
on one side only, tied and NaN scores, crowd regions, more detections than
the limit, custom thresholds, ranges and limits), bbox and segm; the lecture
notes' worked example (stated in the test); errors; opcheck."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
import torch

import visionops
from visionops.metrics import MeanAveragePrecision, evaluate_coco, precision_recall

from ..conftest import require

mask_utils = require("pycocotools.mask")
COCO = require("pycocotools.coco").COCO
COCOeval = require("pycocotools.cocoeval").COCOeval

KEYS = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100", "mar_small",
        "mar_medium", "mar_large"]


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    b = boxes.double()
    return torch.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1).tolist()


def _rle(m: torch.Tensor) -> dict:
    return mask_utils.encode(np.asfortranarray(m.numpy().astype(np.uint8)))


def to_coco(preds, targets, iou_type="bbox"):
    """COCO dataset and results of the same set; image i gets id i + 1."""
    images, anns, dets = [], [], []
    cats = set()
    for i, (p, t) in enumerate(zip(preds, targets)):
        images.append({"id": i + 1, "height": 64, "width": 64})
        n = len(t["labels"])
        crowd = t.get("iscrowd", torch.zeros(n, dtype=torch.uint8)).tolist()
        for j in range(n):
            ann = {"id": len(anns) + 1, "image_id": i + 1, "category_id": int(t["labels"][j]),
                   "iscrowd": int(crowd[j])}
            if iou_type == "bbox":
                box = _xywh(t["boxes"][j : j + 1])[0]
                ann.update(bbox=box, area=float(t["area"][j]) if "area" in t else box[2] * box[3])
            else:
                rle = _rle(t["masks"][j])
                ann.update(segmentation=rle, bbox=list(mask_utils.toBbox(rle)),
                           area=float(t["area"][j]) if "area" in t else float(mask_utils.area(rle)))
            anns.append(ann)
            cats.add(int(t["labels"][j]))
        for j in range(len(p["labels"])):
            det = {"image_id": i + 1, "category_id": int(p["labels"][j]), "score": float(p["scores"][j])}
            if iou_type == "bbox":
                det["bbox"] = _xywh(p["boxes"][j : j + 1])[0]
            else:
                det["segmentation"] = _rle(p["masks"][j])
            dets.append(det)
            cats.add(int(p["labels"][j]))
    return {"images": images, "annotations": anns, "categories": [{"id": c} for c in sorted(cats)]}, dets


def run_pycocotools(dataset, dets, iou_type="bbox", params=None):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        if not dets:  # loadRes refuses an empty list
            dt.dataset = {"images": dataset["images"], "annotations": [], "categories": dataset["categories"]}
            dt.createIndex()
        e = COCOeval(gt, dt, iou_type)
        for k, v in (params or {}).items():
            setattr(e.params, k, v)
        e.evaluate()
        e.accumulate()
        if not params:
            e.summarize()
    return e


def assert_same_as_pycocotools(preds, targets, iou_type="bbox", **kwargs):
    dataset, dets = to_coco(preds, targets, iou_type)
    params = {}
    if "iou_thresholds" in kwargs:
        params["iouThrs"] = np.array(kwargs["iou_thresholds"])
    if "rec_thresholds" in kwargs:
        params["recThrs"] = np.array(kwargs["rec_thresholds"])
    if "max_detection_thresholds" in kwargs:
        params["maxDets"] = list(kwargs["max_detection_thresholds"])
    if "area_ranges" in kwargs:
        params["areaRng"] = [list(v) for v in kwargs["area_ranges"].values()]
        params["areaRngLbl"] = list(kwargs["area_ranges"])
    e = run_pycocotools(dataset, dets, iou_type, params)
    m = MeanAveragePrecision(iou_type=iou_type, extended_summary=True, class_metrics=True, **kwargs)
    m.update(preds, targets)
    r = m.compute()
    # Our classes are the labels of either side; pycocotools' are the dataset's categories (the same here).
    assert r["classes"].tolist() == [c["id"] for c in dataset["categories"]]
    np.testing.assert_array_equal(r["precision"].numpy(), e.eval["precision"])
    np.testing.assert_array_equal(r["recall"].numpy(), e.eval["recall"])
    np.testing.assert_array_equal(r["scores"].numpy(), e.eval["scores"])
    if not params:
        for i, k in enumerate(KEYS):
            assert float(r[k]) == pytest.approx(e.stats[i], abs=1e-12), k
    return r, e


def random_set(g, n_images=40, n_classes=4, max_gt=8, max_det=25, crowd=0.1, size=300.0):
    preds, targets = [], []
    for _ in range(n_images):
        m = int(torch.randint(0, max_gt, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * size
        wh = 1 + torch.rand(m, 2, generator=g) ** 2 * size / 2
        gt = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(0, n_classes, (m,), generator=g)
        k = int(torch.randint(0, max_det, (1,), generator=g))
        src = torch.randint(0, max(m, 1), (k,), generator=g)
        base = gt[src] if m else torch.rand(k, 4, generator=g) * size
        boxes = base + torch.randn(k, 4, generator=g) * 8
        boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        wrong = torch.rand(k, generator=g) < 0.3
        det_labels = torch.where(wrong | (m == 0), torch.randint(0, n_classes, (k,), generator=g),
                                 labels[src] if m else torch.zeros(k, dtype=torch.long))
        scores = torch.round(torch.rand(k, generator=g) * 10) / 10  # many ties
        preds.append({"boxes": boxes, "scores": scores, "labels": det_labels})
        targets.append({"boxes": gt, "labels": labels,
                        "iscrowd": (torch.rand(m, generator=g) < crowd).to(torch.uint8)})
    return preds, targets


@pytest.mark.parametrize("seed", range(6))
def test_random_sets_match_pycocotools(seed):
    assert_same_as_pycocotools(*random_set(torch.Generator().manual_seed(seed)))


def test_many_detections_beyond_the_limit():
    g = torch.Generator().manual_seed(11)
    preds, targets = random_set(g, n_images=10, n_classes=2, max_gt=30, max_det=400, crowd=0.0)
    assert max(len(p["labels"]) for p in preds) > 100
    assert_same_as_pycocotools(preds, targets)


def test_tricky_images():
    box = torch.tensor([[10.0, 10.0, 60.0, 50.0]])
    empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    no_gt = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    preds = [
        empty,  # an image without detections
        {"boxes": box.repeat(3, 1) + torch.tensor([[0.0], [2.0], [30.0]]), "scores": torch.tensor([0.5, 0.5, 0.5]),
         "labels": torch.tensor([1, 1, 1])},  # tied scores, duplicates
        {"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([7])},  # class 7 has no ground truth
        {"boxes": box * 2, "scores": torch.tensor([0.8]), "labels": torch.tensor([1])},  # image without ground truth
        {"boxes": torch.cat([box, box + 1]), "scores": torch.tensor([0.3, 0.6]), "labels": torch.tensor([2, 2])},
    ]
    targets = [
        {"boxes": box, "labels": torch.tensor([1])},
        {"boxes": box.repeat(2, 1), "labels": torch.tensor([1, 1]), "iscrowd": torch.tensor([0, 1])},
        {"boxes": box, "labels": torch.tensor([5])},  # class 5 has no detection
        no_gt,
        {"boxes": torch.cat([box, box * 3]), "labels": torch.tensor([2, 2]), "iscrowd": torch.tensor([1, 0])},
    ]
    assert_same_as_pycocotools(preds, targets)


def test_nan_scores_and_boxes():
    g = torch.Generator().manual_seed(4)
    preds, targets = random_set(g, n_images=12)
    preds[0]["scores"][:2] = float("nan")
    preds[1]["boxes"][0, 1] = float("nan")
    assert_same_as_pycocotools(preds, targets)


def test_given_areas_and_formats():
    g = torch.Generator().manual_seed(5)
    preds, targets = random_set(g, n_images=20, size=800.0)
    for t in targets:
        t["area"] = torch.rand(len(t["labels"]), generator=g) * 20000
    assert_same_as_pycocotools(preds, targets)
    # The same boxes in other formats give the same result.
    ref = MeanAveragePrecision()
    ref.update(preds, targets)
    expected = ref.compute()
    for fmt in ("xywh", "cxcywh"):
        conv = [{**p, "boxes": visionops.box_convert(p["boxes"].double(), "xyxy", fmt)} for p in preds]
        conv_t = [{**t, "boxes": visionops.box_convert(t["boxes"].double(), "xyxy", fmt)} for t in targets]
        m = MeanAveragePrecision(box_format=fmt)
        m.update(conv, conv_t)
        got = m.compute()
        for k in KEYS:
            assert float(got[k]) == pytest.approx(float(expected[k]), abs=1e-12)


def test_custom_thresholds_limits_and_ranges():
    g = torch.Generator().manual_seed(6)
    preds, targets = random_set(g, n_images=30, max_det=60)
    kwargs = {"iou_thresholds": [0.3, 0.55, 0.7], "rec_thresholds": np.linspace(0, 1, 11).tolist(),
              "max_detection_thresholds": [2, 20, 50], "area_ranges": {"all": (0, 1e10), "tiny": (0, 400),
                                                                         "rest": (400, 1e10)}}
    r, e = assert_same_as_pycocotools(preds, targets, **kwargs)
    # AP is read at the largest limit (pycocotools' summary would look for 100 and find nothing).
    s = e.eval["precision"][:, :, :, 0, 2]
    assert float(r["map"]) == pytest.approx(np.mean(s[s > -1]), abs=1e-12)
    assert float(r["map_50"]) == -1.0  # 0.5 is not one of the thresholds
    assert {"map_tiny", "map_rest", "mar_2", "mar_20", "mar_50", "mar_tiny"} <= set(r)


def test_segm_matches_pycocotools():
    g = torch.Generator().manual_seed(8)
    H = W = 64

    def masks(n):
        m = torch.zeros(n, H, W, dtype=torch.bool)
        for j in range(n):
            x, y = (int(v) for v in torch.randint(0, 50, (2,), generator=g))
            w, h = (int(v) for v in torch.randint(1, 30, (2,), generator=g))
            m[j, y : y + h, x : x + w] = True
        return m | (torch.rand(n, H, W, generator=g) < 0.003)

    preds, targets = [], []
    for i in range(25):
        ng, nd = int(torch.randint(0, 6, (1,), generator=g)), int(torch.randint(0, 9, (1,), generator=g))
        gm, dm = masks(ng), masks(nd)
        gl, dl = torch.randint(0, 3, (ng,), generator=g), torch.randint(0, 3, (nd,), generator=g)
        k = min(ng, nd)
        dm[:k] = gm[:k] ^ (torch.rand(k, H, W, generator=g) < 0.005)  # noisy copies ...
        dl[:k] = gl[:k]  # ... of the right class
        if i == 3:
            dm[:] = False  # empty predicted masks
        preds.append({"masks": dm, "scores": torch.rand(nd, generator=g), "labels": dl})
        targets.append({"masks": gm, "labels": gl, "iscrowd": (torch.rand(ng, generator=g) < 0.15).to(torch.uint8)})
    r, _ = assert_same_as_pycocotools(preds, targets, iou_type="segm")
    assert float(r["map"]) > 0.1  # the noisy copies are found: the comparison is not between empty results


def test_evaluate_coco_from_files(tmp_path):
    preds, targets = random_set(torch.Generator().manual_seed(9), n_images=15)
    dataset, dets = to_coco(preds, targets)
    e = run_pycocotools(dataset, dets)
    (tmp_path / "gt.json").write_text(json.dumps(dataset))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    for gt, dt in ((tmp_path / "gt.json", tmp_path / "dt.json"), (dataset, dets)):
        r = evaluate_coco(gt, dt, extended_summary=True)
        np.testing.assert_array_equal(r["precision"].numpy(), e.eval["precision"])
        for i, k in enumerate(KEYS):
            assert float(r[k]) == pytest.approx(e.stats[i], abs=1e-12)
    with pytest.raises(ValueError, match="detection of image 999"):
        evaluate_coco(dataset, [{**dets[0], "image_id": 999}])
    with pytest.raises(ValueError, match="iou_type must be 'bbox' or 'segm'"):
        evaluate_coco(dataset, dets, iou_type="keypoints")


def _uncompressed_rle(m: np.ndarray) -> dict:
    """COCO's uncompressed RLE (crowd annotations): column-major run lengths."""
    flat = m.flatten(order="F")
    runs, value, count = [], 0, 0
    for px in flat:
        if px != value:
            runs.append(count)
            value, count = px, 0
        count += 1
    runs.append(count)
    return {"size": list(m.shape), "counts": [int(r) for r in runs]}


def test_evaluate_coco_segm_polygons_and_rle(tmp_path):
    """COCO-format segm: polygon ground truths (some of two parts), crowd
    regions as uncompressed RLE, results as compressed RLE strings."""
    g = np.random.default_rng(14)
    images, anns, dets = [], [], []
    for i in range(30):
        h, w = int(g.integers(30, 80)), int(g.integers(30, 80))
        images.append({"id": 100 + i, "height": h, "width": w})
        for _ in range(int(g.integers(0, 5))):
            cx, cy, r = g.random() * w, g.random() * h, 4 + g.random() * 15
            k = int(g.integers(3, 9))
            ang = np.sort(g.random(k)) * 2 * np.pi
            poly = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1).flatten().tolist()
            parts = [poly] if g.random() < 0.7 else [poly, (np.array(poly) + 3).tolist()]
            crowd = int(g.random() < 0.15)
            rle = mask_utils.merge(mask_utils.frPyObjects(parts, h, w))
            segm = _uncompressed_rle(mask_utils.decode(rle)) if crowd else parts
            label = int(g.integers(1, 4))
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": label, "segmentation": segm,
                         "area": float(mask_utils.area(rle)), "iscrowd": crowd,
                         "bbox": mask_utils.toBbox(rle).tolist()})
            for _ in range(int(g.integers(0, 3))):  # jittered copies as results
                m = mask_utils.decode(rle).astype(bool)
                m = np.roll(m, (int(g.integers(-1, 2)), int(g.integers(-1, 2))), (0, 1))
                m ^= g.random(m.shape) < 0.002
                r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                dets.append({"image_id": 100 + i, "category_id": label if g.random() < 0.8 else 3,
                             "segmentation": {"size": r["size"], "counts": r["counts"].decode()},
                             "score": float(np.round(g.random(), 2))})
    dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in (1, 2, 3)]}
    (tmp_path / "gt.json").write_text(json.dumps(dataset))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    e = run_pycocotools(copy.deepcopy(dataset), copy.deepcopy(dets), "segm")  # loadRes edits what it is given
    r = evaluate_coco(tmp_path / "gt.json", tmp_path / "dt.json", iou_type="segm", extended_summary=True)
    np.testing.assert_array_equal(r["precision"].numpy(), e.eval["precision"])
    np.testing.assert_array_equal(r["recall"].numpy(), e.eval["recall"])
    for i, k in enumerate(KEYS):
        assert float(r[k]) == pytest.approx(e.stats[i], abs=1e-12)
    assert float(r["map"]) > 0.2
    bad = [{**dets[0], "segmentation": {"size": [1, 1], "counts": "1"}}]
    with pytest.raises(ValueError, match="an RLE of size \\[1, 1\\] on an image of"):
        evaluate_coco(dataset, bad, iou_type="segm")


def test_coco_mask_decoders_match_pycocotools():
    g = np.random.default_rng(15)
    for _ in range(200):
        h, w = int(g.integers(1, 50)), int(g.integers(1, 50))
        k = int(g.integers(3, 10))
        poly = (g.random(2 * k) * np.array([w + 10, h + 10] * k) - 5).tolist()
        expected = mask_utils.decode(mask_utils.frPyObjects([poly], h, w))[:, :, 0].astype(bool)
        got = torch.ops.visionops.coco_polygons_decode(torch.tensor(poly, dtype=torch.float64), [k], [1], [h], [w])
        assert torch.equal(got, visionops.pack_masks(torch.from_numpy(expected)[None]).flatten())
        m = g.random((h, w)) < 0.3
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        packed = visionops.pack_masks(torch.from_numpy(m)[None]).flatten()
        assert torch.equal(torch.ops.visionops.coco_rle_decode([rle["counts"].decode()], [h], [w]), packed)
        unc = _uncompressed_rle(m.astype(np.uint8))
        assert torch.equal(torch.ops.visionops.coco_runs_decode(torch.tensor(unc["counts"]), [len(unc["counts"])], [h],
                                                                [w]), packed)
    torch.library.opcheck(torch.ops.visionops.coco_polygons_decode.default,
                          (torch.tensor([1.0, 1, 8, 2, 4, 7]), [3], [1], [9], [10]))
    torch.library.opcheck(torch.ops.visionops.coco_runs_decode.default, (torch.tensor([3, 5, 2]), [3], [2], [5]))
    with pytest.raises(ValueError, match="run lengths must be non-negative and sum to at most h \\* w = 4"):
        torch.ops.visionops.coco_runs_decode(torch.tensor([3, 5]), [2], [2], [2])


def test_streaming_updates_and_reset():
    preds, targets = random_set(torch.Generator().manual_seed(10), n_images=20)
    whole = MeanAveragePrecision()
    whole.update(preds, targets)
    parts = MeanAveragePrecision()
    for i in range(0, 20, 3):
        parts.update(preds[i : i + 3], targets[i : i + 3])
    a, b = whole.compute(), parts.compute()
    for k in KEYS:
        assert float(a[k]) == float(b[k])
    parts.reset()
    empty = parts.compute()
    assert all(float(empty[k]) == -1.0 for k in KEYS) and empty["classes"].numel() == 0


def test_lecture_notes_worked_example():
    """The lecture notes' mAP example: 3 ground-truth cats; 5 predictions at
    0.98, 0.95, 0.88, 0.75, 0.60 that are TP, TP, FP, TP, FP. The notes' table
    (rounded to 2 places): recall 0.33, 0.67, 0.67, 1.0, 1.0 and precision 1.0,
    1.0, 0.67, 0.75, 0.6; exactly, the fractions below."""
    precision, recall = precision_recall(torch.tensor([0.98, 0.95, 0.88, 0.75, 0.60]),
                                         torch.tensor([True, True, False, True, False]), num_ground_truth=3)
    torch.testing.assert_close(recall, torch.tensor([1 / 3, 2 / 3, 2 / 3, 1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(precision, torch.tensor([1.0, 1.0, 2 / 3, 0.75, 0.6], dtype=torch.float64))
    # The same as boxes: predictions 1, 2 and 4 sit on the three cats.
    cats = torch.tensor([[0.0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 500, 100]])
    boxes = torch.stack([cats[0], cats[1], torch.tensor([0.0, 300, 100, 400]), cats[2] + 1,
                         torch.tensor([600.0, 600, 700, 700])])
    m = MeanAveragePrecision(extended_summary=True)
    m.update([{"boxes": boxes, "scores": torch.tensor([0.98, 0.95, 0.88, 0.75, 0.60]), "labels": torch.zeros(5).long()}],
             [{"boxes": cats, "labels": torch.zeros(3).long()}])
    r = m.compute()
    # 101-point AP at IoU 0.5: precision 1 up to recall 2/3 (67 points), 0.75 above (34 points).
    assert float(r["map_50"]) == pytest.approx((67 * 1.0 + 34 * 0.75) / 101, abs=1e-12)
    assert float(r["mar_100"]) == pytest.approx(1.0)
    assert_same_as_pycocotools(*([{"boxes": boxes, "scores": torch.tensor([0.98, 0.95, 0.88, 0.75, 0.60]),
                                   "labels": torch.zeros(5).long()}], [{"boxes": cats,
                                                                        "labels": torch.zeros(3).long()}]))


def test_bad_input():
    m = MeanAveragePrecision()
    ok_p = {"boxes": torch.zeros(1, 4), "scores": torch.zeros(1), "labels": torch.zeros(1).long()}
    ok_t = {"boxes": torch.zeros(1, 4), "labels": torch.zeros(1).long()}
    with pytest.raises(ValueError, match="preds and target must have one dict per image, got 1 and 2"):
        m.update([ok_p], [ok_t, ok_t])
    with pytest.raises(ValueError, match="preds\\[0\\] must have the key 'scores'"):
        m.update([{"boxes": torch.zeros(1, 4), "labels": torch.zeros(1).long()}], [ok_t])
    with pytest.raises(ValueError, match="target\\[0\\]\\['boxes'\\] must have shape \\[1, 4\\], got \\[1, 5\\]"):
        m.update([ok_p], [{"boxes": torch.zeros(1, 5), "labels": torch.zeros(1).long()}])
    with pytest.raises(ValueError, match="preds\\[0\\]\\['scores'\\] must have shape \\[1\\], got \\[2\\]"):
        m.update([{**ok_p, "scores": torch.zeros(2)}], [ok_t])
    with pytest.raises(ValueError, match="iou_type must be 'bbox' or 'segm'"):
        MeanAveragePrecision(iou_type="keypoints")
    with pytest.raises(ValueError, match="box_format must be"):
        MeanAveragePrecision(box_format="xyxyxyxy")
    with pytest.raises(ValueError, match="max_detection_thresholds must be positive"):
        MeanAveragePrecision(max_detection_thresholds=[0, 10])
    with pytest.raises(ValueError, match="area_ranges must include 'all'"):
        MeanAveragePrecision(area_ranges={"small": (0, 10)})
    s = MeanAveragePrecision(iou_type="segm")
    with pytest.raises(ValueError, match="must have the same H, W"):
        s.update([{"masks": torch.zeros(1, 4, 4), "scores": torch.zeros(1), "labels": torch.zeros(1).long()}],
                 [{"masks": torch.zeros(1, 5, 4), "labels": torch.zeros(1).long()}])


def test_pack_masks():
    g = torch.Generator().manual_seed(12)
    m = torch.rand(5, 7, 19, generator=g) < 0.4
    packed = visionops.pack_masks(m)
    assert packed.shape == (5, 3) and packed.dtype == torch.int64
    flat = m.flatten(1)
    for n in range(5):
        bits = [(int(packed[n, p // 64]) >> (p % 64)) & 1 for p in range(flat.shape[1])]
        assert bits == flat[n].int().tolist()
    assert (visionops.pack_masks(m.float() * 3) == packed).all()
    torch.library.opcheck(torch.ops.visionops.pack_masks.default, (m,))


def test_coco_evaluate_opcheck():
    preds, targets = random_set(torch.Generator().manual_seed(13), n_images=4)
    m = MeanAveragePrecision()
    m.update(preds, targets)
    s = m._state()
    from visionops.metrics.mean_ap import _xyxy_to_xywh64

    args = (_xyxy_to_xywh64(s["det_boxes"], "xyxy"), s["det_scores"], s["det_labels"],
            torch.full_like(s["det_scores"], float("nan")), s["det_counts"], _xyxy_to_xywh64(s["gt_boxes"], "xyxy"),
            s["gt_labels"], s["gt_crowd"], s["gt_area"], s["gt_counts"],
            torch.unique(torch.cat([s["det_labels"], s["gt_labels"]])), torch.tensor([0.5, 0.75], dtype=torch.float64),
            torch.linspace(0, 1, 11, dtype=torch.float64), torch.tensor([[0.0, 1e10]], dtype=torch.float64), [1, 10])
    torch.library.opcheck(torch.ops.visionops.coco_evaluate.default, args)
