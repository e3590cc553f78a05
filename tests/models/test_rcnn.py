"""Faster R-CNN and Mask R-CNN on our ops: torchvision's weights give
torchvision's detections and losses; tiny configurations train; the
fixed-size path equals the eager one and exports; torch.compile."""

from __future__ import annotations

import pytest
import torch

from ..conftest import assert_same_losses, detection_images_and_targets, require

detection = require("torchvision.models.detection")
vm = require("visionops.models")

SIDE = 224


def _images_and_targets(masks: bool, side: int = SIDE, seed: int = 11):
    return detection_images_and_targets("maskrcnn" if masks else "fasterrcnn", side, seed)


def _pair(name: str, channels_last: bool = True):
    common = {"num_classes": 4, "box_score_thresh": 0.0, "box_detections_per_img": 50, "min_size": SIDE,
              "max_size": SIDE}
    torch.manual_seed(1)
    if name == "faster":
        theirs = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, **common)
        ours = vm.fasterrcnn_resnet50_fpn(channels_last=channels_last, **common)
    else:
        theirs = detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, **common)
        ours = vm.maskrcnn_resnet50_fpn(channels_last=channels_last, **common)
        # Random mask logits sit near 0, probabilities near 0.5, where the
        # last bit of a box (our decode's exp is not torch's) flips pixels at
        # the 0.5 threshold; sharper logits, as a trained head gives, make the
        # mask IoU a comparison of the masks rather than of rounding.
        with torch.no_grad():
            theirs.roi_heads.mask_predictor.mask_fcn_logits.weight.mul_(30)
    missing = ours.load_state_dict(theirs.state_dict())
    assert not missing.missing_keys and not missing.unexpected_keys
    return ours, theirs


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1) > 0.5, b.flatten(1) > 0.5
    inter = (a & b).sum(1).double()
    union = (a | b).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@pytest.mark.parametrize("channels_last", [False, True], ids=["channels-first", "channels-last"])
@pytest.mark.parametrize("name", ["faster", "mask"])
def test_torchvision_weights_give_torchvision_results(name, channels_last):
    """Channels-first, torchvision's layout, isolates our ops: boxes within
    1e-3 pixels. Channels-last (the CPU default) also changes the
    convolutions' rounding (oneDNN sums in another order): boxes then agree
    to 1e-4 relative, about 0.01 pixels at these coordinates."""
    ours, theirs = _pair(name, channels_last)
    images, targets = _images_and_targets(name == "mask")
    with torch.no_grad():
        out_ours = ours.eval()(images)
        out_theirs = theirs.eval()(images)
    rtol = 1e-4 if channels_last else 0.0
    for a, b in zip(out_ours, out_theirs, strict=True):
        assert a.keys() == b.keys() and a["boxes"].shape[0] > 0
        assert torch.equal(a["labels"], b["labels"])  # the same classes in the same order
        torch.testing.assert_close(a["boxes"], b["boxes"], rtol=rtol, atol=1e-3)
        torch.testing.assert_close(a["scores"], b["scores"], rtol=rtol, atol=1e-5)
        if name == "mask":
            assert a["masks"].shape == b["masks"].shape
            assert mask_iou(a["masks"], b["masks"]).min() >= 0.99
    torch.manual_seed(5)  # the samplers draw from torch's generator, seeded alike
    losses_ours = ours.train()(images, targets)
    torch.manual_seed(5)
    losses_theirs = theirs.train()(images, targets)
    if not channels_last:
        assert_same_losses(losses_ours, losses_theirs)
    else:
        # Rounding moves a few proposals across the 0.5 IoU threshold, and
        # the sampled RoIs differ by those: the losses agree to 1%, not 1e-4.
        assert losses_ours.keys() == losses_theirs.keys()
        for key, value in losses_theirs.items():
            torch.testing.assert_close(losses_ours[key], value, rtol=1e-2, atol=1e-4)


