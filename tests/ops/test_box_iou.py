"""The pairwise IoU family: box_iou, generalized_box_iou, distance_box_iou,
complete_box_iou. Checked against hand-computed values, our float64
reference, torchvision, gradcheck, opcheck and across devices."""

from __future__ import annotations

import math

import pytest
import torch

import visionops

from .. import references as ref
from ..conftest import adversarial_boxes, random_boxes, require, requires_cuda, torchvision_supports

tv_ops = require("torchvision.ops")

OPS = {
    "iou": (visionops.box_iou, tv_ops.box_iou),
    "giou": (visionops.generalized_box_iou, tv_ops.generalized_box_iou),
    "diou": (visionops.distance_box_iou, tv_ops.distance_box_iou),
    "ciou": (visionops.complete_box_iou, tv_ops.complete_box_iou),
}
VARIANTS = list(OPS)
LOW_PRECISION = [torch.float16, torch.bfloat16]
INTEGER = [torch.int64, torch.int32, torch.int16, torch.uint8]


def ours(variant, a, b, **kw):
    return OPS[variant][0](a, b, **kw)


def theirs(variant, a, b, **kw):
    return OPS[variant][1](a, b, **kw)


# ----------------------------------------------------------------- golden values


def test_lecture_notes_worked_example():
    # The lecture notes' IoU example: two 100 x 100 boxes overlapping in a 50 x 50 square: intersection 2,500,
    # union 10,000 + 10,000 - 2,500 = 17,500, IoU 1/7.
    a = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    b = torch.tensor([[50.0, 50.0, 150.0, 150.0]])
    iou = visionops.box_iou(a, b)
    assert iou.shape == (1, 1)
    assert iou.item() == pytest.approx(1 / 7, rel=1e-7)  # 2,500 / 17,500


def test_hand_computed_family():
    # a = [0, 0, 2, 2], b = [1, 1, 4, 3]: inter 1, union 4 + 6 - 1 = 9.
    # Enclosing [0, 0, 4, 3]: area 12, diagonal^2 25. Centres (1, 1), (2.5, 2):
    # distance^2 = 2.25 + 1 = 3.25.
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 1.0, 4.0, 3.0]], dtype=torch.float64)
    iou = 1 / 9
    giou = iou - (12 - 9) / 12
    diou = iou - 3.25 / (25 + 1e-7)
    v = 4 / math.pi**2 * (math.atan(2 / 2) - math.atan(3 / 2)) ** 2
    ciou = diou - v / (1 - iou + v + 1e-7) * v
    assert visionops.box_iou(a, b).item() == pytest.approx(iou, rel=1e-12)
    assert visionops.generalized_box_iou(a, b).item() == pytest.approx(giou, rel=1e-12)
    assert visionops.distance_box_iou(a, b).item() == pytest.approx(diou, rel=1e-12)
    assert visionops.complete_box_iou(a, b).item() == pytest.approx(ciou, rel=1e-12)


def test_iou_formats_agree():
    # The same two boxes in each format give the same IoU.
    xyxy = torch.tensor([[10.0, 20.0, 50.0, 60.0], [0.0, 0.0, 30.0, 30.0]])
    other = torch.tensor([[20.0, 30.0, 70.0, 50.0]])
    expected = visionops.box_iou(xyxy, other)
    for fmt in ("xywh", "cxcywh"):
        got = visionops.box_iou(
            visionops.box_convert(xyxy, "xyxy", fmt), visionops.box_convert(other, "xyxy", fmt), fmt=fmt
        )
        torch.testing.assert_close(got, expected)


def test_disjoint_and_identical():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    far = torch.tensor([[5.0, 5.0, 6.0, 6.0]])
    assert visionops.box_iou(a, a).item() == 1.0
    assert visionops.box_iou(a, far).item() == 0.0
    assert visionops.generalized_box_iou(a, a).item() == 1.0
    # GIoU of two unit boxes in a 6 x 6 enclosing box: 0 - (36 - 2) / 36.
    assert visionops.generalized_box_iou(a, far).item() == pytest.approx(-34 / 36)


