"""dice_loss: the lecture notes' worked example (stated in the test), the float64 definition, smp's and
MONAI's Dice where the semantics coincide, every mode and option,
gradients, low precision, bad class ids, opcheck and compile."""

from __future__ import annotations

import pytest
import torch

import visionops
from visionops._extension import _C

from .. import references as ref
from ..conftest import require, requires_cuda, run_python

CASES = [
    {"mode": "binary"},
    {"mode": "binary", "ignore_index": 2},
    {"mode": "multiclass"},
    {"mode": "multiclass", "ignore_index": 255},
    {"mode": "multiclass", "squared": True, "smooth": 1.0},
    {"mode": "multiclass", "log_loss": True, "smooth": 0.5},
    {"mode": "multilabel"},
    {"mode": "multilabel", "squared": True, "log_loss": True},
    {"mode": "multiclass", "from_logits": False},
]


def make(mode: str, b=2, c=4, h=9, w=7, dtype=torch.float64, device="cpu", ignore=None, g=None, from_logits=True):
    if mode == "binary":
        c = 1
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64) * 2
    if not from_logits:
        x = x.softmax(1) if mode == "multiclass" else x.sigmoid()
    if mode == "multiclass":
        t = torch.randint(0, c, (b, h, w), generator=g)
        t[0, 0, 0] = c - 1  # every class present at least once
        if ignore is not None:
            t[:, ::3, ::2] = ignore
    else:
        t = (torch.rand(b, c, h, w, generator=g) > 0.6).double()
        if ignore is not None:
            t[:, :, ::3, ::2] = ignore
    return x.to(dtype=dtype, device=device), t.to(device)


def test_lecture_notes_worked_example():
    # The lecture notes' Dice example: segment the top-left pixel of a 2 x 2 image. Probabilities 0.9, 0.2,
    # 0.1, 0.3: Dice = 2 * 0.9 / (1.5 + 1) = 0.72, the loss 0.28.
    p = torch.tensor([[[[0.9, 0.2], [0.1, 0.3]]]], dtype=torch.float64)
    t = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]], dtype=torch.float64)
    torch.testing.assert_close(visionops.dice_loss(p, t, from_logits=False), torch.tensor(0.28, dtype=torch.float64))
    # Perfect prediction: 0. No overlap: 1.
    assert visionops.dice_loss(t, t, from_logits=False).item() == 0.0
    assert visionops.dice_loss(1 - t, t, from_logits=False).item() == 1.0


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_definition(case, reduction, device):
    g = torch.Generator().manual_seed(len(str(case)))
    opts = dict(case)
    x, t = make(opts["mode"], device=device, ignore=opts.get("ignore_index"), g=g,
                from_logits=opts.get("from_logits", True))
    weight = torch.rand(x.shape[1], generator=g, dtype=torch.float64).to(device) if reduction != "sum" else None
    expected = ref.dice_loss(x, t, weight=weight, reduction=reduction, **opts)
    ours = visionops.dice_loss(x, t, weight=weight, reduction=reduction, **opts)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)
    xg = x.clone().requires_grad_()
    (got,) = torch.autograd.grad(visionops.dice_loss(xg, t, weight=weight, reduction=reduction, **opts).sum(), xg)
    (want,) = torch.autograd.grad(ref.dice_loss(xg, t, weight=weight, reduction=reduction, **opts).sum(), xg)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("hw", [(17, 23), (10, 30), (16, 8), (1, 5)])
