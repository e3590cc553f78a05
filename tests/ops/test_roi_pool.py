"""roi_pool: hand values, torchvision parity (values and argmax), the float64
reference, adversarial RoIs and maps, dtypes, layouts and gradients."""

from __future__ import annotations

import pytest
import torch

import visionops

from .. import references as ref
from ..conftest import require, requires_cuda
from .test_roi_align import make_rois

tv_ops = require("torchvision.ops")


def test_hand_values():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # The box [0, 3] rounds to pixels 0..3; 2 x 2 bins of 2 x 2 pixels.
    out = visionops.roi_pool(x, torch.tensor([[0.0, 0, 0, 3, 3]]), 2)
    assert out[0, 0].tolist() == [[5.0, 7.0], [13.0, 15.0]]
    # Ties: the first maximum in row-major order takes the gradient.
    x = torch.ones(1, 1, 3, 3, requires_grad=True)
    visionops.roi_pool(x, torch.tensor([[0.0, 0, 0, 2, 2]]), 1).sum().backward()
    expected = torch.zeros(3, 3)
    expected[0, 0] = 1
    assert torch.equal(x.grad[0, 0], expected)


@pytest.mark.parametrize("scale", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torchvision(scale, dtype):
    g = torch.Generator().manual_seed(int(scale * 10))
    x = torch.randn(2, 5, 13, 17, generator=g, dtype=dtype)
    x[0, 1, 3:6, 2:9] = 0.5  # plateaus: ties
    rois = make_rois(40, 2, 13, 17, scale, dtype=dtype, g=g)
    ours, ours_arg = torch.ops.visionops.roi_pool(x, rois, scale, 3, 4)
    theirs, theirs_arg = torch.ops.torchvision.roi_pool(x, rois, scale, 3, 4)
    assert torch.equal(ours, theirs) and torch.equal(ours_arg, theirs_arg)
    grad = torch.randn(40, 5, 3, 4, generator=g, dtype=dtype)
    ours_g = torch.ops.visionops._roi_pool_backward(grad, rois, ours_arg, scale, 3, 4, 2, 5, 13, 17, False)
    theirs_g = torch.ops.torchvision._roi_pool_backward(grad, rois, theirs_arg, scale, 3, 4, 2, 5, 13, 17)
    assert torch.equal(ours_g, theirs_g)


def test_matches_reference(device):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 9, 11, generator=g, dtype=torch.float64)
    rois = make_rois(15, 2, 9, 11, 0.5, dtype=torch.float64, g=g)
    expected = ref.roi_pool(x, rois, (2, 3), 0.5)
    assert torch.equal(visionops.roi_pool(x.to(device), rois.to(device), (2, 3), 0.5).cpu(), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_is_exact(dtype, device):
    # A maximum needs no arithmetic: half and bfloat16 results are exact.
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 4, 10, 12, generator=g).to(dtype)
    rois = make_rois(16, 2, 10, 12, 1.0, dtype=torch.float64, g=g).to(dtype)
    expected = ref.roi_pool(x, rois, 3, 1.0)
    ours = visionops.roi_pool(x.to(device), rois.to(device), 3, 1.0).cpu()
    assert ours.dtype == dtype and torch.equal(ours.double(), expected)


def test_channels(device):
    # Channel counts around the CPU's 32-channel blocks.
    g = torch.Generator().manual_seed(8)
    for c in (1, 31, 33, 70):
        x = torch.randn(1, c, 9, 10, generator=g).to(device)
        rois = make_rois(8, 1, 9, 10, 1.0, device=device, g=g)
        expected = ref.roi_pool(x.cpu(), rois.cpu(), 2, 1.0)
        for layout in (torch.contiguous_format, torch.channels_last):
            ours = visionops.roi_pool(x.contiguous(memory_format=layout), rois, 2, 1.0)
            assert torch.equal(ours.cpu().double(), expected)


def test_nan_in_map_and_rois(device):
    nan, inf = float("nan"), float("inf")
    x = torch.randn(1, 2, 8, 8, device=device)
    x[0, 0, 2, 2] = nan
    x[0, 1] = -inf
    rois = torch.tensor([[0, 0, 0, 7, 7], [0, nan, 1, 5, 5], [0, 1, 1, inf, 5]], device=device)
    out, argmax = torch.ops.visionops.roi_pool(x, rois, 1.0, 2, 2)
    # NaN never wins the maximum (as in torchvision); a bin of -inf keeps the
    # initial -FLT_MAX with no argmax, as torchvision's does.
    assert not out[0, 0].isnan().any()
    assert (out[0, 1] == -torch.finfo(torch.float32).max).all() and (argmax[0, 1] == -1).all()
    # A NaN coordinate pools nothing; an infinite one saturates (off the map).
    assert torch.equal(out[1], torch.zeros_like(out[1])) and (argmax[1] == -1).all()
    assert torch.isfinite(out[2]).all()


@pytest.mark.parametrize("bad", [3.0, -2.0, float("nan")])
def test_bad_batch_index_pools_zeros(bad, device):
    # As roi_align: zeros, argmax -1 and no gradient, on every device.
    g = torch.Generator().manual_seed(13)
    x = torch.randn(2, 2, 8, 8, generator=g).to(device).requires_grad_()
    rois = torch.tensor([[0.0, 1, 1, 4, 4], [bad, 1, 1, 4, 4], [1.0, 0, 2, 7, 6]], device=device)
    out, argmax = torch.ops.visionops.roi_pool(x, rois, 1.0, 2, 2)
    assert torch.equal(out[1], torch.zeros_like(out[1])) and (argmax[1] == -1).all()
    good = rois[[0, 2]]
    assert torch.equal(out[[0, 2]], visionops.roi_pool(x, good, 2))
    (grad,) = torch.autograd.grad(visionops.roi_pool(x, rois, 2).sum(), x)
    (want,) = torch.autograd.grad(visionops.roi_pool(x, good, 2).sum(), x)
    assert torch.equal(grad, want)


