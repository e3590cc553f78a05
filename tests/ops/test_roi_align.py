"""roi_align: hand values, torchvision parity (bitwise in float32 on the CPU),
the float64 reference, adversarial RoIs, dtypes, layouts, gradients and the
deterministic backward."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo.testing

import visionops

from .. import references as ref
from ..conftest import require, requires_cuda

tv_ops = require("torchvision.ops")

SAMPLING = [-1, 0, 1, 2, 4]


def make_rois(k: int, n: int, h: int, w: int, scale: float, dtype=torch.float32, device="cpu", g=None) -> torch.Tensor:
    """RoIs in image space (map size / scale): inside, partly outside, fully
    outside, zero-size and inverted ones, over n images."""
    img_w, img_h = w / scale, h / scale
    xy = (torch.rand(k, 2, generator=g, dtype=torch.float64) * 1.4 - 0.2) * torch.tensor([img_w, img_h])
    wh = torch.rand(k, 2, generator=g, dtype=torch.float64) * torch.tensor([img_w, img_h]) * 0.6
    boxes = torch.cat([xy, xy + wh], dim=1)
    boxes[0] = torch.tensor([0.0, 0.0, img_w, img_h])  # the whole map
    boxes[1] = torch.tensor([img_w * 2, img_h * 2, img_w * 3, img_h * 3])  # fully outside
    boxes[2] = torch.tensor([5.0, 5.0, 5.0, 5.0])  # zero size
    boxes[3] = torch.tensor([10.0, 12.0, 3.0, 4.0])  # inverted
    boxes[4] = torch.tensor([-img_w, -img_h, img_w * 0.3, img_h * 0.3])  # mostly outside, top-left
    idx = torch.randint(0, n, (k, 1), generator=g).double()
    return torch.cat([idx, boxes], dim=1).to(dtype=dtype, device=device)


def test_hand_values():
    # 4 x 4 map holding 0..15 row by row.
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # aligned, one bin, one point: the box [0, 3] shifted by -0.5 is [-0.5,
    # 2.5]; its centre 1.0 lands on pixel (1, 1), value 5.
    rois = torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0]])
    assert visionops.roi_align(x, rois, 1, 1.0, 1, True).item() == 5.0
    # legacy, box [0, 1]: the point (0.5, 0.5) averages pixels 0, 1, 4, 5.
    rois = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]])
    xg = x.clone().requires_grad_()
    out = visionops.roi_align(xg, rois, 1, 1.0, 1, False)
    assert out.item() == 2.5
    out.backward()
    expected = torch.zeros(4, 4)
    expected[0:2, 0:2] = 0.25
    assert torch.equal(xg.grad[0, 0], expected)
    # 2 x 2 bins of the box [0, 2] (legacy), one point each at 0.5 and 1.5:
    # bin (0, 0) samples (0.5, 0.5) = 2.5, bin (1, 1) samples (1.5, 1.5) = 7.5.
    out = visionops.roi_align(x, torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]]), 2, 1.0, 1, False)
    assert out[0, 0].tolist() == [[2.5, 3.5], [6.5, 7.5]]


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", SAMPLING)
@pytest.mark.parametrize("scale", [0.25, 0.5, 1.0])
def test_matches_torchvision_float32(aligned, sampling_ratio, scale):
    g = torch.Generator().manual_seed(int(scale * 100) + sampling_ratio * 7 + aligned)
    x = torch.randn(2, 5, 13, 17, generator=g)
    rois = make_rois(40, 2, 13, 17, scale, g=g)
    ours = visionops.roi_align(x, rois, (3, 4), scale, sampling_ratio, aligned)
    theirs = tv_ops.roi_align(x, rois, (3, 4), scale, sampling_ratio, aligned)
    assert torch.equal(ours, theirs)  # same formulas in the same order, no FMA contraction


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_matches_reference_float64(aligned, sampling_ratio, device):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 9, 11, generator=g, dtype=torch.float64)
    rois = make_rois(12, 2, 9, 11, 0.5, dtype=torch.float64, g=g)
    expected = ref.roi_align(x, rois, (2, 3), 0.5, sampling_ratio, aligned)
    ours = visionops.roi_align(x.to(device), rois.to(device), (2, 3), 0.5, sampling_ratio, aligned)
    torch.testing.assert_close(ours.cpu(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(dtype, device):
    # Accumulated in float32: the only error left is the output's rounding,
    # at most half an ulp of the result (plus float32 noise).
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 10, 12, generator=g).to(dtype)
    rois = make_rois(16, 2, 10, 12, 1.0, dtype=torch.float64, g=g).to(dtype)
    expected = ref.roi_align(x, rois, 3, 1.0, 2, True)
    ours = visionops.roi_align(x.to(device), rois.to(device), 3, 1.0, 2, True).cpu()
    assert ours.dtype == dtype
    eps = torch.finfo(dtype).eps
    assert ((ours.double() - expected).abs() <= eps * expected.abs() + 1e-6).all()


@pytest.mark.parametrize("sampling_ratio", [2, 3, 0])
def test_cpu_vector_paths_are_bitwise_torchvision(sampling_ratio):
    """The CPU forward's paths: a channels-last float map read in place (RoIs
    split over threads, all channels at once) and channels-first slices; the
    [bin][channel] results stored in 8 x 8 blocks transposed in registers
    plus a scalar rest (20 channels, 7 x 7 bins); the average over a
    power-of-two point count as a multiplication (2 x 2 points), over other
    counts as a division. Each is torchvision bit for bit in float32, at one
    thread and at two."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 20, 30, 34, generator=g)
    rois = make_rois(60, 2, 30, 34, 0.5, g=g)
    expected = tv_ops.roi_align(x, rois, 7, 0.5, sampling_ratio)
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for layout in (torch.contiguous_format, torch.channels_last):
                out = visionops.roi_align(x.contiguous(memory_format=layout), rois, 7, 0.5, sampling_ratio)
                assert torch.equal(out, expected), (threads, layout)
    finally:
        torch.set_num_threads(old)