def test_multiclass_tiles_blocks_and_tail(hw, dtype, device):
    # The common multiclass case (logits, no ignore_index, not squared) runs
    # in tiles of 128 pixels, then blocks of 16, then a padded tail: 391
    # pixels are 3 tiles and a tail of 7, 300 are 2 tiles, 2 blocks and a
    # tail of 12, 128 one tile, 5 only a tail. Each part against the float64
    # definition, loss and gradient, with several images and 21 classes.
    h, w = hw
    g = torch.Generator().manual_seed(h * w)
    x, t = make("multiclass", b=3, c=21, h=h, w=w, dtype=dtype, device=device, g=g)
    x = x * 4  # logits far apart: probabilities near 0 and 1 as well
    xg = x.clone().requires_grad_()
    ours = visionops.dice_loss(xg, t, mode="multiclass", reduction="none")
    (got,) = torch.autograd.grad(ours.sum(), xg)
    xd = x.double().requires_grad_()
    want_loss = ref.dice_loss(xd, t, mode="multiclass", reduction="none")
    (want,) = torch.autograd.grad(want_loss.sum(), xd)
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 1e-7}
    torch.testing.assert_close(ours.double(), want_loss.detach(), **tol)
    torch.testing.assert_close(got.double(), want, **tol)


@pytest.mark.parametrize("hw", [(17, 23), (10, 30), (16, 8), (1, 5)])
def test_multiclass_float16_tiles_blocks_and_tail_as_float32(hw, device):
    # float16 logits go through the same tiles, blocks and tail, staged as
    # floats on the CPU's vector paths: the gradient is float32's, rounded
    # by torch, bit for bit; the loss within float16's rounding of it.
    h, w = hw
    g = torch.Generator().manual_seed(h * w + 1)
    x, t = make("multiclass", b=3, c=21, h=h, w=w, dtype=torch.float32, device=device, g=g)
    x = (x * 4).half()

    def run(inputs):
        xg = inputs.clone().requires_grad_()
        loss = visionops.dice_loss(xg, t, mode="multiclass", reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), xg)
        return loss.detach(), grad

    (loss16, got), (loss32, want) = run(x), run(x.float())
    if device == "cpu":
        assert torch.equal(got.view(torch.int16), want.half().view(torch.int16))
    else:  # the CUDA kernels' own order of additions
        torch.testing.assert_close(got.float(), want, rtol=1e-3, atol=1e-7)
    torch.testing.assert_close(loss16.float(), loss32, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_class_formula_at_its_bounds(reduction, device):
    # The per-class loss and gradient coefficients (losses/math.h, run by
    # dice_reduction.h's loops) where their max()es bind: eps above a class's
    # P + T + smooth (the clamp passes no gradient), log_loss with a Dice
    # below eps, a class without target pixels, zero and negative weights,
    # smooth.
    # Against the float64 definition, loss and gradient.
    g = torch.Generator().manual_seed(23)
    x, t = make("multilabel", b=2, c=5, h=6, w=7, device=device, g=g)
    t[:, 4] = 0  # no target pixels: loss 0
    t[:, 3] = 0
    t[0, 3, 0, 0] = 1  # one target pixel, probabilities near 0: P + T about 1.2, Dice about 0.004
    x[:, 3] = -6.0
    weight = torch.tensor([1.0, 0.0, 2.5, -0.5, 3.0], dtype=torch.float64, device=device)
    for opts in ({"eps": 30.0}, {"log_loss": True, "eps": 0.05}, {"log_loss": True, "smooth": 0.5}):
        for w in (None, weight):
            xo = x.clone().requires_grad_()
            xr = x.clone().requires_grad_()
            ours = visionops.dice_loss(xo, t, mode="multilabel", weight=w, reduction=reduction, **opts)
            want = ref.dice_loss(xr, t, mode="multilabel", weight=w, reduction=reduction, **opts)
            torch.testing.assert_close(ours, want, rtol=1e-12, atol=1e-12)
            (got,) = torch.autograd.grad(ours.sum(), xo)
            (exp,) = torch.autograd.grad(want.sum(), xr)
            torch.testing.assert_close(got, exp, rtol=1e-10, atol=1e-12)
            assert (got[:, 4] == 0).all()
            if opts == {"eps": 30.0}:  # class 3 clamped at eps: P and T pass no gradient, I does
                assert (got[:, 3] == 0).sum() == got[:, 3].numel() - 1


def test_gradcheck(device):
    g = torch.Generator().manual_seed(3)
    for opts in ({"mode": "binary"}, {"mode": "multiclass", "ignore_index": 255, "log_loss": True},
                 {"mode": "multilabel", "squared": True, "smooth": 0.3}):
        x, t = make(opts["mode"], b=2, c=3, h=3, w=4, device=device, ignore=opts.get("ignore_index"), g=g)
        assert torch.autograd.gradcheck(lambda a, o=opts, t=t: visionops.dice_loss(a, t, **o), (x.requires_grad_(),))


def test_smp_parity():
    smp_losses = require("segmentation_models_pytorch.losses")
    g = torch.Generator().manual_seed(4)
    for mode, extra in (("binary", {}), ("multiclass", {}), ("multilabel", {}), ("multiclass", {"ignore_index": 255}),
                        ("multiclass", {"log_loss": True})):
        x, t = make(mode, dtype=torch.float32, ignore=extra.get("ignore_index"), g=g)
        if mode != "multiclass":
            t = t.float()
        theirs = smp_losses.DiceLoss(mode, **extra)(x, t)
        ours = visionops.dice_loss(x, t, mode=mode, **extra)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    # class weights: smp's weighted mean
    x, t = make("multiclass", dtype=torch.float32, g=g)
    w = [0.5, 1.0, 2.0, 0.25]
    torch.testing.assert_close(visionops.dice_loss(x, t, mode="multiclass", weight=torch.tensor(w)),
                               smp_losses.DiceLoss("multiclass", class_weights=w)(x, t), rtol=1e-5, atol=1e-6)


def test_monai_parity():
    monai_losses = require("monai.losses")
    g = torch.Generator().manual_seed(5)
    x, t = make("multiclass", dtype=torch.float32, g=g)
    theirs = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)(
        x, t[:, None])
    torch.testing.assert_close(visionops.dice_loss(x, t, mode="multiclass", smooth=1e-5), theirs, rtol=1e-5,
                               atol=1e-6)
    x, t = make("multilabel", dtype=torch.float32, g=g)
    t = t.float()
    theirs = monai_losses.DiceLoss(sigmoid=True, batch=True, squared_pred=True, smooth_nr=1e-5, smooth_dr=1e-5)(x, t)
    torch.testing.assert_close(visionops.dice_loss(x, t, mode="multilabel", squared=True, smooth=1e-5), theirs,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(dtype, device):
    # Within twice the error of the definition computed in that dtype.
    g = torch.Generator().manual_seed(6)
    x, t = make("multiclass", b=2, c=5, h=32, w=32, dtype=dtype, device=device, g=g)
    exact = ref.dice_loss(x, t, mode="multiclass", reduction="none")
    plain = ref.dice_loss(x, t, mode="multiclass", reduction="none", dtype=dtype)
    ours = visionops.dice_loss(x, t, mode="multiclass", reduction="none")
    assert ours.dtype == dtype
    # Each class's loss is at most one rounding to the dtype from the float64
    # definition, or within twice plain PyTorch's error, whichever is larger.
    err = (ours.double() - exact).abs()
    rounding = torch.finfo(dtype).eps * exact.abs()
    assert (err <= torch.maximum(rounding, 2 * (plain.double() - exact).abs().max())).all(), (err, rounding)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode,ignore", [("binary", 7), ("binary", None), ("multiclass", 7), ("multiclass", None)])
def test_low_precision_gradient_rounds_as_torch(mode, ignore, dtype):
    # The CPU kernels compute half and bfloat16 inputs in float and round the
    # gradient as c10 does (core/float16_bits.h's arithmetic in the scalar
    # loops, core/simd.h's stores in the fused sigmoid loops): the same bits
    # as computing from the same values as float32 (through the same loops:
    # with ignore_index the scalar ones, binary without it the fused ones,
    # multiclass without it the tiles, from float16 staged as floats) and
    # rounding with torch's .to(dtype). Gradients of a 64 x 64 image
    # (32 x 32 without ignored pixels) are around 1e-5, many of them half
    # subnormals. With a NaN logit every gradient is NaN in both (it makes
    # its class's statistics NaN; softmax spreads it to every class).
    g = torch.Generator().manual_seed(21)
    side = 64 if ignore is not None else 32
    x, t = make(mode, b=2, c=3 if mode == "multiclass" else 1, h=side, w=side, dtype=torch.float32, g=g, ignore=ignore)
    x = (x * 8).to(dtype)

    def grad(inputs):
        xx = inputs.clone().requires_grad_()
        visionops.dice_loss(xx, t, mode=mode, ignore_index=ignore, reduction="sum").backward()
        return xx.grad

    got, want = grad(x), grad(x.float()).to(dtype)
    assert got.dtype == dtype and not want.isnan().any()
    assert torch.equal(got.view(torch.int16), want.view(torch.int16))
    if dtype == torch.float16:
        assert (want.abs() < 2**-14).any() and (want.abs() >= 2**-14).any()  # subnormals and normals
    x.view(-1)[5] = float("nan")
    assert grad(x).isnan().all() and grad(x.float()).isnan().all()


def test_target_types_and_empty(device):
    g = torch.Generator().manual_seed(7)
    x, t = make("multiclass", dtype=torch.float32, device=device, g=g)
    base = visionops.dice_loss(x, t, mode="multiclass")
    for dt in (torch.uint8, torch.int32):
        assert torch.equal(visionops.dice_loss(x, t.to(dt), mode="multiclass"), base)
    xb, tb = make("binary", dtype=torch.float32, device=device, g=g)
    assert torch.equal(visionops.dice_loss(xb, tb.bool()), visionops.dice_loss(xb, tb.float()))
    assert torch.equal(visionops.dice_loss(xb, tb[:, 0].float()), visionops.dice_loss(xb, tb.float()))
    # No pixels: every class is absent from the target, so the loss is 0.
    e = visionops.dice_loss(x[:, :, :0], t[:, :0], mode="multiclass")
    assert e.item() == 0.0


TARGET_DTYPES = [torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
                 torch.bfloat16, torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", [{"mode": "binary"}, {"mode": "binary", "ignore_index": 2},
                                  {"mode": "multilabel"}, {"mode": "multiclass"},
                                  {"mode": "multiclass", "ignore_index": 100}])
