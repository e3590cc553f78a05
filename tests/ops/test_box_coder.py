"""Box coding: a hand example, torchvision's BoxCoder (values and layout),
the float64 computation, low precision, gradients, opcheck and compile."""

from __future__ import annotations

import math

import pytest
import torch

import visionops

from ..conftest import require

tv_utils = require("torchvision.models.detection._utils")

WEIGHTS = [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]


def anchors(n: int, dtype=torch.float32, device="cpu", g=None) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 800
    wh = 4 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 300
    return torch.cat([xy, xy + wh], dim=1).to(dtype=dtype, device=device)


def codes(n: int, c: int, dtype=torch.float32, device="cpu", g=None) -> torch.Tensor:
    x = torch.randn(n, 4 * c, generator=g, dtype=torch.float64)
    x[::7, 2::4] += 6.0  # beyond bbox_xform_clip: capped before exp
    return x.to(dtype=dtype, device=device)


def test_hand_example():
    # Anchor centred at (100, 100), 50 x 50. The centre moves by 0.2 and -0.1
    # anchor widths; the width doubles (log 2), the height stays.
    anchor = torch.tensor([[75.0, 75.0, 125.0, 125.0]])
    code = torch.tensor([[0.2, -0.1, math.log(2.0), 0.0]])
    box = visionops.decode_boxes(code, anchor, (1.0, 1.0, 1.0, 1.0))
    torch.testing.assert_close(box, torch.tensor([[60.0, 70.0, 160.0, 120.0]]))
    torch.testing.assert_close(visionops.encode_boxes(box, anchor, (1.0, 1.0, 1.0, 1.0)), code)


@pytest.mark.parametrize("weights", WEIGHTS)
# 16 and more classes: the CPU vector loop takes a run of rows 16 codes at a
# time, a group spanning two rows where C is not a multiple of 16.
@pytest.mark.parametrize("classes", [1, 3, 16, 17, 91])
def test_decode_matches_torchvision(weights, classes, device):
    g = torch.Generator().manual_seed(classes)
    a, c = anchors(500, device=device, g=g), codes(500, classes, device=device, g=g)
    ours = visionops.BoxCoder(weights)
    theirs = tv_utils.BoxCoder(weights)
    # exp is a polynomial here and Sleef's in torch: an ulp or two apart, and
    # x1 = centre - half width cancels. So: no further from the float64 result
    # than torchvision is (twice, for rounding luck), and close to it.
    exact = theirs.decode_single(c.double(), a.double())
    mine, tv = ours.decode_single(c, a), theirs.decode_single(c, a)
    assert (mine.double() - exact).abs().max() <= 2 * (tv.double() - exact).abs().max()
    torch.testing.assert_close(mine, tv, rtol=1e-6, atol=1e-3)
    # The batched form (a list of per-image boxes) against torchvision's, by
    # value, with the same bound against float64 as decode_single.
    split = [a[:200], a[200:]]
    batched, tv_batched = ours.decode(c, split), theirs.decode(c, split)
    assert batched.shape == tv_batched.shape == (500, classes, 4)
    exact_batched = theirs.decode(c.double(), [b.double() for b in split])
    assert (batched.double() - exact_batched).abs().max() <= 2 * (tv_batched.double() - exact_batched).abs().max()
    torch.testing.assert_close(batched, tv_batched, rtol=1e-6, atol=1e-3)
    assert torch.equal(batched, mine.reshape(500, -1, 4))
    a64, c64 = a.double(), c.double()
    torch.testing.assert_close(ours.decode_single(c64, a64), theirs.decode_single(c64, a64), rtol=1e-13, atol=1e-10)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_encode_matches_torchvision(weights, device):
    g = torch.Generator().manual_seed(11)
    gt, prop = anchors(400, device=device, g=g), anchors(400, device=device, g=g)
    ours = visionops.BoxCoder(weights)
    theirs = tv_utils.BoxCoder(weights)
    exact = theirs.encode_single(gt.double(), prop.double())
    mine, tv = ours.encode_single(gt, prop), theirs.encode_single(gt, prop)
    assert (mine.double() - exact).abs().max() <= 2 * (tv.double() - exact).abs().max()
    torch.testing.assert_close(mine, tv, rtol=4e-6, atol=1e-5)
    for a, b in zip(ours.encode([gt[:100], gt[100:]], [prop[:100], prop[100:]]),
                    theirs.encode([gt[:100], gt[100:]], [prop[:100], prop[100:]])):
        torch.testing.assert_close(a, b, rtol=4e-6, atol=1e-5)
    torch.testing.assert_close(ours.encode_single(gt.double(), prop.double()),
                               theirs.encode_single(gt.double(), prop.double()), rtol=1e-13, atol=1e-12)
    # encode inverts decode
    dec = ours.decode_single(ours.encode_single(gt.double(), prop.double()), prop.double())
    torch.testing.assert_close(dec, gt.double(), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(dtype, device):
    # Computed in float32: within twice the error of torchvision's own
    # computation in that dtype, against float64.
    g = torch.Generator().manual_seed(3)
    a, c = anchors(300, dtype=dtype, device=device, g=g), codes(300, 2, dtype=dtype, device=device, g=g)
    exact = tv_utils.BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(c.double(), a.double())
    theirs = tv_utils.BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(c, a)
    ours = visionops.decode_boxes(c, a, (10.0, 10.0, 5.0, 5.0))
    assert ours.dtype == dtype
    assert (ours.double() - exact).abs().max() <= 2 * (theirs.double() - exact).abs().max()


def test_special_values_and_empty(device):
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3, device=device)
    c = torch.tensor([[float("nan"), 0, 0, 0], [0, 0, 100.0, 0], [0, 0, -200.0, 0]], device=device)
    out = visionops.decode_boxes(c, a, (1.0, 1.0, 1.0, 1.0))
    assert out[0, 0].isnan() and out[0, 2].isnan() and torch.isfinite(out[0, 1::2]).all()
    clip = math.log(1000.0 / 16)
    torch.testing.assert_close(out[1, 2] - out[1, 0], torch.tensor(math.exp(clip) * 10, device=device))  # capped
    assert out[2, 2] - out[2, 0] == 0  # exp(-200) underflows to 0
    assert visionops.decode_boxes(c[:0], a[:0], (1.0,) * 4).shape == (0, 4)
    assert visionops.encode_boxes(a[:0], a[:0], (1.0,) * 4).shape == (0, 4)
    # A degenerate proposal gives infinite or NaN codes, as in torchvision.
    e = visionops.encode_boxes(a[:1], torch.tensor([[5.0, 5.0, 5.0, 5.0]], device=device), (1.0,) * 4)
    assert not torch.isfinite(e).any()


