"""box_area and box_convert."""

from __future__ import annotations

import itertools

import pytest
import torch

import visionops

from .. import references as ref
from ..conftest import adversarial_boxes, random_boxes, require, torchvision_supports

tv_ops = require("torchvision.ops")

FORMATS = ["xyxy", "xywh", "cxcywh"]
ALL_DTYPES = [
    torch.float32, torch.float64, torch.float16, torch.bfloat16,
    torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8,
]


def sample(dtype, device, *lead):
    # int8 boxes stay small enough that torchvision's int8 sums do not wrap
    # (ours never wrap, see visionops/ops/boxes.py).
    size, scale = (30, 30) if dtype == torch.int8 else (60, 40)
    b = random_boxes(25, *lead, size=size, scale=scale)
    if not dtype.is_floating_point:
        b = b.round()
    return b.to(dtype=dtype, device=device)


def test_area_hand_computed():
    boxes = torch.tensor([[0.0, 0.0, 100.0, 100.0], [10.0, 20.0, 40.0, 30.0], [5.0, 5.0, 5.0, 9.0]])
    assert visionops.box_area(boxes).tolist() == [10_000.0, 300.0, 0.0]
    assert visionops.box_area(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), fmt="xywh").item() == 12.0
    assert visionops.box_area(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), fmt="cxcywh").item() == 12.0


def test_convert_hand_computed():
    xyxy = torch.tensor([[10.0, 20.0, 50.0, 80.0]])
    assert visionops.box_convert(xyxy, "xyxy", "xywh").tolist() == [[10.0, 20.0, 40.0, 60.0]]
    assert visionops.box_convert(xyxy, "xyxy", "cxcywh").tolist() == [[30.0, 50.0, 40.0, 60.0]]
    assert visionops.box_convert(torch.tensor([[30.0, 50.0, 40.0, 60.0]]), "cxcywh", "xyxy").tolist() == xyxy.tolist()


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_area_matches_torchvision(dtype, fmt, device):
    b = sample(dtype, device, 3)
    got = visionops.box_area(b, fmt=fmt).cpu()
    assert got.shape == (3, 25)
    if fmt != "xyxy" and not torchvision_supports("box_area", "fmt"):
        pytest.skip("this torchvision's box_area has no fmt= (new in 0.29)")
    kw = {"fmt": fmt} if fmt != "xyxy" else {}
    want = tv_ops.box_area(b.cpu().reshape(-1, 4), **kw).reshape(3, 25)
    assert got.dtype == want.dtype
    torch.testing.assert_close(got, want)
    if dtype in (torch.float32, torch.float64):
        torch.testing.assert_close(got.double(), ref.box_area(b.cpu(), fmt), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("in_fmt,out_fmt", list(itertools.product(FORMATS, FORMATS)))
def test_convert_matches_torchvision(dtype, in_fmt, out_fmt, device):
    b = sample(dtype, device)
    got = visionops.box_convert(b, in_fmt, out_fmt).cpu()
    want = tv_ops.box_convert(b.cpu(), in_fmt, out_fmt)
    assert got.dtype == want.dtype and got.shape == want.shape
    if dtype in (torch.float16, torch.bfloat16):
        # torchvision rounds to half after every step, we once: compare both
        # to the exact conversion of the same rounded inputs.
        exact = ref.box_convert(b.cpu(), in_fmt, out_fmt)
        err_ours = (got.double() - exact).abs().max().item()
        err_tv = (want.double() - exact).abs().max().item()
        assert err_ours <= max(err_tv, 1e-6) * 2
    else:
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("in_fmt,out_fmt", list(itertools.product(FORMATS, FORMATS)))
def test_convert_round_trip_and_reference(in_fmt, out_fmt):
    b = random_boxes(30)
    x = visionops.box_convert(b, "xyxy", in_fmt)
    torch.testing.assert_close(visionops.box_convert(x, in_fmt, out_fmt), ref.box_convert(x, in_fmt, out_fmt))
    back = visionops.box_convert(visionops.box_convert(x, in_fmt, out_fmt), out_fmt, in_fmt)
    torch.testing.assert_close(back, x)


def test_adversarial_and_nan(device):
    b = adversarial_boxes(torch.float32, device)
    torch.testing.assert_close(visionops.box_area(b).cpu(), tv_ops.box_area(b.cpu()), equal_nan=True)
    for in_fmt, out_fmt in itertools.product(FORMATS, FORMATS):
        torch.testing.assert_close(
            visionops.box_convert(b, in_fmt, out_fmt).cpu(), tv_ops.box_convert(b.cpu(), in_fmt, out_fmt),
            equal_nan=True,
        )
    area = visionops.box_area(b).cpu()
    assert area[-2:].isnan().all() and not area[:-2].isnan().any()


def test_non_contiguous_and_empty(device):
    b = random_boxes(10, device=device).t().contiguous().t()
    assert not b.is_contiguous()
    torch.testing.assert_close(visionops.box_area(b), ref.box_area(b).to(device))
    torch.testing.assert_close(visionops.box_convert(b, "xyxy", "cxcywh"), ref.box_convert(b, "xyxy", "cxcywh"))
    empty = torch.zeros(0, 4, device=device)
    assert visionops.box_area(empty).shape == (0,)
    assert visionops.box_convert(empty, "xyxy", "xywh").shape == (0, 4)
    # A single box without a batch dimension works, as in torchvision.
    assert visionops.box_area(torch.tensor([0.0, 0.0, 2.0, 3.0], device=device)).item() == 6.0


def test_convert_returns_a_copy():
    b = random_boxes(3)
    out = visionops.box_convert(b, "xyxy", "xyxy")
    assert torch.equal(out, b) and out.data_ptr() != b.data_ptr()


@pytest.mark.parametrize("fmt", FORMATS)
def test_area_gradcheck(fmt):
    b = visionops.box_convert(random_boxes(6), "xyxy", fmt).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: visionops.box_area(x, fmt=fmt), (b,))
    assert torch.autograd.gradgradcheck(lambda x: visionops.box_area(x, fmt=fmt), (b,))