def test_every_target_dtype_gives_the_same_loss_and_gradient(case, dtype, device):
    """The CPU kernels read bytes, int64, float32 and the inputs' dtype as they are and convert the other
    target dtypes first: every dtype that holds the targets' values gives the loss and the gradient of
    int64 class ids or uint8 masks (both read as they are), bit for bit. 37 x 29 pixels: whole blocks and a partial one."""
    g = torch.Generator().manual_seed(11)
    mode = case["mode"]
    x, t = make(mode, b=2, c=3, h=37, w=29, g=g, ignore=case.get("ignore_index"))
    x = x.to(device=device, dtype=dtype)

    def run(targets):
        xx = x.clone().requires_grad_()
        loss = visionops.dice_loss(xx, targets, **case)
        loss.backward()
        return loss.detach(), xx.grad

    want = run(t.to(torch.int64 if mode == "multiclass" else torch.uint8))
    for td in TARGET_DTYPES:
        if td == torch.bool and ("ignore_index" in case or mode == "multiclass"):
            continue  # a bool holds neither ignore_index nor class ids above 1
        if td.is_floating_point and mode == "multiclass":
            continue  # class ids must be integers (an error: tests/test_errors.py)
        got = run(t.to(td))
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), (td, got[0], want[0])


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_saturated_and_infinite_logits(mode, device):
    # The sigmoid saturates: logits of any size, infinities included, give
    # the float64 definition's loss and gradient (sigmoid(-inf) is 6.1e-39
    # here, 0 there: an absolute difference the gradient cannot show).
    g = torch.Generator().manual_seed(15)
    x, t = make(mode, dtype=torch.float32, device=device, g=g)
    edge = torch.tensor([float("inf"), -float("inf"), 1e30, -1e30, 104.0, -104.0, 88.5, -88.5, 87.0, -87.0, 86.0,
                         -86.0, 20.0, -20.0, 0.0, -0.0])
    x.view(-1)[: edge.numel()] = edge.to(device)
    xx = x.clone().requires_grad_()
    loss = visionops.dice_loss(xx, t, mode=mode)
    (got,) = torch.autograd.grad(loss, xx)
    xd = x.double().requires_grad_()
    want_loss = ref.dice_loss(xd, t, mode=mode)
    (want,) = torch.autograd.grad(want_loss, xd)
    torch.testing.assert_close(loss.double(), want_loss.detach(), rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-9)
    assert got.isfinite().all()


