"""Memory: the pairwise ops allocate their output and O(N + M) per-box
records, never an N x M x k temporary (torchvision's formulas allocate
several N x M x 2 intermediates). Measured with the profiler's allocation
records, so the check is exact, not timed."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import visionops

from .conftest import random_boxes, run_python

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


LARGE_OUTPUTS = """
import torch, torchvision, visionops
from tests import references as ref

g = torch.Generator().manual_seed(3)
def boxes(n):
    xy = torch.rand(n, 2, generator=g) * 500
    return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 60], 1)
a, b = boxes(3000), boxes(3000)
want = torchvision.ops.box_iou(a.double(), b.double())
x = torch.randn(4, 1, 512, 512, generator=g) * 3
t = (torch.rand(4, 1, 512, 512, generator=g) > 0.5).float()
xd = x.double().requires_grad_()
(gwant,) = torch.autograd.grad(ref.dice_loss(xd, t.double(), mode="binary"), xd)
for _ in range(3):
    torch.testing.assert_close(visionops.box_iou(a, b).double(), want, rtol=1e-5, atol=1e-6)
    xx = x.clone().requires_grad_()
    (got,) = torch.autograd.grad(visionops.dice_loss(xx, t, mode="binary"), xx)
    torch.testing.assert_close(got.double(), gwant, rtol=1e-4, atol=1e-12)
print("ok")
"""


@pytest.mark.parametrize("heap", ["default", "reused"])
def test_large_outputs_into_fresh_and_reused_memory(heap):
    # A 36 MB box_iou result and a 4 MiB Dice gradient are written with
    # plain stores into fresh pages and streamed into memory already mapped
    # (core/streaming_store.h's worth_streaming). glibc maps a block over
    # 32 MB anew on each call and takes a 4 MiB one from its heap once a
    # block that size has been freed ("default", both ways over the three
    # calls); with its mmap threshold raised, every block comes from the heap
    # and the second and third calls reuse the first one's memory ("reused":
    # both streamed). Either way the values are the float64 definition's.
    env = {}
    if heap == "reused":
        env["GLIBC_TUNABLES"] = "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824"
    done = run_python(LARGE_OUTPUTS, **env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
