"""The IoU losses: generalized_box_iou_loss, distance_box_iou_loss,
complete_box_iou_loss, forward and fused backward."""

from __future__ import annotations

import math

import pytest
import torch

import visionops

from .. import references as ref
from ..conftest import adversarial_boxes, random_boxes, require, requires_cuda

tv_ops = require("torchvision.ops")

LOSSES = {
    "giou": (visionops.generalized_box_iou_loss, tv_ops.generalized_box_iou_loss),
    "diou": (visionops.distance_box_iou_loss, tv_ops.distance_box_iou_loss),
    "ciou": (visionops.complete_box_iou_loss, tv_ops.complete_box_iou_loss),
}
VARIANTS = list(LOSSES)
REDUCTIONS = ["none", "mean", "sum"]


def ours(variant, *args, **kw):
    return LOSSES[variant][0](*args, **kw)


def theirs(variant, *args, **kw):
    return LOSSES[variant][1](*args, **kw)


def test_hand_computed():
    # p = [0, 0, 2, 2], t = [1, 1, 4, 3]: inter 1, union 9, enclosing 4 x 3.
    p = torch.tensor([0.0, 0.0, 2.0, 2.0], dtype=torch.float64)
    t = torch.tensor([1.0, 1.0, 4.0, 3.0], dtype=torch.float64)
    eps = 1e-7
    iou = 1 / (9 + eps)
    giou_loss = 1 - iou + (12 - 9) / (12 + eps)
    diou_loss = 1 - iou + 3.25 / (25 + eps)
    v = 4 / math.pi**2 * (math.atan(3 / 2) - math.atan(2 / 2)) ** 2
    ciou_loss = diou_loss + v / (1 - iou + v + eps) * v
    assert visionops.generalized_box_iou_loss(p, t).item() == pytest.approx(giou_loss, rel=1e-12)
    assert visionops.distance_box_iou_loss(p, t).item() == pytest.approx(diou_loss, rel=1e-12)
    assert visionops.complete_box_iou_loss(p, t).item() == pytest.approx(ciou_loss, rel=1e-12)
    # A perfect prediction has zero loss.
    for variant in VARIANTS:
        assert ours(variant, p, p).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(4,), (10, 4), (3, 5, 4)])