def test_nan_logits(device):
    # A NaN logit makes its class's statistics NaN: that class's loss is NaN
    # (and so is a loss reduced over the classes), and so is the gradient of
    # every pixel of that class; the other classes are untouched.
    g = torch.Generator().manual_seed(14)
    x, t = make("multilabel", dtype=torch.float32, device=device, g=g)
    x[0, 1, 2, 3] = float("nan")
    xx = x.clone().requires_grad_()
    loss = visionops.dice_loss(xx, t, mode="multilabel", reduction="none")
    assert loss[1].isnan() and not loss[[0, 2, 3]].isnan().any()
    assert visionops.dice_loss(x, t, mode="multilabel").isnan()
    (gx,) = torch.autograd.grad(loss.sum(), xx)
    assert gx[:, 1].isnan().all() and gx[:, [0, 2, 3]].isfinite().all()
    xm, tm = make("multiclass", dtype=torch.float32, device=device, g=g)
    xm[1, 2, 0, 0] = float("nan")  # softmax: the pixel's probabilities for every class
    xm.requires_grad_()
    lm = visionops.dice_loss(xm, tm, mode="multiclass", reduction="none")
    assert lm.isnan().all()


@pytest.mark.parametrize("mode, shape", [("binary", (4, 1, 512, 512)), ("multilabel", (2, 3, 511, 513))])
def test_large_gradient(mode, shape):
    # A gradient of 4 MiB or more, in memory already mapped, is written with
    # non-temporal stores where a plane starts 64-byte aligned (every
    # 512 x 512 plane; of the odd 511 x 513 ones only the first, the others
    # with plain stores): the float64 definition's gradient either way.
    # test_memory.py's test_large_outputs_into_fresh_and_reused_memory makes
    # sure both the fresh and the reused case run.
    g = torch.Generator().manual_seed(16)
    x = torch.randn(shape, generator=g) * 3
    t = (torch.rand(shape, generator=g) > 0.5).float()
    xx = x.clone().requires_grad_()
    (got,) = torch.autograd.grad(visionops.dice_loss(xx, t, mode=mode), xx)
    xd = x.double().requires_grad_()
    (want,) = torch.autograd.grad(ref.dice_loss(xd, t.double(), mode=mode), xd)
    assert got.numel() * 4 >= 4 << 20
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("target_dtype", [torch.float32, torch.uint8])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("mode, shape", [("binary", (3, 1, 300, 311)), ("multilabel", (2, 3, 257, 1100))])
def test_sigmoid_statistics_over_runs_of_chunks(mode, shape, squared, target_dtype):
    # The common sigmoid case (logits, no ignore_index) sums each chunk of
    # 4096 pixels of one image and class in float, then the chunk in
    # float64; a task's whole chunks go through the vector loop at most 64
    # at a time, the image's last, partial chunk on its own. 300 x 311 is 22
    # whole chunks and 3252 pixels (203 blocks of 16 and 4); 257 x 1100 is 69
    # whole chunks (a run of 64, then 5) and 76 pixels. Against the float64
    # definition per class; and the same bits at 1 and 2 threads, where the
    # second thread's range starts inside an image (the statistics are
    # summed chunk by chunk in one order whatever the split).
    g = torch.Generator().manual_seed(shape[-1])
    x = torch.randn(shape, generator=g) * 4
    t = (torch.rand(shape, generator=g) > 0.5).to(target_dtype)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = torch.ops.visionops.dice_loss(x, t, mode, True, 0.0, 1e-7, squared, None, None, False, "none")
        torch.set_num_threads(2)
        two = torch.ops.visionops.dice_loss(x, t, mode, True, 0.0, 1e-7, squared, None, None, False, "none")
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, two):
        assert torch.equal(a, b)
    want = ref.dice_loss(x.double(), t.double(), mode=mode, squared=squared, reduction="none")
    torch.testing.assert_close(one[0].double(), want, rtol=1e-5, atol=1e-7)
    p = x.double().sigmoid()
    td = t.double()
    dims = (0, 2, 3)
    stats = torch.stack([(p * td).sum(dims), (p * p if squared else p).sum(dims), td.sum(dims)])
    torch.testing.assert_close(one[1], stats, rtol=1e-6, atol=0)