def test_layouts_and_empty_inputs(device):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 6, 10, 12, generator=g, device="cpu").to(device)
    rois = make_rois(20, 2, 10, 12, 1.0, device=device, g=g)
    base = visionops.roi_align(x, rois, 3, 1.0, 2, True)
    cl = visionops.roi_align(x.contiguous(memory_format=torch.channels_last), rois, 3, 1.0, 2, True)
    assert torch.equal(base, cl) and cl.is_contiguous()
    sliced = torch.randn(2, 12, 10, 24, device=device)[:, ::2, :, ::2]  # non-contiguous
    torch.testing.assert_close(visionops.roi_align(sliced, rois, 3), visionops.roi_align(sliced.contiguous(), rois, 3),
                               rtol=0, atol=0)
    as_list = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    order = torch.cat([(rois[:, 0] == i).nonzero().flatten() for i in range(2)])
    assert torch.equal(visionops.roi_align(x, as_list, 3, 1.0, 2, True), base[order])
    assert visionops.roi_align(x, rois[:0], 3).shape == (0, 6, 3, 3)
    assert visionops.roi_align(x[:, :0], rois, 3).shape == (20, 0, 3, 3)
    assert visionops.roi_align(x[:, :, :0], rois, 3).abs().sum() == 0  # an empty map pools zeros
    assert visionops.roi_align(x, rois, (0, 3)).shape == (20, 6, 0, 3)


def test_large_rois_visit_only_the_map():
    # A 1,000-pixel RoI on a 12-pixel map: 143 adaptive points per bin side,
    # of which the kernel visits only those on the map (binary search).
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 12, 12, generator=g)
    rois = torch.tensor([[0.0, -500.0, -480.0, 500.0, 520.0], [0.0, 3.0, -800.0, 9.0, 200.0]])
    assert torch.equal(visionops.roi_align(x, rois, 7, 1.0, -1, True), tv_ops.roi_align(x, rois, 7, 1.0, -1, True))
    # 10^9 pixels: torchvision would sample 10^16 points per bin; we finish.
    huge = torch.tensor([[0.0, -1e9, -1e9, 1e9, 1e9]])
    out = visionops.roi_align(x, huge, 7, 1.0, -1, False)
    assert torch.isfinite(out).all()


def test_nan_and_inf_rois(device):
    x = torch.randn(1, 2, 8, 8, device=device, requires_grad=True)
    nan, inf = float("nan"), float("inf")
    rois = torch.tensor([[0, nan, 1, 5, 5], [0, 1, 1, inf, 5], [0, -inf, -inf, inf, inf], [0, 1, 1, 5, 5]],
                        device=device)
    for sr in (-1, 2):
        out = visionops.roi_align(x, rois, 2, 1.0, sr, True)
        # Sampling points at non-finite positions contribute nothing.
        assert torch.equal(out[:3], torch.zeros_like(out[:3]))
        assert torch.equal(out[3], visionops.roi_align(x, rois[3:], 2, 1.0, sr, True)[0])
        (grad,) = torch.autograd.grad(out[:3].sum(), x)
        assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("bad", [2.0, -1.0, 5e9, float("nan")])
