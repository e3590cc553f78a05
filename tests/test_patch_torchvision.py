"""patch_torchvision(): torchvision's ops and its detection models' uses of
them rebound to ours, and restored on exit; torchvision's own detection
models (random weights) give the same detections and losses patched as
unpatched, eager and scripted."""

from __future__ import annotations

import sys
import warnings

import pytest
import torch

import visionops
from visionops.patch import batched_nms_in_torchvision_order

from .conftest import assert_same_losses, detection_images_and_targets, require

tv_ops = require("torchvision.ops")
detection = require("torchvision.models.detection")

SIDE = 256  # images small enough for the test suite; the benchmark runs 800x800


def _build(name: str) -> torch.nn.Module:
    common = {"weights": None, "weights_backbone": None, "min_size": SIDE, "max_size": SIDE}
    if name == "retinanet":
        return detection.retinanet_resnet50_fpn(num_classes=4, score_thresh=0.0, **common)
    if name == "fcos":
        return detection.fcos_resnet50_fpn(num_classes=4, score_thresh=0.0, **common)
    # A score threshold of 0 so that random heads give detections to compare.
    builder = {"fasterrcnn": detection.fasterrcnn_resnet50_fpn, "maskrcnn": detection.maskrcnn_resnet50_fpn,
               "keypointrcnn": detection.keypointrcnn_resnet50_fpn}[name]
    return builder(num_classes=2 if name == "keypointrcnn" else 4, box_score_thresh=0.0,
                   box_detections_per_img=50, **common)


MODELS = ["fasterrcnn", "maskrcnn", "retinanet", "fcos", "keypointrcnn"]


def _images_and_targets(name: str):
    return detection_images_and_targets(name, SIDE)


def _model(name: str, patched: bool) -> torch.nn.Module:
    torch.manual_seed(1)  # the same random weights either way
    if patched:
        with visionops.patch_torchvision():
            return _build(name)
    return _build(name)


def assert_same_detections(ours: list[dict], theirs: list[dict]) -> None:
    """Same boxes (to float32 rounding: decoding's exp is not torch's, and torch's
    own exp is off by an ulp for ~1% of inputs), same labels, same order."""
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys()
        assert a["boxes"].shape[0] > 0
        assert torch.equal(a["labels"], b["labels"])
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-4, msg=lambda m, key=key: f"{key}: {m}")


@pytest.mark.parametrize("name", MODELS)
def test_models_eval_and_train(name):
    images, targets = _images_and_targets(name)
    theirs, ours = _model(name, False), _model(name, True)
    with visionops.patch_torchvision(), torch.no_grad():
        out_ours = ours.eval()(images)
    with torch.no_grad():
        out_theirs = theirs.eval()(images)
    assert_same_detections(out_ours, out_theirs)
    # Training: the samplers draw from torch's generator, seeded alike.
    torch.manual_seed(5)
    with visionops.patch_torchvision():
        losses_ours = ours.train()(images, targets)
    torch.manual_seed(5)
    losses_theirs = theirs.train()(images, targets)
    assert_same_losses(losses_ours, losses_theirs)


def _script(model: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated, not gone
        return torch.jit.script(model)


def _calls_ops_of(scripted: torch.jit.ScriptModule, namespace: str) -> bool:
    return f"{namespace}::" in str(scripted.inlined_graph)


@pytest.mark.filterwarnings("ignore:.*always returns a \\(Losses, Detections\\) tuple in scripting")
@pytest.mark.parametrize("name", MODELS)
def test_scripted_models(name):
    images, _ = _images_and_targets(name)
    # Scripted unpatched first: the patch must not reuse what was compiled then.
    theirs = _script(_model(name, False).eval())
    with visionops.patch_torchvision():
        ours = _script(_model(name, True).eval())
    assert _calls_ops_of(ours, "visionops") and not _calls_ops_of(ours, "torchvision")
    assert _calls_ops_of(theirs, "torchvision") and not _calls_ops_of(theirs, "visionops")
    with torch.no_grad():
        _, out_ours = ours(images)
        _, out_theirs = theirs(images)
        out_eager = _model(name, False).eval()(images)
    assert_same_detections(out_ours, out_theirs)
    assert_same_detections(out_ours, out_eager)


def test_rebinds_and_restores():
    import torchvision.ops.boxes as tv_boxes
    from torchvision.models.detection import roi_heads
    from torchvision.ops import poolers

    originals = (tv_ops.nms, tv_boxes.batched_nms, poolers.roi_align, roi_heads.roi_align, tv_ops.MultiScaleRoIAlign,
                 detection._utils.BoxCoder, detection.anchor_utils.AnchorGenerator)
    with visionops.patch_torchvision() as patch:
        assert tv_ops.nms is visionops.nms and tv_boxes.nms is visionops.nms
        assert tv_boxes.batched_nms is tv_ops.batched_nms is batched_nms_in_torchvision_order
        assert poolers.roi_align is visionops.roi_align and roi_heads.roi_align is visionops.roi_align
        assert sys.modules["torchvision.models.detection.retinanet"].sigmoid_focal_loss is visionops.sigmoid_focal_loss
        assert tv_ops.MultiScaleRoIAlign is visionops.MultiScaleRoIAlign
        assert detection._utils.BoxCoder is visionops.BoxCoder
        assert detection.anchor_utils.AnchorGenerator is visionops.AnchorGenerator
        assert detection.transform.paste_masks_in_image is visionops.paste_masks_in_image
        assert "torchvision.ops.poolers.roi_align" in patch.names
        # torchvision's ops we do not provide stay theirs.
        assert tv_ops.clip_boxes_to_image.__module__.startswith("torchvision")
        with visionops.patch_torchvision():  # nested: the inner exit keeps the outer patch
            pass
        assert tv_ops.nms is visionops.nms
    assert (tv_ops.nms, tv_boxes.batched_nms, poolers.roi_align, roi_heads.roi_align, tv_ops.MultiScaleRoIAlign,
            detection._utils.BoxCoder, detection.anchor_utils.AnchorGenerator) == originals
    # As a plain call, undone by restore().
    patch = visionops.patch_torchvision()
    assert tv_boxes.box_iou is visionops.box_iou
    patch.restore()
    patch.restore()  # twice is harmless
    assert tv_boxes.box_iou is not visionops.box_iou


def test_restores_on_error():
    with pytest.raises(RuntimeError, match="inside"), visionops.patch_torchvision():
        raise RuntimeError("inside")
    assert tv_ops.roi_align is not visionops.roi_align