def test_errors(device):
    x, t = make("multiclass", dtype=torch.float32, device=device, g=torch.Generator().manual_seed(8))
    bad = t.clone()
    bad[0, 1, 1] = 4
    with pytest.raises(IndexError, match=r"visionops.dice_loss: targets hold class id 4, outside \[0, 4\)"):
        visionops.dice_loss(x, bad, mode="multiclass")
    bad[0, 1, 1] = -1
    with pytest.raises(IndexError, match="class id -1"):
        visionops.dice_loss(x, bad, mode="multiclass")
    with pytest.raises(ValueError, match=r"visionops.dice_loss: targets must be a class map of shape \[B, ...\]"):
        visionops.dice_loss(x, t[:, :3], mode="multiclass")
    with pytest.raises(ValueError, match="visionops.dice_loss: mode must be one of"):
        visionops.dice_loss(x, t, mode="multi")
    with pytest.raises(ValueError, match="visionops.dice_loss: binary inputs must have one channel"):
        visionops.dice_loss(x, t.float())
    with pytest.raises(ValueError, match=r"visionops.dice_loss: weight must have one value per class, \[4\]"):
        visionops.dice_loss(x, t, mode="multiclass", weight=torch.ones(3, device=device))


def test_module_opcheck_and_compile(device):
    g = torch.Generator().manual_seed(9)
    x, t = make("multiclass", b=2, c=3, h=4, w=5, device=device, g=g)
    m = visionops.DiceLoss("multiclass", smooth=0.1)
    assert torch.equal(m(x, t), visionops.dice_loss(x, t, mode="multiclass", smooth=0.1))
    x.requires_grad_()
    torch.library.opcheck(torch.ops.visionops.dice_loss.default,
                          (x, t, "multiclass", True, 0.1, 1e-7, False, None, None, False, "mean"))
    torch._dynamo.reset()
    f = torch.compile(lambda a: m(a, t), fullgraph=True, backend="aot_eager")
    (got,) = torch.autograd.grad(f(x), x)
    (want,) = torch.autograd.grad(m(x, t), x)
    torch.testing.assert_close(got, want)
    torch._dynamo.reset()


