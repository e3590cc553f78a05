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