def test_float64_matches_reference(variant, reduction, shape, device):
    p = random_boxes(math.prod(shape[:-1])).reshape(shape).to(device)
    t = random_boxes(math.prod(shape[:-1])).reshape(shape).to(device)
    got = ours(variant, p, t, reduction=reduction)
    want = ref.box_iou_loss(variant, p.cpu(), t.cpu(), reduction=reduction)
    assert got.shape == want.shape and got.dtype == torch.float64
    torch.testing.assert_close(got.cpu(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torchvision_forward_and_backward(variant, reduction, dtype, device):
    p = torch.cat([adversarial_boxes(dtype)[:12], random_boxes(50, size=1000, scale=300, dtype=dtype)])
    t = torch.cat([adversarial_boxes(dtype)[:12].flip(0), random_boxes(50, size=1000, scale=300, dtype=dtype)])
    p1, t1 = p.clone().to(device).requires_grad_(), t.clone().to(device).requires_grad_()
    p2, t2 = p.clone().requires_grad_(), t.clone().requires_grad_()
    got = ours(variant, p1, t1, reduction=reduction)
    want = theirs(variant, p2, t2, reduction=reduction)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-10}
    torch.testing.assert_close(got.cpu(), want, equal_nan=True, **tol)
    gout = torch.randn(want.shape, dtype=dtype)
    (got * gout.to(device)).nan_to_num().sum().backward()
    (want * gout).nan_to_num().sum().backward()
    torch.testing.assert_close(p1.grad.cpu(), p2.grad, equal_nan=True, **tol)
    torch.testing.assert_close(t1.grad.cpu(), t2.grad, equal_nan=True, **tol)


@pytest.mark.parametrize("variant", VARIANTS)
def test_eps_is_used_as_torchvision_does(variant):
    p = random_boxes(20)
    t = random_boxes(20)
    for eps in (1e-7, 1e-2, 1.0):
        torch.testing.assert_close(ours(variant, p, t, eps=eps), theirs(variant, p, t, eps=eps), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(variant, dtype, device):
    p = random_boxes(64, size=200, scale=80, dtype=dtype, device=device).requires_grad_()
    t = random_boxes(64, size=200, scale=80, dtype=dtype, device=device)
    got = ours(variant, p, t)
    assert got.dtype == torch.float32  # as torchvision: computed and returned in float32
    exact = ref.box_iou_loss(variant, p.detach().cpu(), t.cpu())
    err_ours = (got.detach().cpu().double() - exact).abs().max().item()
    err_tv = (theirs(variant, p.detach().cpu(), t.cpu()).double() - exact).abs().max().item()
    assert err_ours <= 2 * err_tv + 1e-6
    got.sum().backward()
    assert p.grad.dtype == dtype


@pytest.mark.parametrize("variant", VARIANTS)
def test_integer_boxes(variant, device):
    p = random_boxes(20, size=100, scale=30).round().long()
    t = random_boxes(20, size=100, scale=30).round().long()
    got = ours(variant, p.to(device), t.to(device), reduction="mean")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.cpu(), theirs(variant, p, t, reduction="mean"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_broadcast_and_non_contiguous(variant):
    p = random_boxes(8).t().contiguous().t()  # column-major
    t = random_boxes(1)[0]  # one target for all: broadcast
    assert not p.is_contiguous()
    got = ours(variant, p, t)
    want = ref.box_iou_loss(variant, p, t.expand(8, 4))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
def test_empty(variant, device):
    p = torch.zeros(0, 4, device=device, requires_grad=True)
    assert ours(variant, p, p.detach(), reduction="none").shape == (0,)
    for reduction in ("mean", "sum"):
        out = ours(variant, p, p.detach(), reduction=reduction)
        assert out.shape == () and out.item() == 0.0
        out.backward()
        assert p.grad.shape == (0, 4)


def test_nan_semantics():
    nan = float("nan")
    p = torch.tensor([[0.0, 0.0, 10.0, 10.0], [nan, 0.0, 10.0, 10.0]])
    t = torch.tensor([[1.0, 1.0, 9.0, 9.0], [1.0, 1.0, 9.0, 9.0]])
    for variant in VARIANTS:
        loss = ours(variant, p, t)
        assert not loss[0].isnan() and loss[1].isnan()
        assert ours(variant, p, t, reduction="mean").isnan()


# CIoU's alpha is a constant to autograd (as in torchvision), so CIoU is
# checked against the float64 reference's autograd rather than gradcheck.
@pytest.mark.parametrize("variant", ["giou", "diou"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(variant, reduction, device):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        p = random_boxes(6, generator=g).to(device).requires_grad_()
        t = random_boxes(6, generator=g).to(device).requires_grad_()
        assert torch.autograd.gradcheck(lambda a, b: ours(variant, a, b, reduction=reduction), (p, t))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_matches_reference_autograd(variant, reduction, device):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        p = random_boxes(6, generator=g).to(device).requires_grad_()
        t = random_boxes(6, generator=g).to(device).requires_grad_()
        got = torch.autograd.grad(ours(variant, p, t, reduction=reduction).sum(), (p, t))
        p_ref, t_ref = p.detach().cpu().requires_grad_(), t.detach().cpu().requires_grad_()
        want = torch.autograd.grad(ref.box_iou_loss(variant, p_ref, t_ref, reduction=reduction).sum(), (p_ref, t_ref))
        for x, y in zip(got, want):
            torch.testing.assert_close(x.cpu(), y, rtol=1e-10, atol=1e-12)


def test_reduction_is_deterministic_across_thread_counts():
    p, t = random_boxes(50_000, dtype=torch.float32), random_boxes(50_000, dtype=torch.float32)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(visionops.complete_box_iou_loss(p, t, reduction="sum"))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_opcheck(variant, reduction, device):
    op = {
        "giou": torch.ops.visionops.generalized_box_iou_loss.default,
        "diou": torch.ops.visionops.distance_box_iou_loss.default,
        "ciou": torch.ops.visionops.complete_box_iou_loss.default,
    }[variant]
    p = random_boxes(7, device=device).requires_grad_()
    t = random_boxes(7, device=device).requires_grad_()
    torch.library.opcheck(op, (p, t, reduction, 1e-7))


@requires_cuda
def test_cpu_cuda_parity():
    p = random_boxes(1000, size=500, scale=100, dtype=torch.float32).requires_grad_()
    t = random_boxes(1000, size=500, scale=100, dtype=torch.float32)
    pc = p.detach().cuda().requires_grad_()
    for variant in VARIANTS:
        p.grad = pc.grad = None
        a, b = ours(variant, p, t), ours(variant, pc, t.cuda())
        torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-6)
        a.sum().backward()
        b.sum().backward()
        torch.testing.assert_close(pc.grad.cpu(), p.grad, rtol=1e-4, atol=1e-6)