def test_bad_batch_index_pools_zeros(bad, device):
    # The same on every device: a RoI whose batch index is not an image pools
    # zeros and passes no gradient (CUDA could only refuse it with a host sync).
    g = torch.Generator().manual_seed(12)
    x = torch.randn(2, 2, 8, 8, generator=g).to(device).requires_grad_()
    rois = torch.tensor([[0.0, 1, 1, 4, 4], [bad, 1, 1, 4, 4], [1.0, 2, 2, 6, 7]], device=device)
    for sr, aligned in ((2, True), (-1, False)):
        out = visionops.roi_align(x, rois, 2, 1.0, sr, aligned)
        assert torch.equal(out[1], torch.zeros_like(out[1]))
        good = rois[[0, 2]]
        assert torch.equal(out[[0, 2]], visionops.roi_align(x, good, 2, 1.0, sr, aligned))
        (grad,) = torch.autograd.grad(out.sum(), x)
        (want,) = torch.autograd.grad(visionops.roi_align(x, good, 2, 1.0, sr, aligned).sum(), x)
        assert torch.equal(grad, want)


def test_batch_index_truncates_as_torchvision():
    x = torch.randn(2, 2, 8, 8)
    # torchvision truncates the float index towards zero; so do we.
    rois = torch.tensor([[1.9, 1, 1, 4, 4], [-0.5, 1, 1, 4, 4]])
    assert torch.equal(visionops.roi_align(x, rois, 2), tv_ops.roi_align(x, rois, 2))


@pytest.mark.parametrize("aligned", [False, True])
def test_backward_matches_torchvision(aligned):
    g = torch.Generator().manual_seed(11)
    rois = make_rois(30, 2, 13, 17, 0.5, g=g)
    grad = torch.randn(30, 5, 3, 3, generator=g)
    ours = torch.ops.visionops._roi_align_backward(grad, rois, 0.5, 3, 3, 2, 5, 13, 17, 2, aligned, False)
    theirs = torch.ops.torchvision._roi_align_backward(grad, rois, 0.5, 3, 3, 2, 5, 13, 17, 2, aligned)
    assert torch.equal(ours, theirs)  # same contributions, same order


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_gradcheck(aligned, sampling_ratio, device):
    g = torch.Generator().manual_seed(13)
    x = torch.randn(2, 2, 6, 7, generator=g, dtype=torch.float64).to(device).requires_grad_()
    rois = make_rois(6, 2, 6, 7, 1.0, dtype=torch.float64, device=device, g=g)
    assert torch.autograd.gradcheck(lambda t: visionops.roi_align(t, rois, 2, 1.0, sampling_ratio, aligned), (x,))


def test_double_backward_is_refused():
    x = torch.randn(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    out = visionops.roi_align(x, torch.tensor([[0.0, 0, 0, 3, 3]], dtype=torch.float64), 2)
    # The upstream gradient 2 * out depends on x, so the backward op is in the graph.
    (g,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="visionops.roi_align: double backward is not supported"):
        g.sum().backward()


def test_backward_deterministic_and_thread_independent():
    g = torch.Generator().manual_seed(17)
    rois = make_rois(300, 2, 20, 24, 1.0, g=g)
    grad = torch.randn(300, 48, 7, 7, generator=g)

    def backward(threads: int, channels_last: bool) -> torch.Tensor:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return torch.ops.visionops._roi_align_backward(grad, rois, 1.0, 7, 7, 2, 48, 20, 24, 2, True,
                                                           channels_last)
        finally:
            torch.set_num_threads(old)

    one = backward(1, False)
    assert torch.equal(one, backward(1, False))
    assert torch.equal(one, backward(2, False))
    assert torch.equal(one, backward(2, True))


def test_channels_last_gradient(device):
    x = torch.randn(2, 8, 9, 10, device=device).contiguous(memory_format=torch.channels_last).requires_grad_()
    rois = make_rois(10, 2, 9, 10, 1.0, device=device, g=torch.Generator().manual_seed(2))
    visionops.roi_align(x, rois, 3, 1.0, 2, True).sum().backward()
    assert x.grad.is_contiguous(memory_format=torch.channels_last)
    x2 = x.detach().contiguous().requires_grad_()
    visionops.roi_align(x2, rois, 3, 1.0, 2, True).sum().backward()
    assert x2.grad.is_contiguous()
    torch.testing.assert_close(x.grad, x2.grad, rtol=0, atol=0)


def test_module():
    m = visionops.RoIAlign((2, 3), 0.5, 2, aligned=True)
    assert repr(m) == repr(tv_ops.RoIAlign((2, 3), 0.5, 2, aligned=True))
    x = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0.0, 1, 1, 9, 12]])
    assert torch.equal(m(x, rois), tv_ops.RoIAlign((2, 3), 0.5, 2, aligned=True)(x, rois))