def test_gradients(device):
    g = torch.Generator().manual_seed(5)
    a = anchors(6, dtype=torch.float64, device=device, g=g).requires_grad_()
    c = codes(6, 2, dtype=torch.float64, device=device, g=g)
    c[0, 2] = 5.0  # clipped: no gradient through dw
    c.requires_grad_()
    w = (10.0, 10.0, 5.0, 5.0)
    assert torch.autograd.gradcheck(lambda x, y: visionops.decode_boxes(x, y, w), (c, a))
    gt = anchors(6, dtype=torch.float64, device=device, g=g).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: visionops.encode_boxes(x, y, w), (gt, a))
    # against autograd through torchvision's formulas
    out = visionops.decode_boxes(c, a, w)
    ref = tv_utils.BoxCoder(w).decode_single(c, a)
    grad = torch.randn_like(out)
    for x, y in zip(torch.autograd.grad(out, (c, a), grad), torch.autograd.grad(ref, (c, a), grad)):
        torch.testing.assert_close(x, y)


def test_errors():
    a, c = torch.zeros(3, 4), torch.zeros(3, 6)
    with pytest.raises(RuntimeError, match=r"visionops.decode_boxes: rel_codes must have shape \[N, 4 \* C\] "
                                           r"\(a multiple of 4 per box\), got \[3, 6\]"):
        visionops.decode_boxes(c, a, (1.0,) * 4)
    with pytest.raises(RuntimeError, match=r"visionops.decode_boxes: boxes must have shape \[3, 4\]"):
        visionops.decode_boxes(torch.zeros(3, 8), torch.zeros(2, 4), (1.0,) * 4)
    with pytest.raises(ValueError, match="visionops.decode_boxes: weights must hold 4 values"):
        visionops.decode_boxes(torch.zeros(3, 4), a, (1.0,) * 3)
    with pytest.raises(RuntimeError, match="visionops.encode_boxes: reference_boxes and proposals must have the same "
                                           "dtype, got Float and Double"):
        visionops.encode_boxes(a, a.double(), (1.0,) * 4)
    for dev in ("meta",):
        with pytest.raises(RuntimeError, match=r"rel_codes must have shape \[N, 4 \* C\]"):
            visionops.decode_boxes(c.to(dev), a.to(dev), (1.0,) * 4)


def test_opcheck_and_compile(device):
    g = torch.Generator().manual_seed(7)
    a = anchors(20, dtype=torch.float64, device=device, g=g).requires_grad_()
    c = codes(20, 2, dtype=torch.float64, device=device, g=g).requires_grad_()
    w = [10.0, 10.0, 5.0, 5.0]
    torch.library.opcheck(torch.ops.visionops.decode_boxes.default, (c, a, w, math.log(1000.0 / 16)))
    torch.library.opcheck(torch.ops.visionops.encode_boxes.default, (a.detach(), a.detach() + 1, w),
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
    torch._dynamo.reset()
    coder = visionops.BoxCoder(tuple(w))
    f = torch.compile(lambda x, y: coder.decode_single(x, y).square().sum(), fullgraph=True, backend="aot_eager")
    got = torch.autograd.grad(f(c, a), (c, a))
    expected = torch.autograd.grad(coder.decode_single(c, a).square().sum(), (c, a))
    for x, y in zip(got, expected):
        torch.testing.assert_close(x, y)
    torch._dynamo.reset()