def _dice_results(path):
    """Loss and gradient of binary and multilabel Dice on float32, float16
    and bfloat16 logits over the whole exp range, with float, bool and byte
    targets and targets of the logits' dtype, squared or not."""
    g = torch.Generator().manual_seed(0)
    out = {}
    # 37 x 29: under one chunk of 4096 pixels; 97 x 130: three whole chunks
    # (one run of the vector loop) and 322 pixels.
    for hw in ((37, 29), (97, 130)):
        x32 = torch.randn(3, 2, *hw, generator=g) * 12
        x32.view(-1)[:8] = torch.tensor([103.0, 100.0, -100.0, -88.5, 0.0, -0.0, 1e-30, -17.0])
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            x = x32.to(dtype)
            mask = torch.rand(x.shape, generator=g) > 0.5
            for name, t in [("float", mask.float()), ("bool", mask), ("uint8", mask.to(torch.uint8)),
                            ("own", mask.to(dtype))]:
                for squared in (False, True):
                    for mode, xs, ts in (("binary", x[:, :1], t[:, :1]), ("multilabel", x, t)):
                        xx = xs.clone().requires_grad_()
                        loss = visionops.dice_loss(xx, ts, mode=mode, squared=squared)
                        loss.backward()
                        out[f"{hw}-{dtype}-{name}-{squared}-{mode}"] = (loss.detach(), xx.grad)
    torch.save(out, path)


