"""sigmoid_focal_loss: torchvision's values (and error no worse than theirs
against float64), every reduction, alpha and gamma, extreme logits, dtypes,
gamma = 0 bit for bit torch's cross entropy, never above the cross entropy,
gradients, opcheck and compile."""

from __future__ import annotations

import pytest
import torch

import visionops

from ..conftest import require

tv_ops = require("torchvision.ops")


def logits_and_targets(n: int, dtype=torch.float32, device="cpu", soft=False, g=None):
    x = torch.randn(n, generator=g, dtype=torch.float64) * 4
    x[:5] = torch.tensor([0.0, 30.0, -30.0, 90.0, -90.0])  # saturated sigmoids
    t = torch.rand(n, generator=g, dtype=torch.float64) if soft else (torch.rand(n, generator=g) > 0.7).double()
    return x.to(dtype=dtype, device=device), t.to(dtype=dtype, device=device)


def test_hand_value():
    # x = 0: p = 0.5, ce = log 2; a positive: p_t = 0.5, alpha_t = 0.25, so 0.25 * log 2 * 0.25.
    x, t = torch.zeros(1), torch.ones(1)
    torch.testing.assert_close(visionops.sigmoid_focal_loss(x, t), torch.tensor([0.25 * 0.25 * 0.6931471805599453]))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.75, 1.5), (0.25, 0.5)])
@pytest.mark.parametrize("soft", [False, True])
def test_matches_torchvision(reduction, alpha, gamma, soft, device):
    g = torch.Generator().manual_seed(int(gamma * 10) + soft)
    x, t = logits_and_targets(3000, device=device, soft=soft, g=g)
    exact = tv_ops.sigmoid_focal_loss(x.double(), t.double(), alpha, gamma, reduction)
    theirs = tv_ops.sigmoid_focal_loss(x, t, alpha, gamma, reduction)
    ours = visionops.sigmoid_focal_loss(x, t, alpha, gamma, reduction)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    err = (ours.double() - exact).abs().max()
    assert err <= 2 * (theirs.double() - exact).abs().max() + 1e-7 * exact.abs().max()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(visionops.sigmoid_focal_loss(x.double(), t.double(), alpha, gamma, reduction), exact,
                               rtol=1e-12, atol=1e-14)


ALL_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gamma_zero_is_cross_entropy_bit_for_bit(dtype, reduction, device):
    # gamma = 0: alpha_t times F.binary_cross_entropy_with_logits, bit for bit, as torchvision's.
    g = torch.Generator().manual_seed(6)
    x, t = logits_and_targets(5000, dtype=dtype, device=device, g=g)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction=reduction)
    assert torch.equal(visionops.sigmoid_focal_loss(x, t, -1, 0, reduction), ce)
    for alpha in (0.0, 0.25, 0.3, 1.0):
        assert torch.equal(visionops.sigmoid_focal_loss(x, t, alpha, 0, reduction),
                           tv_ops.sigmoid_focal_loss(x, t, alpha, 0, reduction)), alpha


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("soft", [False, True])
def test_at_most_cross_entropy(dtype, soft, device):
    # (1 - p_t)^gamma <= 1 and alpha_t <= 1, so the loss never exceeds torch's
    # cross entropy, elementwise: over the whole range of logits, including
    # where torch's BCE cancels to 0 (t = 0, x << 0) and where sigmoid saturates.
    g = torch.Generator().manual_seed(7)
    x = torch.cat([torch.randn(200_000, generator=g, dtype=torch.float64) * 8,
                   torch.linspace(-40, 40, 100_001, dtype=torch.float64)]).to(dtype=dtype, device=device)
    t = torch.rand(x.shape, generator=g, dtype=torch.float64) if soft else \
        (torch.rand(x.shape, generator=g) > 0.5).double()
    t = t.to(dtype=dtype, device=device)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
    for gamma in (0.0, 1e-3, 0.5, 1.0, 2.0, 3.0):
        for alpha in (-1.0, 0.25):
            loss = visionops.sigmoid_focal_loss(x, t, alpha, gamma)
            assert not (loss > ce).any(), (gamma, alpha, x[loss > ce][:5])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(dtype, device):
    g = torch.Generator().manual_seed(4)
    x, t = logits_and_targets(2000, dtype=dtype, device=device, g=g)
    exact = tv_ops.sigmoid_focal_loss(x.double(), t.double())
    theirs = tv_ops.sigmoid_focal_loss(x.float(), t.float()).to(dtype)  # torchvision in float, rounded
    ours = visionops.sigmoid_focal_loss(x, t)
    assert ours.dtype == dtype
    assert (ours.double() - exact).abs().max() <= 2 * (theirs.double() - exact).abs().max()


def test_gradients(device):
    g = torch.Generator().manual_seed(5)
    for gamma in (2.0, 1.5, 0.0):
        x, t = logits_and_targets(40, dtype=torch.float64, device=device, soft=True, g=g)
        x = x.clamp(-8, 8).requires_grad_()
        t.requires_grad_()
        for reduction in ("none", "mean", "sum"):
            assert torch.autograd.gradcheck(
                lambda a, b, r=reduction, gm=gamma: visionops.sigmoid_focal_loss(a, b, 0.25, gm, r), (x, t))
        out = visionops.sigmoid_focal_loss(x, t, 0.25, gamma, "sum")
        ref = tv_ops.sigmoid_focal_loss(x, t, 0.25, gamma, "sum")
        for a, b in zip(torch.autograd.grad(out, (x, t)), torch.autograd.grad(ref, (x, t))):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [2.0, 1.5])
