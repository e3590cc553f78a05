"""TorchScript, as torchvision has it: the scripted function or module gives
the eager result, forward and backward: the box ops, the IoU losses, nms,
batched_nms, roi_align, roi_pool, RoIAlign, RoIPool, MultiScaleRoIAlign, the
focal and Dice losses, masks_to_boxes, BoxCoder and AnchorGenerator."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest
import torch

import visionops

from .conftest import random_boxes


def script(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated, not gone
        return torch.jit.script(fn)


PAIRWISE = ["box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"]
LOSSES = ["generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"]


def test_box_ops(device):
    a = random_boxes(7, device=device)
    b = random_boxes(5, device=device)
    for name in ("box_area",):
        fn = getattr(visionops, name)
        assert torch.equal(script(fn)(a), fn(a))
    convert = script(visionops.box_convert)
    assert torch.equal(convert(a, "xyxy", "cxcywh"), visionops.box_convert(a, "xyxy", "cxcywh"))
    for name in PAIRWISE:
        fn, sfn = getattr(visionops, name), script(getattr(visionops, name))
        a1, a2 = a.clone().requires_grad_(), a.clone().requires_grad_()
        out1, out2 = fn(a1, b), sfn(a2, b)
        assert torch.equal(out1, out2), name
        out1.sum().backward()
        out2.sum().backward()
        assert torch.equal(a1.grad, a2.grad), name


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_iou_losses(name, reduction, device):
    fn, sfn = getattr(visionops, name), script(getattr(visionops, name))
    p = random_boxes(6, device=device)
    t = random_boxes(6, device=device)
    p1, p2 = p.clone().requires_grad_(), p.clone().requires_grad_()
    out1, out2 = fn(p1, t, reduction=reduction), sfn(p2, t, reduction=reduction)
    assert torch.equal(out1, out2)
    out1.sum().backward()
    out2.sum().backward()
    assert torch.equal(p1.grad, p2.grad)
    # Shapes that broadcast ([6, 4] against [1, 4]) broadcast in both.
    assert torch.equal(sfn(p, t[:1], reduction=reduction), fn(p, t[:1], reduction=reduction))
    with pytest.raises((ValueError, RuntimeError), match="Invalid reduction"):
        sfn(p, t, reduction="avg")


def test_nms_and_batched_nms(device):
    g = torch.Generator().manual_seed(3)
    boxes = random_boxes(300, size=200, scale=60, dtype=torch.float32, generator=g).to(device)
    scores = torch.rand(300, generator=g).to(device)
    idxs = torch.randint(0, 5, (300,), generator=g).to(device)
    nms, batched = script(visionops.nms), script(visionops.batched_nms)
    assert torch.equal(nms(boxes, scores, 0.5), visionops.nms(boxes, scores, 0.5))
    assert torch.equal(nms(boxes, scores, 0.5, score_threshold=0.3, max_output=10),
                       visionops.nms(boxes, scores, 0.5, score_threshold=0.3, max_output=10))
    assert torch.equal(batched(boxes, scores, idxs, 0.5), visionops.batched_nms(boxes, scores, idxs, 0.5))
    assert torch.equal(batched(boxes, scores, idxs, 0.5, max_output=7),
                       visionops.batched_nms(boxes, scores, idxs, 0.5, max_output=7))
    empty = batched(boxes[:0], scores[:0], idxs[:0], 0.5)
    assert empty.dtype == torch.int64 and empty.shape == (0,)


def test_focal_loss_and_masks_to_boxes(device):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(8, 5, generator=g).to(device)
    t = (torch.rand(8, 5, generator=g) > 0.7).float().to(device)
    focal = script(visionops.sigmoid_focal_loss)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out1, out2 = visionops.sigmoid_focal_loss(x1, t, 0.25, 2.0, "mean"), focal(x2, t, 0.25, 2.0, "mean")
    assert torch.equal(out1, out2)
    out1.backward()
    out2.backward()
    assert torch.equal(x1.grad, x2.grad)
    masks = torch.rand(3, 9, 11, generator=g).to(device) > 0.8
    assert torch.equal(script(visionops.masks_to_boxes)(masks), visionops.masks_to_boxes(masks))


def _rois_both_ways(device):
    rois = torch.tensor([[0, 1.0, 1, 9, 9], [1, 2, 3, 12, 14], [1, -3, 0, 5, 20]], device=device)
    boxes = [rois[:1, 1:], rois[1:, 1:]]
    return rois, boxes


@pytest.mark.parametrize("output_size", [3, (3, 4), [2, 5]])
def test_roi_ops(output_size, device):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 16, 16, generator=g).to(device)
    align, pool = script(visionops.roi_align), script(visionops.roi_pool)
    for rois in _rois_both_ways(device):
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        out1 = visionops.roi_align(x1, rois, output_size, 0.5, 2, True)
        out2 = align(x2, rois, output_size, 0.5, 2, True)
        assert torch.equal(out1, out2)
        out1.square().sum().backward()
        out2.square().sum().backward()
        assert torch.equal(x1.grad, x2.grad)
        x1.grad, x2.grad = None, None
        out1, out2 = visionops.roi_pool(x1, rois, output_size, 0.5), pool(x2, rois, output_size, 0.5)
        assert torch.equal(out1, out2)
        out1.sum().backward()
        out2.sum().backward()
        assert torch.equal(x1.grad, x2.grad)


@pytest.mark.parametrize("module", [visionops.RoIAlign(7, 0.25, 2), visionops.RoIAlign((3, 4), 0.5, -1, True),
                                    visionops.RoIPool(5, 0.5), visionops.RoIPool((2, 3), 0.25)], ids=repr)
def test_roi_modules(module, device):
    x = torch.randn(2, 4, 20, 20, device=device)
    scripted = script(module)
    for rois in _rois_both_ways(device):
        assert torch.equal(scripted(x, rois), module(x, rois))


def test_multi_scale_roi_align(device):
    g = torch.Generator().manual_seed(6)
    x = OrderedDict((name, torch.randn(2, 3, side, side, generator=g).to(device))
                    for name, side in (("p2", 32), ("p3", 16), ("p4", 8), ("other", 4)))
    boxes = [torch.tensor([[1.0, 1, 50, 60], [3, 3, 100, 120]], device=device),
             torch.tensor([[5.0, 5, 20, 30]], device=device)]
    shapes = [(128, 128), (120, 128)]
    eager = visionops.MultiScaleRoIAlign(["p2", "p3", "p4"], (3, 2), 2)
    scripted = script(visionops.MultiScaleRoIAlign(["p2", "p3", "p4"], (3, 2), 2))
    feats = {k: v.clone().requires_grad_() for k, v in x.items()}
    out1, out2 = eager(x, boxes, shapes), scripted(feats, boxes, shapes)
    assert torch.equal(out1, out2)
    assert scripted.scales == eager.scales == [0.25, 0.125, 0.0625]
    out2.sum().backward()
    assert feats["p2"].grad is not None and feats["other"].grad is None


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_dice_loss(mode, device):
    g = torch.Generator().manual_seed(7)
    c = 1 if mode == "binary" else 4
    x = torch.randn(2, c, 8, 8, generator=g).to(device)
    t = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float().to(device) if mode == "binary" else \
        torch.randint(0, c, (2, 8, 8), generator=g).to(device)
    eager = visionops.DiceLoss(mode, weight=torch.ones(c, device=device) if c > 1 else None)
    scripted = script(eager)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out1, out2 = eager(x1, t), scripted(x2, t)
    assert torch.equal(out1, out2)
    out1.backward()
    out2.backward()
    assert torch.equal(x1.grad, x2.grad)


class _CoderModule(torch.nn.Module):
    """BoxCoder as torchvision's detection heads hold it: an attribute of a scripted module."""

    def __init__(self, coder: visionops.BoxCoder) -> None:
        super().__init__()
        self.coder = coder

    def forward(self, codes: torch.Tensor, boxes: list[torch.Tensor], reference: list[torch.Tensor]):
        return self.coder.decode(codes, boxes), self.coder.encode(reference, boxes)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_box_coder(weights, device):
    g = torch.Generator().manual_seed(8)
    boxes = [random_boxes(4, dtype=torch.float32, generator=g).to(device),
             random_boxes(3, dtype=torch.float32, generator=g).to(device)]
    reference = [random_boxes(4, dtype=torch.float32, generator=g).to(device),
                 random_boxes(3, dtype=torch.float32, generator=g).to(device)]
    codes = torch.randn(7, 8, generator=g).to(device)
    eager, scripted = _CoderModule(visionops.BoxCoder(weights)), script(_CoderModule(visionops.BoxCoder(weights)))
    c1, c2 = codes.clone().requires_grad_(), codes.clone().requires_grad_()
    (dec1, enc1), (dec2, enc2) = eager(c1, boxes, reference), scripted(c2, boxes, reference)
    assert dec1.shape == (7, 2, 4)
    assert torch.equal(dec1, dec2)
    assert all(torch.equal(a, b) for a, b in zip(enc1, enc2, strict=True))
    dec1.square().sum().backward()
    dec2.square().sum().backward()
    assert torch.equal(c1.grad, c2.grad)
    # The class scripts on its own too, as torchvision's does.
    coder = script(visionops.BoxCoder)(weights)
    assert torch.equal(coder.decode_single(codes, boxes[0].repeat(2, 1)[:7]),
                       visionops.BoxCoder(weights).decode_single(codes, boxes[0].repeat(2, 1)[:7]))
    with pytest.raises(ValueError, match="weights must have 4 values"):
        visionops.BoxCoder((1.0, 1.0, 1.0))


def test_anchor_generator(device):
    image_list = pytest.importorskip("torchvision.models.detection.image_list",
                                     reason="scripted AnchorGenerator takes torchvision's ImageList")
    images = image_list.ImageList(torch.zeros(2, 3, 64, 80, device=device), [(64, 80), (60, 70)])
    maps = [torch.zeros(2, 8, 16, 20, device=device), torch.zeros(2, 8, 8, 10, device=device)]
    sizes, ratios = ((32, 64), (128,)), ((0.5, 1.0), (1.0, 2.0))
    eager, scripted = visionops.AnchorGenerator(sizes, ratios), script(visionops.AnchorGenerator(sizes, ratios))
    out1, out2 = eager(images, maps), scripted(images, maps)
    assert len(out1) == len(out2) == 2
    assert all(torch.equal(a, b) for a, b in zip(out1, out2, strict=True))
    assert out1[0].shape == (16 * 20 * 4 + 8 * 10 * 2, 4)
