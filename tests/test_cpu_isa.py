"""Every CPU instruction-set path runs the same math: $VISIONOPS_CPU_ISA
forces a lower path (AVX2 on an AVX-512 machine, the portable x86-64 one on
an AVX2 machine), and each path this machine can run gives the results of
the best one, bit for bit (the Dice loops, which allow multiply-adds, to
rounding on the portable path, which has no FMA). The ops' own tests compare
the best path with torchvision; equal bits carry that to the others."""

from __future__ import annotations

import pytest
import torch

import visionops
from visionops._extension import _C

from .conftest import random_boxes, run_python

ISAS = ["avx512", "avx2", "portable"]
_RANK = {name: i for i, name in enumerate(reversed(ISAS))}


def _supported(isa: str) -> bool:
    return _RANK[isa] <= _RANK[_C.cpu_isa_supported()]


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit (NaN included, which torch.equal never calls equal)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == torch.float32:
        return torch.equal(a.view(torch.int32), b.view(torch.int32))
    if a.dtype == torch.float64:
        return torch.equal(a.view(torch.int64), b.view(torch.int64))
    return torch.equal(a, b)


def _results(path: str) -> None:
    """Every op with a CPU hot loop, on inputs that exercise its paths; saved."""
    g = torch.Generator().manual_seed(0)
    a = random_boxes(300, size=400, scale=120, dtype=torch.float32, generator=g)
    b = random_boxes(200, size=400, scale=120, dtype=torch.float32, generator=g)
    s = torch.rand(300, generator=g)
    idx = torch.randint(0, 7, (300,), generator=g)
    out = {}
    for name in ("box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"):
        out[name] = getattr(visionops, name)(a, b)
    out["box_area"] = visionops.box_area(a)
    out["box_convert"] = visionops.box_convert(a, "xyxy", "cxcywh")
    p = a.clone().requires_grad_()
    loss = visionops.complete_box_iou_loss(p, a.flip(0), reduction="sum")
    loss.backward()
    out["ciou_loss"], out["ciou_loss_grad"] = loss.detach(), p.grad
    out["nms"] = visionops.nms(a, s, 0.5)
    out["batched_nms"] = visionops.batched_nms(a, s, idx, 0.5)
    out["padded_nms"] = visionops.padded_nms(a.view(3, 100, 4), s.view(3, 100), 0.4, 20)[0]
    out["soft_nms"] = visionops.soft_nms(a, s, 0.3, 0.5, 0.01, "gaussian")[1]
    x = torch.randn(2, 40, 32, 32, generator=g).requires_grad_()
    rois = torch.cat([torch.randint(0, 2, (50, 1), generator=g).float(),
                      random_boxes(50, size=120, scale=60, dtype=torch.float32, generator=g)], dim=1)
    ra = visionops.roi_align(x, rois, 7, 0.25, 2, True)
    rp = visionops.roi_pool(x, rois, 5, 0.25)
    (ga,) = torch.autograd.grad(ra.square().sum() + rp.sum(), x)
    out["roi_align"], out["roi_pool"], out["roi_grad"] = ra.detach(), rp.detach(), ga
    codes = torch.randn(300, 8, generator=g)
    out["decode"] = visionops.BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(codes, a)
    out["encode"] = visionops.BoxCoder((10.0, 10.0, 5.0, 5.0)).encode_single(a, b.repeat(2, 1)[:300])
    # The box coder's vector exp and log (AVX2, AVX-512; core/fast_math_simd.h)
    # against the scalar ones the portable path calls, over their whole
    # range: exp from underflow to overflow (clip off), and of NaN and +-inf;
    # log of denormal, zero, negative, huge, infinite and NaN size ratios.
    # 4003 values: whole vectors of 16 and a tail.
    special = torch.tensor([float("nan"), float("inf"), -float("inf")])
    dw = torch.cat([torch.linspace(-110.0, 95.0, 4000), special])
    ref = torch.tensor([[2.0, 3.0, 50.0, 40.0]]).repeat(dw.numel(), 1)
    coder = visionops.BoxCoder((1.0, 2.0, 1.0, 0.5), bbox_xform_clip=float("inf"))
    out["decode_range"] = coder.decode_single(torch.stack([dw / 7, dw / 3, dw, dw / 2], 1), ref)
    wide = torch.cat([torch.logspace(-45, 38.5, 4000), torch.tensor([0.0, -1.0, -1e-40]), special])
    gt = torch.stack([torch.zeros_like(wide), torch.zeros_like(wide), wide, wide.flip(0)], 1)
    out["encode_range"] = coder.encode_single(gt, torch.tensor([[0.0, 0.0, 1.0, 3.0]]).repeat(wide.numel(), 1))
    many = torch.randn(50, 91 * 4, generator=g)  # 91 classes: 16 codes a box at a time, and a tail
    out["decode_classes"] = visionops.BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(many, a[:50])
    logits = torch.randn(4, 2000, generator=g).requires_grad_()
    focal = visionops.sigmoid_focal_loss(logits, (torch.rand(4, 2000, generator=g) > 0.8).float(), reduction="sum")
    (gf,) = torch.autograd.grad(focal, logits)
    out["focal"], out["focal_grad"] = focal.detach(), gf
    # The vector focal loop (losses/focal_simd.h) with gamma other than 2
    # (exp and log of 1 - p_t), on logits across the float range, NaN and
    # +-inf, soft targets, 'none' (the per-element values and gradients).
    wide = torch.cat([torch.linspace(-120.0, 120.0, 3000), torch.tensor([float("nan"), float("inf"), -float("inf")])])
    xw = wide.repeat(2).requires_grad_()
    tw = torch.rand(xw.numel(), generator=g).round() * 0.9
    for gamma in (0.5, 1.5):
        focal = visionops.sigmoid_focal_loss(xw, tw, alpha=0.3, gamma=gamma, reduction="none")
        (gf,) = torch.autograd.grad(focal, xw, torch.rand(xw.numel(), generator=g))
        out[f"focal_gamma{gamma}"], out[f"focal_gamma{gamma}_grad"] = focal.detach(), gf
    heads = [torch.randn(2, 3 * 9, 16, 16, generator=g), torch.randn(2, 3 * 9, 8, 8, generator=g)]
    anchors = torch.tensor([[[10.0, 13], [16, 30], [33, 23]], [[30.0, 61], [62, 45], [59, 119]]])
    out["yolo"] = visionops.yolo_decode(heads, anchors, [8, 16], max_detections=40)[1]
    # The vector score (fast_math_simd.h's stable_sigmoid_simd) over its
    # whole range: objectness and class logits from -120 to 120, +-inf and
    # NaN, every candidate kept (threshold below 0), in score order.
    wide_head = torch.randn(1, 3 * 9, 32, 32, generator=g).view(1, 3, 9, 32 * 32)
    spread = torch.cat([torch.linspace(-120.0, 120.0, 1021), torch.tensor([float("nan"), float("inf"), -float("inf")])])
    wide_head[0, :, 4] = spread[torch.randperm(1024, generator=g)]
    wide_head[0, :, 5] = spread.flip(0)
    _, ws, wl, _ = visionops.yolo_decode([wide_head.view(1, 27, 32, 32)], anchors[:1], [8], score_threshold=-1.0,
                                         max_detections=3 * 1024)
    out["yolo_wide_scores"], out["yolo_wide_labels"] = ws, wl
    out["masks_to_boxes"] = visionops.masks_to_boxes(torch.rand(6, 50, 70, generator=g) > 0.9)
    out["lsap"] = visionops.batched_linear_sum_assignment(torch.rand(3, 30, 40, generator=g))
    # More rows than columns in float64 (DETR's shape): the first phase's
    # column minima in blocks of 8 (the last one overlapping), 4 and 1
    # columns, over two sets of rows and a leftover row (43 rows), then the
    # search on rows gathered as it visits them; with many exact ties, where
    # the first row of each column's least entry must be the same on every
    # path.
    tall = torch.rand(4, 43, 11, generator=g, dtype=torch.float64)
    tall_counts = torch.tensor([11, 7, 4, 1])
    out["lsap_tall"] = visionops.batched_linear_sum_assignment(tall, None, tall_counts)
    out["lsap_tall_max"] = visionops.batched_linear_sum_assignment(tall, maximize=True)
    ties = torch.randint(0, 3, (4, 43, 11), generator=g).double()
    out["lsap_tall_ties"] = visionops.batched_linear_sum_assignment(ties, None, tall_counts)
    out["lsap_tall_ties_max"] = visionops.batched_linear_sum_assignment(ties, None, tall_counts, maximize=True)
    for mode, c in (("binary", 1), ("multiclass", 5)):
        xd = torch.randn(2, c, 40, 40, generator=g).requires_grad_()
        t = (torch.rand(2, 1, 40, 40, generator=g) > 0.5).float() if mode == "binary" else \
            torch.randint(0, c, (2, 40, 40), generator=g)
        loss = visionops.dice_loss(xd, t, mode=mode)
        (gd,) = torch.autograd.grad(loss, xd)
        out[f"dice_{mode}"], out[f"dice_{mode}_grad"] = loss.detach(), gd
    torch.save(out, path)


