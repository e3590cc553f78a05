"""Benchmark cases of the Dice loss, forward+backward: binary (16, 1, 512,
512) and softmax 21-class (8, 21, 256, 256) logits, against the same loss in
plain PyTorch (the float32 definition), segmentation_models_pytorch's
DiceLoss and MONAI's DiceLoss (batch=True), each where installed."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

import visionops
from visionops.bench.boxes import Case

ALL = ["dice_loss"]
DEFAULT_SIZES = [512]  # the binary case's side; the 21-class case uses half of it


def plain_dice_loss(inputs: Tensor, targets: Tensor, mode: str = "binary", from_logits: bool = True, smooth: float = 0.0,
              eps: float = 1e-7, squared: bool = False, ignore_index: int | None = None, weight: Tensor | None = None,
              log_loss: bool = False, reduction: str = "mean", dtype: torch.dtype = torch.float32) -> Tensor:
    """The definition of visionops.dice_loss in plain torch ops, in ``dtype``:
    the Dice loss as a user would write it, the benchmark's baseline (and, in
    float64, the tests' reference)."""
    x = inputs.to(dtype)
    b, c = x.shape[0], x.shape[1]
    if from_logits:
        x = x.softmax(dim=1) if mode == "multiclass" else x.sigmoid()
    p = x.reshape(b, c, -1)
    if mode == "multiclass":
        t = targets.reshape(b, -1).long()
        valid = (t != ignore_index) if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
        onehot = torch.nn.functional.one_hot(t.where(valid, 0), c).permute(0, 2, 1).to(dtype)
        mask = valid[:, None, :].to(dtype)
    else:
        tt = targets.reshape(b, c, -1).to(dtype)
        mask = (tt != ignore_index).to(dtype) if ignore_index is not None else torch.ones_like(tt)
        onehot = tt
    inter = (mask * p * onehot).sum((0, 2))
    psum = (mask * (p * p if squared else p)).sum((0, 2))
    tsum = (mask * (onehot * onehot if squared else onehot)).sum((0, 2))
    dice = (2 * inter + smooth) / (psum + tsum + smooth).clamp_min(eps)
    loss = -dice.clamp_min(eps).log() if log_loss else 1 - dice
    loss = loss * (tsum > 0).to(dtype)
    w = weight.to(dtype) if weight is not None else torch.ones(c, dtype=dtype, device=x.device)
    loss = loss * w
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / w.sum()


def _fwd_bwd(fn: Callable, x: torch.Tensor, t: torch.Tensor) -> Callable[[], None]:
    def run():
        xx = x.detach().requires_grad_()
        fn(xx, t).backward()

    return run


def _baselines(mode: str) -> list[tuple[str, Callable]]:
    out: list[tuple[str, Callable]] = [
        ("plain pytorch", lambda x, t: plain_dice_loss(x, t, mode=mode, dtype=x.dtype)),
    ]
    try:
        import segmentation_models_pytorch.losses as smp_losses

        out.append(("smp", smp_losses.DiceLoss(mode)))
    except ImportError:
        pass
    try:
        import monai.losses as monai_losses

        if mode == "binary":
            m = monai_losses.DiceLoss(sigmoid=True, batch=True, smooth_nr=0.0, smooth_dr=1e-7)
            out.append(("monai", m))
        else:
            m = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=0.0, smooth_dr=1e-7)
            out.append(("monai", lambda x, t, m=m: m(x, t[:, None])))
    except ImportError:
        pass
    return out


def cases(ops: list[str], sizes: list[int], elements: int, dtype: torch.dtype, device: str) -> list[Case]:
    unknown = [op for op in ops if op not in ALL]
    if unknown:
        raise ValueError(f"unknown dice op {unknown[0]!r}; choose from {', '.join(ALL)}")
    g = torch.Generator().manual_seed(0)
    out: list[Case] = []
    for side in sizes:
        xb = torch.randn(16, 1, side, side, generator=g).to(dtype=dtype, device=device)
        tb = (torch.rand(16, 1, side, side, generator=g) > 0.5).to(dtype=dtype, device=device)
        h = side // 2
        xm = torch.randn(8, 21, h, h, generator=g).to(dtype=dtype, device=device)
        tm = torch.randint(0, 21, (8, h, h), generator=g).to(device)
        for mode, x, t, name in (("binary", xb, tb, f"binary 16x1x{side}x{side}"),
                                 ("multiclass", xm, tm, f"softmax 8x21x{h}x{h}")):
            ours = _fwd_bwd(lambda a, b, m=mode: visionops.dice_loss(a, b, mode=m), x, t)
            for base_name, fn in _baselines(mode):
                out.append(Case("dice_loss", f"{name} fwd+bwd", ours, _fwd_bwd(fn, x, t), base_name))
    return out
