"""Memory: the pairwise ops allocate their output and O(N + M) per-box
records, never an N x M x k temporary (torchvision's formulas allocate
several N x M x 2 intermediates). Measured with the profiler's allocation
records, so the check is exact, not timed."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import visionops

from .conftest import random_boxes

PAIRWISE = [visionops.box_iou, visionops.generalized_box_iou, visionops.distance_box_iou, visionops.complete_box_iou]


def bytes_allocated(fn) -> tuple[int, object]:
    """Sum of every allocation made while fn runs (frees ignored)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    total = sum(max(e.self_cpu_memory_usage, 0) for e in prof.events())
    return total, out


@pytest.mark.parametrize("fn", PAIRWISE, ids=lambda f: f.__name__)
def test_pairwise_allocates_output_and_records_only(fn):
    n, m = 1000, 800
    a, b = random_boxes(n, dtype=torch.float32), random_boxes(m, dtype=torch.float32)
    total, out = bytes_allocated(lambda: fn(a, b))
    records = 8 * 4 * (n + m)  # eight float fields per box
    assert total <= out.numel() * out.element_size() + records, (total, out.numel() * out.element_size())


@pytest.mark.parametrize("fn", [visionops.generalized_box_iou_loss, visionops.complete_box_iou_loss],
                         ids=lambda f: f.__name__)
def test_losses_allocate_their_output_only(fn):
    p, t = random_boxes(100_000, dtype=torch.float32), random_boxes(100_000, dtype=torch.float32)
    total, _ = bytes_allocated(lambda: fn(p, t, reduction="none"))
    assert total <= 100_000 * 4
    total, _ = bytes_allocated(lambda: fn(p, t, reduction="sum"))
    assert total <= 64  # the scalar


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_dice_allocates_at_most_half_of_plain_pytorch(mode):
    # Forward and backward: the input's gradient and O(C) statistics, no
    # probabilities saved (plain PyTorch keeps the sigmoid or softmax and
    # several products alive).
    from . import references as ref

    g = torch.Generator().manual_seed(0)
    c = 1 if mode == "binary" else 6
    x = torch.randn(2, c, 64, 64, generator=g)
    t = (torch.rand(2, 1, 64, 64, generator=g) > 0.5).float() if mode == "binary" else torch.randint(0, c, (2, 64, 64))

    def fwd_bwd(fn):
        def run():
            xx = x.detach().requires_grad_()
            fn(xx).backward()
        return run

    ours, _ = bytes_allocated(fwd_bwd(lambda xx: visionops.dice_loss(xx, t, mode=mode)))
    plain, _ = bytes_allocated(fwd_bwd(lambda xx: ref.dice_loss(xx, t, mode=mode, dtype=torch.float32)))
    assert ours <= 0.5 * plain, (ours, plain)
    assert ours <= x.numel() * 4 + 4096  # the gradient, and small change