def test_autocast_cpu():
    x = torch.randn(1, 2, 8, 8).to(torch.bfloat16)
    rois = torch.tensor([[0.0, 1, 1, 6, 6]])  # float32 RoIs with a bf16 map: autocast reconciles them
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = visionops.roi_align(x, rois, 2, 1.0, 2, True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), visionops.roi_align(x.float(), rois, 2, 1.0, 2, True), rtol=1e-2, atol=1e-2)


@requires_cuda
@pytest.mark.parametrize("aligned", [False, True])
def test_cuda_matches_cpu_and_deterministic_mode(aligned):
    g = torch.Generator().manual_seed(19)
    x = torch.randn(2, 16, 20, 24, generator=g)
    rois = make_rois(60, 2, 20, 24, 1.0, g=g)
    grad = torch.randn(60, 16, 5, 5, generator=g)
    cpu_out = visionops.roi_align(x, rois, 5, 1.0, -1, aligned)
    for layout in (torch.contiguous_format, torch.channels_last):
        xc = x.cuda().contiguous(memory_format=layout)
        torch.testing.assert_close(visionops.roi_align(xc, rois.cuda(), 5, 1.0, -1, aligned).cpu(), cpu_out,
                                   rtol=1e-5, atol=1e-5)
    cpu_grad = torch.ops.visionops._roi_align_backward(grad, rois, 1.0, 5, 5, 2, 16, 20, 24, -1, aligned, False)
    args = (grad.cuda(), rois.cuda(), 1.0, 5, 5, 2, 16, 20, 24, -1, aligned)
    for channels_last in (False, True):  # channels-last: pairs of channels per vector atomic
        atomic = torch.ops.visionops._roi_align_backward(*args, channels_last)
        torch.testing.assert_close(atomic.cpu(), cpu_grad, rtol=1e-4, atol=1e-5)
    was, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        det = [torch.ops.visionops._roi_align_backward(*args, cl) for cl in (False, False, True)]
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)
    assert torch.equal(det[0], det[1])  # run to run
    assert torch.equal(det[0], det[2].contiguous())
    torch.testing.assert_close(det[0].cpu(), cpu_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_opcheck(channels_last, device):
    g = torch.Generator().manual_seed(23)
    x = torch.randn(2, 3, 8, 9, generator=g, dtype=torch.float64).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    rois = make_rois(5, 2, 8, 9, 1.0, dtype=torch.float64, device=device, g=g)
    torch.library.opcheck(torch.ops.visionops.roi_align.default, (x, rois, 1.0, 2, 3, 2, True))
    grad = torch.randn(5, 3, 2, 3, dtype=torch.float64, device=device)
    torch.library.opcheck(torch.ops.visionops._roi_align_backward.default,
                          (grad, rois, 1.0, 2, 3, 2, 3, 8, 9, 2, True, channels_last))


def test_compile_fullgraph(device):
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(29)
    x = torch.randn(2, 4, 10, 12, generator=g).to(device).requires_grad_()
    rois = make_rois(9, 2, 10, 12, 0.5, device=device, g=g)

    def head(t, r):
        return visionops.roi_align(t, r, (3, 3), 0.5, 2, True).relu().square().sum()

    for backend in ("aot_eager", "inductor"):
        torch._dynamo.reset()
        counter = torch._dynamo.testing.CompileCounterWithBackend(backend)
        compiled = torch.compile(head, fullgraph=True, backend=counter, dynamic=True)
        (got,) = torch.autograd.grad(compiled(x, rois), x)
        (expected,) = torch.autograd.grad(head(x, rois), x)
        torch.testing.assert_close(got, expected)
        assert counter.frame_count == 1
        # A different number of RoIs reuses the dynamic graph: no new compile,
        # and the eager result.
        torch.testing.assert_close(compiled(x, rois[:4]), head(x, rois[:4]))
        assert counter.frame_count == 1
    torch._dynamo.reset()
