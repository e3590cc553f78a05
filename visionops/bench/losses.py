"""Benchmark cases of the fused detection losses against torchvision:
sigmoid_focal_loss (RetinaNet's head: batch 4, 20,000 anchors, 80 classes,
1% positives), forward and forward+backward, reduction 'sum'."""

from __future__ import annotations

import torch

import visionops
from visionops.bench.boxes import Case

ALL = ["sigmoid_focal_loss"]
DEFAULT_SIZES = [20_000]


def _fwd_bwd(fn, x: torch.Tensor, t: torch.Tensor):
    def run():
        xx = x.detach().requires_grad_()
        fn(xx, t, reduction="sum").backward()

    return run


def cases(ops: list[str], sizes: list[int], elements: int, dtype: torch.dtype, device: str) -> list[Case]:
    unknown = [op for op in ops if op not in ALL]
    if unknown:
        raise ValueError(f"unknown loss op {unknown[0]!r}; choose from {', '.join(ALL)}")
    try:
        import torchvision.ops as tv_ops
    except ImportError:
        tv_ops = None
    g = torch.Generator().manual_seed(0)
    theirs = tv_ops.sigmoid_focal_loss if tv_ops is not None else None
    out: list[Case] = []
    for n in sizes:
        x = torch.randn(4, n, 80, generator=g).to(dtype=dtype, device=device)
        t = (torch.rand(4, n, 80, generator=g) > 0.99).to(dtype=dtype, device=device)
        out.append(Case("sigmoid_focal_loss", f"4x{n}x80 fwd",
                        lambda x=x, t=t: visionops.sigmoid_focal_loss(x, t, reduction="sum"),
                        theirs and (lambda x=x, t=t, f=theirs: f(x, t, reduction="sum"))))
        out.append(Case("sigmoid_focal_loss", f"4x{n}x80 fwd+bwd", _fwd_bwd(visionops.sigmoid_focal_loss, x, t),
                        theirs and _fwd_bwd(theirs, x, t)))
    return out