def test_isa_is_reported_and_capped():
    best = _C.cpu_isa_supported()
    assert best in ISAS and _C.cpu_isa() in ISAS
    done = run_python("from visionops._extension import _C; print(_C.cpu_isa())", VISIONOPS_CPU_ISA="portable")
    assert done.returncode == 0 and done.stdout.strip() == "portable", done.stderr[-2000:]
    # Asking for more than the CPU has gives what it has.
    done = run_python("from visionops._extension import _C; print(_C.cpu_isa())", VISIONOPS_CPU_ISA="avx512")
    assert done.returncode == 0 and done.stdout.strip() == best, done.stderr[-2000:]


@pytest.mark.parametrize("isa", ["avx2", "portable"])
def test_lower_paths_give_the_best_paths_results(isa, tmp_path):
    if not _supported(isa):
        pytest.skip(f"the {isa} path: this CPU cannot run it (best: {_C.cpu_isa_supported()})")
    if isa == _C.cpu_isa():
        pytest.skip(f"the {isa} path is this process's own: nothing lower to compare it with here")
    lower = tmp_path / f"{isa}.pt"
    done = run_python(f"from tests.test_cpu_isa import _results; _results({str(lower)!r})", VISIONOPS_CPU_ISA=isa)
    assert done.returncode == 0, done.stderr[-2000:]
    _results(str(tmp_path / "best.pt"))
    best, low = torch.load(tmp_path / "best.pt"), torch.load(lower)
    assert best.keys() == low.keys()
    for key in best:
        if key.startswith("dice") and "portable" in (isa, _C.cpu_isa()):
            # The Dice loops allow multiply-adds; x86-64 without AVX2 has no
            # FMA (the portable path on either side: this process may run it,
            # under VISIONOPS_CPU_ISA).
            torch.testing.assert_close(low[key], best[key], rtol=1e-5, atol=1e-7, msg=key)
        else:
            assert _same_bits(low[key], best[key]), key
