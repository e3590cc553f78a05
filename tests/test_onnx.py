"""ONNX export, as torchvision has it: a module calling our nms,
batched_nms, roi_align and roi_pool exports (torch.onnx.export, the dynamo
exporter) to the standard NonMaxSuppression, RoiAlign and MaxRoiPool
operators through visionops.onnx's translations, and onnxruntime runs the
graph to our eager results."""

from __future__ import annotations

import warnings

import pytest
import torch

import visionops

from .conftest import random_boxes, require

ort = require("onnxruntime")
require("onnxscript")


class Detector(torch.nn.Module):
    """An inference tail: NMS, per-class NMS and RoI pooling of the kept boxes."""

    def __init__(self, aligned: bool, sampling_ratio: int) -> None:
        super().__init__()
        self.aligned, self.sampling_ratio = aligned, sampling_ratio

    def forward(self, features, boxes, scores, idxs, rois):
        keep = visionops.nms(boxes, scores, 0.5)
        keep_classes = visionops.batched_nms(boxes, scores, idxs, 0.4, score_threshold=0.2, max_output=30)
        aligned = visionops.roi_align(features, rois, (7, 6), 0.25, self.sampling_ratio, self.aligned)
        pooled = visionops.roi_pool(features, rois, 5, 0.25)
        return keep, keep_classes, aligned, pooled


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(2, 8, 40, 48, generator=g)
    boxes = random_boxes(200, size=180, scale=60, dtype=torch.float32, generator=g)
    scores = torch.rand(200, generator=g)
    idxs = torch.randint(0, 4, (200,), generator=g)
    rois = torch.cat([torch.randint(0, 2, (30, 1), generator=g).float(),
                      random_boxes(30, size=180, scale=80, dtype=torch.float32, generator=g)], dim=1)
    return features, boxes, scores, idxs, rois


def _export(model, args, path, explicit: bool):
    import visionops.onnx as vo_onnx

    extra = {"custom_translation_table": vo_onnx.translation_table()} if explicit else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, args, dynamo=True, verbose=False, **extra)
    program.save(str(path))
    return program


@pytest.mark.parametrize("aligned,sampling_ratio,explicit", [(True, 2, False), (False, 0, True), (False, -1, False)])
def test_export_runs_in_onnxruntime_with_our_results(aligned, sampling_ratio, explicit, tmp_path):
    model = Detector(aligned, sampling_ratio).eval()
    args = _inputs(0)
    path = tmp_path / "detector.onnx"
    program = _export(model, args, path, explicit)
    ops = {node.op_type for node in program.model_proto.graph.node}
    assert {"NonMaxSuppression", "RoiAlign", "MaxRoiPool"} <= ops, ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed in (0, 1, 2):  # new inputs of the same shapes through the same graph
        inputs = _inputs(seed)
        feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
        got = session.run(None, feeds)
        want = model(*inputs)
        assert torch.equal(torch.from_numpy(got[0]), want[0]), "nms"
        assert torch.equal(torch.from_numpy(got[1]), want[1]), "batched_nms"
        torch.testing.assert_close(torch.from_numpy(got[2]), want[2], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch.from_numpy(got[3]), want[3], rtol=0, atol=0)


class PaddedTail(torch.nn.Module):
    """padded_nms with classes, on boxes that reach below zero."""

    def forward(self, boxes, scores, idxs):
        return visionops.padded_nms(boxes, scores, 0.45, 40, idxs=idxs, score_threshold=0.1)


def test_padded_nms_exports_per_class_with_negative_coordinates(tmp_path):
    import visionops.onnx  # noqa: F401  (registers the translations)

    g = torch.Generator().manual_seed(4)
    boxes = random_boxes(2 * 150, size=120, scale=40, dtype=torch.float32, generator=g).view(2, 150, 4) - 30
    scores = torch.rand(2, 150, generator=g)
    scores[0, :5] = 0.7  # ties, listed by index on both sides
    idxs = torch.randint(0, 5, (2, 150), generator=g)
    program = _export(PaddedTail(), (boxes, scores, idxs), tmp_path / "padded.onnx", explicit=False)
    session = ort.InferenceSession(str(tmp_path / "padded.onnx"))
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), (boxes, scores, idxs))}
    keep, counts = session.run(None, feeds)
    ours_keep, ours_counts = PaddedTail()(boxes, scores, idxs)
    assert program is not None
    assert (counts == ours_counts.numpy()).all()
    assert (keep == ours_keep.numpy()).all()