# ----------------------------------------------------------------- reference and torchvision


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("lead", [(), (3,), (2, 3)])
def test_float64_matches_reference(variant, lead, device):
    a = random_boxes(17, *lead, device=device)
    b = random_boxes(23, *lead, device=device)
    got = ours(variant, a, b)
    assert got.dtype == torch.float64 and got.shape == (*lead, 17, 23)
    torch.testing.assert_close(got.cpu(), ref.pairwise(variant, a.cpu(), b.cpu()), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_iou_formats_match_reference_and_torchvision(fmt, device):
    a = random_boxes(30, dtype=torch.float32, device=device)
    b = random_boxes(40, dtype=torch.float32, device=device)
    a, b = visionops.box_convert(a, "xyxy", fmt), visionops.box_convert(b, "xyxy", fmt)
    got = visionops.box_iou(a, b, fmt=fmt)
    torch.testing.assert_close(got.double().cpu(), ref.pairwise("iou", a.cpu(), b.cpu(), fmt=fmt), rtol=1e-5,
                               atol=1e-6)
    if fmt == "xyxy" or torchvision_supports("box_iou", "fmt"):
        kw = {"fmt": fmt} if fmt != "xyxy" else {}
        torch.testing.assert_close(got.cpu(), tv_ops.box_iou(a.cpu(), b.cpu(), **kw), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("variant", VARIANTS)
def test_float32_matches_torchvision_on_many_seeds(variant):
    # Same formula in the same order: bitwise equal to torchvision except for
    # CIoU's atan (ATen's vectorized atan against libm's, 1 ulp).
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        a = random_boxes(50, size=1000, scale=300, dtype=torch.float32, generator=g)
        b = random_boxes(60, size=1000, scale=300, dtype=torch.float32, generator=g)
        got, want = ours(variant, a, b), theirs(variant, a, b)
        if variant == "ciou":
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        else:
            assert torch.equal(got, want), f"seed {seed}: max diff {(got - want).abs().max()}"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adversarial_matches_torchvision(variant, dtype, device):
    # Zero-area, inverted, identical, huge, negative and NaN boxes, every pair.
    boxes = adversarial_boxes(dtype=dtype, device=device)
    got = ours(variant, boxes, boxes).cpu()
    want = theirs(variant, boxes.cpu(), boxes.cpu())
    # equal_nan: NaN exactly where torchvision has NaN (a NaN box, or 0/0 for
    # two empty boxes), and nowhere else.
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_nan_semantics():
    nan = float("nan")
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [nan, 0.0, 10.0, 10.0], [5.0, 5.0, 5.0, 5.0]])
    for variant in VARIANTS:
        out = ours(variant, boxes, boxes)
        assert out[1].isnan().all() and out[:, 1].isnan().all(), variant
        assert not out[0, 0].isnan(), variant
    # Two empty boxes have an empty union: 0 / 0.
    assert visionops.box_iou(boxes, boxes)[2, 2].isnan()
    # An empty box against a real one has IoU 0.
    assert visionops.box_iou(boxes, boxes)[0, 2].item() == 0.0


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_error_at_most_twice_torchvision(variant, dtype, device):
    # Both see the same rounded inputs; our error against the float64
    # reference on those inputs is at most twice torchvision's.
    a = random_boxes(40, size=200, scale=80, dtype=dtype, device=device)
    b = random_boxes(50, size=200, scale=80, dtype=dtype, device=device)
    got = ours(variant, a, b)
    assert got.dtype == torch.float32
    exact = ref.pairwise(variant, a.cpu(), b.cpu())
    err_ours = (got.cpu().double() - exact).abs().max().item()
    err_tv = (theirs(variant, a.cpu(), b.cpu()).double() - exact).abs().max().item()
    assert err_ours <= 2 * err_tv + 1e-6, (err_ours, err_tv)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", INTEGER)