def test_gradcheck_and_layouts(device):
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64).to(device).requires_grad_()
    rois = make_rois(6, 2, 7, 8, 1.0, dtype=torch.float64, device=device, g=g)
    assert torch.autograd.gradcheck(lambda t: visionops.roi_pool(t, rois, 2, 1.0), (x,))
    xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    visionops.roi_pool(xc, rois, 2).sum().backward()
    assert xc.grad.is_contiguous(memory_format=torch.channels_last)
    (expected,) = torch.autograd.grad(visionops.roi_pool(x, rois, 2).sum(), x)
    assert torch.equal(xc.grad, expected)


def test_backward_thread_independent():
    g = torch.Generator().manual_seed(10)
    x = torch.randn(2, 20, 16, 16, generator=g)
    rois = make_rois(200, 2, 16, 16, 1.0, g=g)
    _, argmax = torch.ops.visionops.roi_pool(x, rois, 1.0, 3, 3)
    grad = torch.randn(200, 20, 3, 3, generator=g)
    results = []
    for threads in (1, 2):
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            results.append(torch.ops.visionops._roi_pool_backward(grad, rois, argmax, 1.0, 3, 3, 2, 20, 16, 16, False))
        finally:
            torch.set_num_threads(old)
    assert torch.equal(results[0], results[1])


def test_module_and_list_boxes():
    m = visionops.RoIPool(3, 0.5)
    assert repr(m) == repr(tv_ops.RoIPool(3, 0.5))
    x = torch.randn(2, 2, 8, 8)
    boxes = [torch.tensor([[1.0, 1, 9, 12]]), torch.tensor([[0.0, 2, 6, 6], [3, 3, 14, 14]])]
    assert torch.equal(m(x, boxes), tv_ops.RoIPool(3, 0.5)(x, boxes))


@requires_cuda
def test_cuda_backward_deterministic_mode():
    g = torch.Generator().manual_seed(12)
    x = torch.randn(2, 16, 20, 24, generator=g)
    rois = make_rois(60, 2, 20, 24, 1.0, g=g)
    _, argmax = torch.ops.visionops.roi_pool(x, rois, 1.0, 5, 5)
    grad = torch.randn(60, 16, 5, 5, generator=g)
    cpu_grad = torch.ops.visionops._roi_pool_backward(grad, rois, argmax, 1.0, 5, 5, 2, 16, 20, 24, False)
    args = (grad.cuda(), rois.cuda(), argmax.cuda(), 1.0, 5, 5, 2, 16, 20, 24)
    torch.testing.assert_close(torch.ops.visionops._roi_pool_backward(*args, False).cpu(), cpu_grad)
    torch.use_deterministic_algorithms(True)
    try:
        det = torch.ops.visionops._roi_pool_backward(*args, True)
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(det.cpu(), cpu_grad)  # same additions in the same order


def test_opcheck_and_compile(device):
    g = torch.Generator().manual_seed(14)
    x = torch.randn(2, 3, 8, 9, generator=g, dtype=torch.float64).to(device).requires_grad_()
    rois = make_rois(5, 2, 8, 9, 1.0, dtype=torch.float64, device=device, g=g)
    torch.library.opcheck(torch.ops.visionops.roi_pool.default, (x, rois, 1.0, 2, 3))
    torch._dynamo.reset()
    compiled = torch.compile(lambda t: visionops.roi_pool(t, rois, 2).square().sum(), fullgraph=True,
                             backend="aot_eager")
    (got,) = torch.autograd.grad(compiled(x), x)
    (expected,) = torch.autograd.grad(visionops.roi_pool(x, rois, 2).square().sum(), x)
    assert torch.equal(got, expected)
    torch._dynamo.reset()


@pytest.mark.parametrize("channels_last", [False, True])
def test_backward_ignores_argmax_outside_the_map(channels_last):
    # The backward adds each bin's gradient at its argmax pixel; an argmax
    # that the forward cannot produce (below -1, or at or past H * W) is
    # skipped, not written out of bounds. Against a plain loop, both layouts.
    g = torch.Generator().manual_seed(12)
    n, c, h, w, k, p = 2, 3, 5, 6, 7, 2
    rois = make_rois(k, n, h, w, 1.0, dtype=torch.float64, g=g)
    grad = torch.randn(k, c, p, p, generator=g, dtype=torch.float64)
    argmax = torch.randint(0, h * w, (k, c, p, p), generator=g, dtype=torch.int32)
    argmax.view(-1)[::5] = torch.tensor([-1, -7, h * w, 2**31 - 1, h * w + 3], dtype=torch.int32).repeat(100)[
        : argmax.view(-1)[::5].numel()]
    got = torch.ops.visionops._roi_pool_backward(grad, rois, argmax, 1.0, p, p, n, c, h, w, channels_last)
    want = torch.zeros(n, c, h * w, dtype=torch.float64)
    for r in range(k):
        b = int(rois[r, 0])
        for ch in range(c):
            for i, v in zip(argmax[r, ch].flatten().tolist(), grad[r, ch].flatten().tolist()):
                if 0 <= i < h * w:
                    want[b, ch, i] += v
    assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    torch.testing.assert_close(got, want.view(n, c, h, w), rtol=0, atol=1e-12)