def test_targets_gradient_only_when_asked(gamma, dtype, device):
    # Targets rarely require a gradient; then the backward neither computes
    # nor allocates theirs (targets_grad=False: an empty second output), and
    # the inputs' gradient is the same bits either way. 1000 elements: 62
    # vector blocks of 16 and a scalar tail of 8 for float32.
    g = torch.Generator().manual_seed(int(gamma * 10))
    x, t = logits_and_targets(1000, dtype=dtype, device=device, soft=True, g=g)
    back = torch.ops.visionops._sigmoid_focal_loss_backward
    for reduction, grad in (("none", torch.rand(1000, generator=g, dtype=dtype).to(device)),
                            ("mean", torch.tensor(0.7, dtype=dtype, device=device))):
        gx_both, gt_both = back(grad, x, t, 0.25, gamma, reduction)
        gx_only, gt_none = back(grad, x, t, 0.25, gamma, reduction, False)
        assert gt_both.shape == t.shape and gt_none.shape == (0,)
        assert torch.equal(gx_only, gx_both)
        torch.library.opcheck(back.default, (grad, x, t, 0.25, gamma, reduction, False))
    xa = x.clone().requires_grad_()
    (gx_auto,) = torch.autograd.grad(visionops.sigmoid_focal_loss(xa, t, 0.25, gamma, "sum"), xa)
    ta = t.clone().requires_grad_()
    gx_with, gt_with = torch.autograd.grad(visionops.sigmoid_focal_loss(xa, ta, 0.25, gamma, "sum"), (xa, ta))
    assert torch.equal(gx_auto, gx_with) and gt_with.shape == t.shape
    ref = tv_ops.sigmoid_focal_loss(xa, ta, 0.25, gamma, "sum")
    for a, b in zip((gx_with, gt_with), torch.autograd.grad(ref, (xa, ta))):
        torch.testing.assert_close(a, b, rtol=1e-4 if dtype == torch.float32 else 1e-7, atol=1e-6)


def test_shapes_empty_and_errors(device):
    x = torch.randn(2, 3, 4, device=device)
    t = (torch.rand(2, 3, 4, device=device) > 0.5).float()
    assert visionops.sigmoid_focal_loss(x, t).shape == (2, 3, 4)
    assert torch.equal(visionops.sigmoid_focal_loss(x.transpose(0, 2), t.transpose(0, 2)),
                       visionops.sigmoid_focal_loss(x, t).transpose(0, 2))  # non-contiguous
    e = torch.zeros(0, device=device)
    assert visionops.sigmoid_focal_loss(e, e, reduction="sum").item() == 0
    assert visionops.sigmoid_focal_loss(e, e, reduction="mean").isnan()  # as torch's mean of nothing
    with pytest.raises(ValueError, match=r"visionops.sigmoid_focal_loss: targets must have the shape of inputs, "
                                         r"\[2, 3, 4\], got \[2, 3\]"):
        visionops.sigmoid_focal_loss(x, t[:, :, 0])
    with pytest.raises(ValueError, match="visionops.sigmoid_focal_loss: Invalid reduction"):
        visionops.sigmoid_focal_loss(x, t, reduction="avg")
    with pytest.raises(RuntimeError, match="visionops.sigmoid_focal_loss: targets must be a floating point tensor"):
        visionops.sigmoid_focal_loss(x, t.long())


@pytest.mark.parametrize("alpha", [-0.5, 1.5, -2.0, float("nan")])
def test_invalid_alpha_raises_like_torchvision(alpha, device):
    # torchvision accepts alpha in [0, 1] or -1, and raises ValueError with
    # "Invalid alpha value" otherwise; code that checks the error matches it.
    x = torch.randn(4, 3, device=device)
    t = torch.zeros(4, 3, device=device)
    with pytest.raises(ValueError, match="Invalid alpha value"):
        tv_ops.sigmoid_focal_loss(x.cpu(), t.cpu(), alpha)
    with pytest.raises(ValueError, match=r"visionops.sigmoid_focal_loss: Invalid alpha value"):
        visionops.sigmoid_focal_loss(x, t, alpha)
    for ok in (0.0, 1.0, -1.0):
        torch.testing.assert_close(visionops.sigmoid_focal_loss(x, t, ok).cpu(),
                                   tv_ops.sigmoid_focal_loss(x.cpu(), t.cpu(), ok), rtol=1e-5, atol=1e-6)


def test_opcheck_and_compile(device):
    g = torch.Generator().manual_seed(6)
    x, t = logits_and_targets(50, dtype=torch.float64, device=device, soft=True, g=g)
    x.requires_grad_()
    for reduction in ("none", "mean"):
        torch.library.opcheck(torch.ops.visionops.sigmoid_focal_loss.default, (x, t, 0.25, 2.0, reduction))
    torch._dynamo.reset()
    f = torch.compile(lambda a: visionops.sigmoid_focal_loss(a, t, reduction="mean"), fullgraph=True,
                      backend="aot_eager")
    (got,) = torch.autograd.grad(f(x), x)
    (expected,) = torch.autograd.grad(visionops.sigmoid_focal_loss(x, t, reduction="mean"), x)
    torch.testing.assert_close(got, expected)
    torch._dynamo.reset()
