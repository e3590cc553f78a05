"""torch.compile(fullgraph=True) over every op, forward and backward: the fake
kernels and autograd registrations are what make this work."""

from __future__ import annotations

import pytest
import torch

import visionops

from .conftest import random_boxes

PAIRWISE = [visionops.box_iou, visionops.generalized_box_iou, visionops.distance_box_iou, visionops.complete_box_iou]
LOSSES = [visionops.generalized_box_iou_loss, visionops.distance_box_iou_loss, visionops.complete_box_iou_loss]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("fn", PAIRWISE, ids=lambda f: f.__name__)
def test_pairwise_compiles(fn, device):
    a = random_boxes(7, device=device).requires_grad_()
    b = random_boxes(9, device=device).requires_grad_()
    compiled = torch.compile(lambda x, y: fn(x, y).square().sum(), fullgraph=True, backend="aot_eager")
    out = compiled(a, b)
    (ga, gb) = torch.autograd.grad(out, (a, b))
    (ea, eb) = torch.autograd.grad(fn(a, b).square().sum(), (a, b))
    torch.testing.assert_close(ga, ea)
    torch.testing.assert_close(gb, eb)


@pytest.mark.parametrize("fn", LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_losses_compile(fn, reduction, device):
    p = random_boxes(11, device=device).requires_grad_()
    t = random_boxes(11, device=device)
    compiled = torch.compile(lambda x, y: fn(x, y, reduction=reduction).sum(), fullgraph=True, backend="aot_eager")
    out = compiled(p, t)
    torch.testing.assert_close(out, fn(p, t, reduction=reduction).sum())
    (g,) = torch.autograd.grad(out, p)
    (e,) = torch.autograd.grad(fn(p, t, reduction=reduction).sum(), p)
    torch.testing.assert_close(g, e)


def test_area_and_convert_compile(device):
    b = random_boxes(5, device=device).requires_grad_()

    def f(x):
        c = visionops.box_convert(x, "xyxy", "cxcywh")
        return visionops.box_area(c, fmt="cxcywh").sum() + c.sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    out = compiled(b)
    torch.testing.assert_close(out, f(b))
    (g,) = torch.autograd.grad(out, b)
    (e,) = torch.autograd.grad(f(b), b)
    torch.testing.assert_close(g, e)


def test_inductor_with_dynamic_shapes():
    # The default backend, with sizes marked dynamic: one graph serves
    # several N and M.
    fn = torch.compile(lambda x, y: visionops.box_iou(x, y).amax(dim=1), fullgraph=True, dynamic=True)
    for n, m in [(5, 7), (9, 3), (12, 12)]:
        a, b = random_boxes(n, dtype=torch.float32), random_boxes(m, dtype=torch.float32)
        torch.testing.assert_close(fn(a, b), visionops.box_iou(a, b).amax(dim=1))