class YoloTail(torch.nn.Module):
    """YOLO's inference tail: decoding every scale, then NMS per class."""

    anchors = torch.tensor([[[10.0, 13], [16, 30], [33, 23]], [[30.0, 61], [62, 45], [59, 119]],
                            [[116.0, 90], [156, 198], [373, 326]]])

    def forward(self, h3, h4, h5):
        boxes, scores, classes, _ = visionops.yolo_decode([h3, h4, h5], self.anchors, [8, 16, 32],
                                                          score_threshold=0.2, max_detections=300)
        keep, counts = visionops.padded_nms(boxes, scores, 0.5, 100, idxs=classes.clamp(min=0), score_threshold=0.0)
        return boxes, scores, classes, keep, counts


def test_yolo_decode_and_padded_nms_export(tmp_path):
    import visionops.onnx  # noqa: F401

    g = torch.Generator().manual_seed(6)
    heads = tuple(torch.randn(2, 3 * 9, s, s, generator=g) * 3 for s in (20, 10, 5))  # 4 classes, 640 / 8 ... / 32
    expected = YoloTail()(*heads)
    _export(YoloTail(), heads, tmp_path / "tail.onnx", explicit=False)
    session = ort.InferenceSession(str(tmp_path / "tail.onnx"))
    got = session.run(None, {i.name: h.numpy() for i, h in zip(session.get_inputs(), heads)})
    boxes, scores, classes, keep, counts = (torch.from_numpy(o) for o in got)
    torch.testing.assert_close(boxes, expected[0], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(scores, expected[1], rtol=1e-5, atol=1e-6)
    assert torch.equal(classes, expected[2])
    assert torch.equal(keep, expected[3]) and torch.equal(counts, expected[4]) and int(counts.min()) > 0


def test_yolo_model_exports_to_onnxruntime(tmp_path):
    import visionops.onnx  # noqa: F401

    models = require("visionops.models")
    torch.manual_seed(3)
    # Every candidate is kept (a threshold below the untrained head's prior,
    # no box suppressed, room for all), so the two results hold the same
    # boxes, in whatever order: an untrained head's scores and class logits
    # tie to within 1e-5, and onnxruntime's convolutions (an ulp from
    # torch's) order them otherwise, and may pick another of the tied
    # classes. test_yolo_decode_and_padded_nms_export checks classes and
    # order on separated scores.
    model = models.yolo_small(3, image_size=96, score_threshold=1e-6, iou_threshold=0.999, max_detections=600,
                              candidates=800).eval()
    x = torch.rand(2, 3, 96, 96)
    wrapper = models.PaddedInference(model)
    with torch.no_grad():
        expected = wrapper(x)
    _export(wrapper, (x,), tmp_path / "yolo.onnx", explicit=False)
    session = ort.InferenceSession(str(tmp_path / "yolo.onnx"))
    boxes, scores, labels, counts = (torch.from_numpy(o) for o in
                                     session.run(None, {session.get_inputs()[0].name: x.numpy()}))
    assert torch.equal(counts, expected["counts"]) and int(counts.min()) > 500
    for b in range(2):
        n = int(counts[b])
        dist = torch.cdist(boxes[b, :n].double(), expected["boxes"][b, :n].double())
        nearest = dist.argmin(1)
        assert dist.min(1).values.max() < 1e-3 and nearest.unique().numel() == n
        torch.testing.assert_close(scores[b, :n], expected["scores"][b, nearest], rtol=1e-5, atol=1e-7)
        assert (labels[b, n:] == 0).all() and (boxes[b, n:] == 0).all()
