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