@pytest.mark.parametrize("in_fmt,out_fmt", list(itertools.product(FORMATS, FORMATS)))
def test_convert_gradcheck(in_fmt, out_fmt):
    b = random_boxes(6).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: visionops.box_convert(x, in_fmt, out_fmt), (b,))


def test_gradients_match_torchvision():
    b = random_boxes(10, dtype=torch.float32)
    for fmt in FORMATS if torchvision_supports("box_area", "fmt") else ["xyxy"]:
        b1, b2 = b.clone().requires_grad_(), b.clone().requires_grad_()
        visionops.box_area(b1, fmt=fmt).sum().backward()
        tv_ops.box_area(b2, **({"fmt": fmt} if fmt != "xyxy" else {})).sum().backward()
        torch.testing.assert_close(b1.grad, b2.grad)
    g = torch.randn(10, 4)
    for in_fmt, out_fmt in itertools.product(FORMATS, FORMATS):
        b1, b2 = b.clone().requires_grad_(), b.clone().requires_grad_()
        (visionops.box_convert(b1, in_fmt, out_fmt) * g).sum().backward()
        (tv_ops.box_convert(b2, in_fmt, out_fmt) * g).sum().backward()
        torch.testing.assert_close(b1.grad, b2.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
def test_opcheck(dtype, device):
    b = sample(dtype, device)
    if dtype.is_floating_point:
        b.requires_grad_()
    for fmt in FORMATS:
        torch.library.opcheck(torch.ops.visionops.box_area.default, (b, fmt))
    for in_fmt, out_fmt in itertools.product(FORMATS, FORMATS):
        torch.library.opcheck(torch.ops.visionops.box_convert.default, (b, in_fmt, out_fmt))