def test_integer_boxes(variant, dtype, device):
    g = torch.Generator().manual_seed(1)
    a = random_boxes(20, size=100, scale=40, generator=g).round().to(dtype)
    b = random_boxes(30, size=100, scale=40, generator=g).round().to(dtype)
    got = ours(variant, a.to(device), b.to(device)).cpu()
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref.pairwise(variant, a, b).float(), rtol=1e-6, atol=1e-6, equal_nan=True)
    if dtype != torch.uint8:  # torchvision's uint8 subtraction wraps around
        torch.testing.assert_close(got, theirs(variant, a, b).float(), rtol=1e-5, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_non_contiguous_and_broadcast(variant, device):
    base = random_boxes(12, 2, device=device)  # [2, 12, 4]
    a = base.transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, column-major
    assert not a.is_contiguous()
    b = random_boxes(40, device=device)[::2]  # strided rows, no batch dim: broadcast
    got = ours(variant, a, b)
    assert got.shape == (2, 12, 20)
    want = ref.pairwise(variant, a.cpu(), b.cpu().expand(2, 20, 4))
    torch.testing.assert_close(got.cpu(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shapes", [((0, 4), (5, 4)), ((5, 4), (0, 4)), ((0, 4), (0, 4)), ((0, 3, 4), (0, 2, 4))])
def test_empty(variant, shapes, device):
    a = torch.zeros(shapes[0], device=device)
    b = torch.zeros(shapes[1], device=device)
    out = ours(variant, a, b)
    assert out.shape == (*shapes[0][:-2], shapes[0][-2], shapes[1][-2])


# ----------------------------------------------------------------- gradients


# CIoU treats alpha as a constant (as torchvision does), so its gradient is
# not the finite-difference one: it is checked against the float64
# reference's autograd instead, below.
@pytest.mark.parametrize("variant", ["iou", "giou", "diou"])
def test_gradcheck(variant, device):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        a = random_boxes(5, generator=g).to(device).requires_grad_()
        b = random_boxes(4, generator=g).to(device).requires_grad_()
        assert torch.autograd.gradcheck(lambda x, y: ours(variant, x, y), (a, b))


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradient_matches_reference_autograd(variant, device):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        a = random_boxes(5, generator=g).to(device).requires_grad_()
        b = random_boxes(4, generator=g).to(device).requires_grad_()
        w = torch.randn(5, 4, dtype=torch.float64, generator=g).to(device)
        got = torch.autograd.grad((ours(variant, a, b) * w).sum(), (a, b))
        a_ref, b_ref = a.detach().cpu().requires_grad_(), b.detach().cpu().requires_grad_()
        want = torch.autograd.grad((ref.pairwise(variant, a_ref, b_ref) * w.cpu()).sum(), (a_ref, b_ref))
        for x, y in zip(got, want):
            torch.testing.assert_close(x.cpu(), y, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_gradcheck_box_iou_formats(fmt):
    a = visionops.box_convert(random_boxes(5), "xyxy", fmt).requires_grad_()
    b = visionops.box_convert(random_boxes(4), "xyxy", fmt).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: visionops.box_iou(x, y, fmt=fmt), (a, b))


def test_gradcheck_broadcast_batch():
    a = random_boxes(4, 2).requires_grad_()  # [2, 4, 4]
    b = random_boxes(3).requires_grad_()  # [3, 4], broadcast over the batch
    assert torch.autograd.gradcheck(visionops.generalized_box_iou, (a, b))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_match_torchvision_including_ties(variant, dtype):
    # Ties (identical boxes, shared edges) split the gradient as torch's
    # min/max do; torchvision's autograd is the judge.
    boxes = torch.cat([adversarial_boxes(dtype)[:9], random_boxes(6, dtype=dtype)])
    grad_out = torch.randn(15, 15, dtype=dtype)
    a1, b1 = boxes.clone().requires_grad_(), boxes.clone().requires_grad_()
    a2, b2 = boxes.clone().requires_grad_(), boxes.clone().requires_grad_()
    (ours(variant, a1, b1) * grad_out).nan_to_num().sum().backward()
    (theirs(variant, a2, b2) * grad_out).nan_to_num().sum().backward()
    # Pairs with 0/0 or an inverted box make NaN in both; compare the rest.
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-9}
    torch.testing.assert_close(a1.grad, a2.grad, equal_nan=True, **tol)
    torch.testing.assert_close(b1.grad, b2.grad, equal_nan=True, **tol)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_gradient_dtype(dtype, device):
    a = random_boxes(6, dtype=dtype, device=device).requires_grad_()
    b = random_boxes(7, dtype=dtype, device=device).requires_grad_()
    visionops.complete_box_iou(a, b).sum().backward()
    assert a.grad.dtype == dtype and b.grad.dtype == dtype
    # Computed in float32 and rounded once: both gradients are the float32
    # gradients on the same (rounded) boxes, rounded to the dtype.
    a32 = a.detach().float().requires_grad_()
    b32 = b.detach().float().requires_grad_()
    visionops.complete_box_iou(a32, b32).sum().backward()
    exact = {"rtol": 0, "atol": 0} if device == "cpu" else {}
    torch.testing.assert_close(a.grad, a32.grad.to(dtype), **exact)
    torch.testing.assert_close(b.grad, b32.grad.to(dtype), **exact)


def test_backward_is_deterministic_across_thread_counts():
    a = random_boxes(300, dtype=torch.float32).requires_grad_()
    b = random_boxes(200, dtype=torch.float32).requires_grad_()
    g = torch.randn(300, 200)
    grads = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            a.grad = b.grad = None
            (visionops.distance_box_iou(a, b) * g).sum().backward()
            grads.append((a.grad.clone(), b.grad.clone()))
    finally:
        torch.set_num_threads(before)
    for ga, gb in grads[1:]:
        assert torch.equal(ga, grads[0][0]) and torch.equal(gb, grads[0][1])


def test_double_backward_is_refused():
    a = random_boxes(3).requires_grad_()
    b = random_boxes(2).requires_grad_()
    (ga,) = torch.autograd.grad(visionops.box_iou(a, b).sum(), a, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        ga.sum().backward()


# ----------------------------------------------------------------- registration


@pytest.mark.parametrize("variant", VARIANTS)
def test_opcheck(variant, device):
    a = random_boxes(5, device=device).requires_grad_()
    b = random_boxes(6, device=device).requires_grad_()
    op = {
        "iou": torch.ops.visionops.box_iou.default,
        "giou": torch.ops.visionops.generalized_box_iou.default,
        "diou": torch.ops.visionops.distance_box_iou.default,
        "ciou": torch.ops.visionops.complete_box_iou.default,
    }[variant]
    torch.library.opcheck(op, (a, b))
    torch.library.opcheck(op, (a.detach().float(), b.detach().float()))


def test_opcheck_backward_op(device):
    a, b = random_boxes(5, device=device), random_boxes(6, device=device)
    grad = torch.randn(5, 6, dtype=torch.float64, device=device)
    torch.library.opcheck(
        torch.ops.visionops._pairwise_box_iou_backward.default, (grad, a, b, "ciou", "xyxy", 1e-7),
        test_utils=("test_schema", "test_faketensor"),
    )


@requires_cuda
def test_cpu_cuda_parity():
    a = random_boxes(200, size=500, scale=100, dtype=torch.float32)
    b = random_boxes(300, size=500, scale=100, dtype=torch.float32)
    for variant in VARIANTS:
        torch.testing.assert_close(ours(variant, a.cuda(), b.cuda()).cpu(), ours(variant, a, b), rtol=1e-5,
                                   atol=1e-6)
