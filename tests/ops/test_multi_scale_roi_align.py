"""MultiScaleRoIAlign in one native call: against torchvision's on a 4-level
FPN (forward and backward, bitwise in float32), the float64 reference, odd
boxes, layouts, gradcheck and dtypes."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

import visionops

from .. import references as ref
from ..conftest import require, requires_cuda

tv_ops = require("torchvision.ops")

IMAGE = (160, 224)


def fpn(batch: int, channels: int, dtype=torch.float32, device="cpu", g=None, levels=range(2, 6)) -> OrderedDict:
    return OrderedDict(
        (f"p{lvl}", torch.randn(batch, channels, IMAGE[0] >> lvl, IMAGE[1] >> lvl, generator=g, dtype=dtype).to(device))
        for lvl in levels
    )


def boxes_per_image(batch: int, k: int, dtype=torch.float32, device="cpu", g=None) -> list[torch.Tensor]:
    out = []
    for _ in range(batch):
        centre = torch.rand(k, 2, generator=g, dtype=torch.float64) * torch.tensor([IMAGE[1], IMAGE[0]])
        side = 4 + torch.rand(k, 2, generator=g, dtype=torch.float64) * 300
        b = torch.cat([centre - side / 2, centre + side / 2], dim=1)
        b[0] = torch.tensor([10.0, 10.0, 5.0, 30.0])  # negative area: a NaN level, pools zeros
        b[1] = torch.tensor([20.0, 20.0, 20.0, 20.0])  # zero area: the finest level
        b[2] = torch.tensor([-1e4, -1e4, 1e4, 1e4])  # enormous: the coarsest level
        out.append(b.to(dtype=dtype, device=device))
    return out


def test_matches_torchvision_forward_and_backward():
    g = torch.Generator().manual_seed(0)
    feats = fpn(2, 8, g=g)
    boxes = boxes_per_image(2, 60, g=g)
    shapes = [IMAGE, IMAGE]
    ours_m = visionops.MultiScaleRoIAlign(list(feats), 7, 2)
    theirs_m = tv_ops.MultiScaleRoIAlign(list(feats), 7, 2)
    assert repr(ours_m) == repr(theirs_m)
    leaves = [v.requires_grad_() for v in feats.values()]
    ours = ours_m(feats, boxes, shapes)
    theirs = theirs_m(feats, boxes, shapes)
    assert ours_m.scales == theirs_m.scales
    assert torch.equal(ours, theirs)
    assert torch.equal(ours[0], torch.zeros_like(ours[0]))  # the negative-area box
    grad = torch.randn(ours.shape, generator=g)
    for a, b in zip(torch.autograd.grad(ours, leaves, grad), torch.autograd.grad(theirs, leaves, grad)):
        assert torch.equal(a, b)


def test_single_level_and_selected_maps():
    g = torch.Generator().manual_seed(1)
    feats = fpn(1, 4, g=g)
    boxes = boxes_per_image(1, 20, g=g)
    for names in (["p3"], ["p2", "p4"]):
        ours = visionops.MultiScaleRoIAlign(names, (3, 2), -1)(feats, boxes, [IMAGE])
        theirs = tv_ops.MultiScaleRoIAlign(names, (3, 2), -1)(feats, boxes, [IMAGE])
        assert torch.equal(ours, theirs)


def test_matches_reference(device):
    g = torch.Generator().manual_seed(2)
    feats = list(fpn(2, 3, dtype=torch.float64, g=g).values())
    boxes = boxes_per_image(2, 12, dtype=torch.float64, g=g)
    scales = [2.0**-lvl for lvl in range(2, 6)]
    expected = ref.multi_scale_roi_align(feats, boxes, (2, 2), scales, 2)
    ours = visionops.multi_scale_roi_align([f.to(device) for f in feats], [b.to(device) for b in boxes], 2, scales, 2)
    torch.testing.assert_close(ours.cpu(), expected, rtol=1e-12, atol=1e-12)


def test_bad_batch_index_pools_zeros(device):
    # As roi_align: a RoI whose batch index is not an image pools zeros and
    # passes no gradient, on every device.
    g = torch.Generator().manual_seed(21)
    feats = [f.requires_grad_() for f in fpn(2, 3, device=device, g=g).values()]
    scales = [2.0**-lvl for lvl in range(2, 6)]
    rois = torch.tensor([[0.0, 10, 10, 90, 80], [2.0, 10, 10, 90, 80], [float("nan"), 5, 5, 60, 60],
                         [1.0, 20, 30, 150, 120]], device=device)
    out = torch.ops.visionops.multi_scale_roi_align(feats, rois, scales, 3, 3, 2)
    assert torch.equal(out[1:3], torch.zeros_like(out[1:3]))
    good = rois[[0, 3]]
    want = torch.ops.visionops.multi_scale_roi_align(feats, good, scales, 3, 3, 2)
    assert torch.equal(out[[0, 3]], want)
    for a, b in zip(torch.autograd.grad(out.sum(), feats), torch.autograd.grad(want.sum(), feats), strict=True):
        assert torch.equal(a, b)


@requires_cuda
def test_cuda_backward_deterministic_mode():
    # torch.use_deterministic_algorithms(True) selects the gather backward:
    # the same bits run to run and in both layouts, and the CPU's values.
    g = torch.Generator().manual_seed(22)
    feats = list(fpn(2, 16, g=g).values())
    scales = [2.0**-lvl for lvl in range(2, 6)]
    rois = torch.cat([torch.cat([torch.full((40, 1), float(b)), bx], dim=1)
                      for b, bx in enumerate(boxes_per_image(2, 40, g=g))])
    grad = torch.randn(80, 16, 7, 7, generator=g)
    heights, widths = [f.shape[2] for f in feats], [f.shape[3] for f in feats]
    backward = torch.ops.visionops._multi_scale_roi_align_backward
    cpu = backward(grad, rois, scales, heights, widths, 2, 16, 2, 224, 4, 1e-6, [False] * 4)
    args = (grad.cuda(), rois.cuda(), scales, heights, widths, 2, 16, 2, 224, 4, 1e-6)
    was, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        runs = [backward(*args, [cl] * 4) for cl in (False, False, True)]
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)
    for level in range(4):
        assert torch.equal(runs[0][level], runs[1][level])
        assert torch.equal(runs[0][level], runs[2][level].contiguous())
        torch.testing.assert_close(runs[0][level].cpu(), cpu[level], rtol=1e-4, atol=1e-5)
    atomic = backward(*args, [False] * 4)  # the default: atomics, the same values to rounding
    for level in range(4):
        torch.testing.assert_close(atomic[level].cpu(), cpu[level], rtol=1e-4, atol=1e-5)


def test_gradcheck(device):
    g = torch.Generator().manual_seed(3)
    feats = [f.requires_grad_() for f in fpn(1, 2, dtype=torch.float64, device=device, g=g, levels=(4, 5)).values()]
    boxes = [torch.tensor([[10.0, 10.0, 50.0, 40.0], [0.0, 0.0, 200.0, 150.0]], dtype=torch.float64, device=device)]
    scales = [2.0**-4, 2.0**-5]
    assert torch.autograd.gradcheck(
        lambda a, b: visionops.multi_scale_roi_align([a, b], boxes, 2, scales, 2, canonical_scale=64), feats
    )


def test_layouts_dtypes_and_empty(device):
    g = torch.Generator().manual_seed(4)
    feats = fpn(2, 6, device=device, g=g)
    boxes = boxes_per_image(2, 10, device=device, g=g)
    scales = [2.0**-lvl for lvl in range(2, 6)]
    first = [f.clone().requires_grad_() for f in feats.values()]
    base = visionops.multi_scale_roi_align(first, boxes, 3, scales, 2)
    grad = torch.randn(base.shape, generator=g).to(device)
    base.backward(grad)
    # Channels-last maps: the same values forward, and the same gradient
    # values, laid out channels-last.
    cl = [f.detach().contiguous(memory_format=torch.channels_last).requires_grad_() for f in feats.values()]
    out = visionops.multi_scale_roi_align(cl, boxes, 3, scales, 2)
    torch.testing.assert_close(out, base, rtol=0, atol=0)
    out.backward(grad)
    for f, f0 in zip(cl, first):
        assert f.grad.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(f.grad, f0.grad, rtol=1e-6, atol=1e-6)
    # Half and bfloat16 are computed in float32 and rounded once: the float32
    # result on the same (rounded) inputs, rounded to the dtype.
    for dtype in (torch.float16, torch.bfloat16):
        low_feats = [f.to(dtype) for f in feats.values()]
        low_boxes = [b.to(dtype) for b in boxes]
        low = visionops.multi_scale_roi_align(low_feats, low_boxes, 3, scales, 2)
        want = visionops.multi_scale_roi_align([f.float() for f in low_feats], [b.float() for b in low_boxes], 3,
                                               scales, 2).to(dtype)
        assert low.dtype == dtype
        exact = {"rtol": 0, "atol": 0} if device == "cpu" else {}
        torch.testing.assert_close(low, want, **exact)
    empty = visionops.multi_scale_roi_align(list(feats.values()), [b[:0] for b in boxes], 3, scales, 2)
    assert empty.shape == (0, 6, 3, 3)


def test_errors():
    f = [torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 4, 4)]
    b = [torch.zeros(1, 4)]
    with pytest.raises(ValueError, match="visionops.multi_scale_roi_align: spatial_scales must have one scale per"):
        visionops.multi_scale_roi_align(f, b, 2, [0.5], 2)
    with pytest.raises(RuntimeError, match="every feature map must have the batch size and channels of features"):
        visionops.multi_scale_roi_align([f[0], torch.zeros(1, 3, 4, 4)], b, 2, [0.5, 0.25], 2)
    with pytest.raises(ValueError, match="spatial_scales must be positive and finite, got -0.25 at level 1"):
        visionops.multi_scale_roi_align(f, b, 2, [0.5, -0.25], 2)
    with pytest.raises(AssertionError, match="each tensor in a list of boxes must have shape"):
        visionops.multi_scale_roi_align(f, [torch.zeros(1, 5)], 2, [0.5, 0.25], 2)


def test_opcheck_and_compile(device):
    g = torch.Generator().manual_seed(5)
    feats = [f.requires_grad_() for f in fpn(2, 3, dtype=torch.float64, device=device, g=g).values()]
    boxes = boxes_per_image(2, 8, dtype=torch.float64, device=device, g=g)
    rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)])
    scales = [2.0**-lvl for lvl in range(2, 6)]
    torch.library.opcheck(torch.ops.visionops.multi_scale_roi_align.default, (feats, rois, scales, 2, 2, 2))
    torch._dynamo.reset()

    def pool(*maps):
        return visionops.multi_scale_roi_align(list(maps), boxes, 2, scales, 2).square().sum()

    compiled = torch.compile(pool, fullgraph=True, backend="aot_eager")
    got = torch.autograd.grad(compiled(*feats), feats)
    expected = torch.autograd.grad(pool(*feats), feats)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
    torch._dynamo.reset()