@pytest.mark.skipif(_C.cpu_isa() != "avx512", reason=f"AVX-512 path: this process runs the {_C.cpu_isa()} path "
                    "(the CPU lacks AVX-512, or VISIONOPS_CPU_ISA asks for less), so there is nothing to compare the "
                    "AVX2 loops with")
def test_avx2_sigmoid_loops_match_avx512_bitwise(tmp_path):
    # The fused sigmoid loops (csrc/losses/dice_sigmoid_simd.h) are one
    # source over core/simd.h's vectors: one zmm register a vector here,
    # two ymm registers under VISIONOPS_CPU_ISA=avx2, as an AVX2 machine
    # runs them. Both compute the same roundings (multiply-adds fused alike,
    # 2^n added to the exponent bits as an integer, 16-bit values converted
    # exactly and rounded to nearest even): equal bits.
    code = f"from tests.ops.test_dice_loss import _dice_results; _dice_results({str(tmp_path / 'portable.pt')!r})"
    done = run_python(code, VISIONOPS_CPU_ISA="avx2")
    assert done.returncode == 0, done.stderr[-2000:]
    _dice_results(tmp_path / "here.pt")
    here, portable = torch.load(tmp_path / "here.pt"), torch.load(tmp_path / "portable.pt")
    assert here.keys() == portable.keys()
    for key in here:
        for a, b in zip(here[key], portable[key]):
            assert not a.isnan().any(), key
            assert torch.equal(a, b), key



@requires_cuda
@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_cuda_statistics_deterministic_and_softmax_backward(mode):
    # The block reduction's last step is read after a barrier: a race there
    # would show as statistics that change from run to run. The multiclass
    # backward (one thread per pixel, O(C)) matches the CPU's.
    g = torch.Generator().manual_seed(41)
    c = 1 if mode == "binary" else 21
    x = torch.randn(4, c, 96, 96, generator=g)
    t = (torch.rand(4, 1, 96, 96, generator=g) > 0.5).float() if mode == "binary" else \
        torch.randint(0, c, (4, 96, 96), generator=g)
    args = (mode, True, 0.0, 1e-7, False, None, None, False, "mean")
    first = torch.ops.visionops.dice_loss(x.cuda(), t.cuda(), *args)[1]
    for _ in range(50):
        assert torch.equal(torch.ops.visionops.dice_loss(x.cuda(), t.cuda(), *args)[1], first)
    torch.testing.assert_close(first.cpu(), torch.ops.visionops.dice_loss(x, t, *args)[1], rtol=1e-6, atol=1e-3)
    xc, xg = x.clone().requires_grad_(), x.cuda().requires_grad_()
    (want,) = torch.autograd.grad(visionops.dice_loss(xc, t, mode=mode), xc)
    (got,) = torch.autograd.grad(visionops.dice_loss(xg, t.cuda(), mode=mode), xg)
    torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-9)