@pytest.mark.parametrize("build", ["faster_rcnn_small", "mask_rcnn_small"])
def test_tiny_forward_backward_and_a_step_lowers_the_loss(build):
    torch.manual_seed(0)
    model = getattr(vm, build)(num_classes=4, image_size=128)
    images, targets = _images_and_targets(build.startswith("mask"), side=128, seed=3)
    model.train()
    losses = model(images, targets)
    expected = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    if build.startswith("mask"):
        expected.add("loss_mask")
    assert set(losses) == expected and all(torch.isfinite(v) for v in losses.values())
    total = sum(losses.values())
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.0)

    def loss_now() -> torch.Tensor:
        # Training mode with batch-norm statistics fixed: the loss is a function of the weights alone.
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        torch.manual_seed(7)  # the same samples each time
        return sum(model(images, targets).values())

    before = loss_now()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss_now()
    assert after < before


@pytest.mark.parametrize("build", ["faster_rcnn_small", "mask_rcnn_small"])
def test_eval_outputs_documented_shapes(build):
    torch.manual_seed(0)
    model = getattr(vm, build)(num_classes=4, image_size=96, box_score_thresh=0.0).eval()
    images = [torch.rand(3, 96, 96), torch.rand(3, 80, 96)]
    with torch.no_grad():
        out = model(images)
    for o, img in zip(out, images):
        d = o["boxes"].shape[0]
        assert d > 0  # a score threshold of 0: random heads give detections to check
        assert o["boxes"].shape == (d, 4) and o["boxes"].dtype == torch.float32
        assert o["labels"].shape == (d,) and o["labels"].dtype == torch.int64 and (o["labels"] >= 1).all()
        assert o["scores"].shape == (d,) and (o["scores"][:-1] >= o["scores"][1:]).all()
        assert (o["boxes"][:, 2:] >= o["boxes"][:, :2]).all()
        assert (o["boxes"][:, 2] <= img.shape[2]).all() and (o["boxes"][:, 3] <= img.shape[1]).all()
        if "masks" in o:
            assert o["masks"].shape == (d, 1, *img.shape[1:])
    # Thresholded masks in the paste.
    if build.startswith("mask"):
        model.transform.mask_threshold = 0.5
        with torch.no_grad():
            bool_out = model(images)
        assert bool_out[0]["masks"].dtype == torch.bool
        assert torch.equal(bool_out[0]["masks"], out[0]["masks"] > 0.5)


@pytest.mark.parametrize("build", ["faster_rcnn_small", "mask_rcnn_small"])
def test_padded_path_equals_eager_and_exports(build):
    torch.manual_seed(2)
    model = getattr(vm, build)(num_classes=5, image_size=128, box_score_thresh=0.0).eval()
    images = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        eager = model(list(images))
        padded = model.forward_padded(images)
    d = model.roi_heads.detections_per_img
    assert padded["boxes"].shape == (2, d, 4) and padded["counts"].shape == (2,)
    for i, e in enumerate(eager):
        n = int(padded["counts"][i])
        assert n == e["boxes"].shape[0]
        assert torch.equal(padded["labels"][i, :n], e["labels"])
        torch.testing.assert_close(padded["boxes"][i, :n], e["boxes"], rtol=0, atol=1e-4)
        torch.testing.assert_close(padded["scores"][i, :n], e["scores"], rtol=0, atol=1e-6)
        assert (padded["labels"][i, n:] == 0).all() and (padded["scores"][i, n:] == 0).all()
        if "masks" in e:
            torch.testing.assert_close(padded["masks"][i, :n], e["masks"][:, 0], rtol=0, atol=1e-6)
            assert padded["masks"][i, n:].abs().sum() == 0

    program = torch.export.export(vm.PaddedInference(model), (images,))
    exported = program.module()(images)
    for key, value in padded.items():
        torch.testing.assert_close(exported[key], value, rtol=0, atol=0)


def test_compiled_padded_inference():
    torch.manual_seed(4)
    model = vm.faster_rcnn_small(num_classes=3, image_size=96, box_score_thresh=0.0).eval()
    images = torch.rand(1, 3, 96, 96)
    torch._dynamo.reset()
    compiled = torch.compile(model.forward_padded, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        a, b = compiled(images), model.forward_padded(images)
    for key in b:
        torch.testing.assert_close(a[key], b[key])
    torch._dynamo.reset()
