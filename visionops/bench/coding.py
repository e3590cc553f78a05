"""Benchmark cases of box coding and anchors against torchvision:
BoxCoder.decode_single and encode_single of N boxes (default 200,000;
weights (10, 10, 5, 5)), decode of a 91-class head for 1,000 proposals, and
AnchorGenerator on a 5-level FPN (800 x 1088 images, batch 2, 3 ratios)."""

from __future__ import annotations

import torch

import visionops
from visionops.bench.box_generators import random_boxes
from visionops.bench.boxes import Case

ALL = ["box_coder", "anchor_generator"]
DEFAULT_SIZES = [200_000]
_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def _boxes(n: int, dtype: torch.dtype, device: str, g: torch.Generator) -> torch.Tensor:
    return random_boxes(n, image=(800.0, 800.0), sides=(4.0, 304.0), dtype=dtype, device=device, generator=g)


def _torchvision_detection():
    try:
        from torchvision.models.detection import _utils, anchor_utils, image_list
    except ImportError:
        return None
    return _utils, anchor_utils, image_list


def _coder_cases(tv, sizes: list[int], dtype: torch.dtype, device: str, g: torch.Generator) -> list[Case]:
    op = "box_coder"
    ours = visionops.BoxCoder(_WEIGHTS)
    theirs = tv[0].BoxCoder(_WEIGHTS) if tv else None
    out: list[Case] = []
    for n in sizes:
        a = _boxes(n, dtype, device, g)
        c = torch.randn(n, 4, generator=g).to(dtype=dtype, device=device)
        gt = (a + torch.randn(n, 4, generator=g).to(dtype=dtype, device=device)).contiguous()
        out.append(Case(op, f"decode {n}", lambda a=a, c=c, m=ours: m.decode_single(c, a),
                        theirs and (lambda a=a, c=c, m=theirs: m.decode_single(c, a))))
        out.append(Case(op, f"encode {n}", lambda a=a, gt=gt, m=ours: m.encode_single(gt, a),
                        theirs and (lambda a=a, gt=gt, m=theirs: m.encode_single(gt, a))))
    a91 = _boxes(1000, dtype, device, g)
    c91 = torch.randn(1000, 91 * 4, generator=g).to(dtype=dtype, device=device)
    out.append(Case(op, "decode 1000x91 classes", lambda: ours.decode(c91, [a91]),
                    theirs and (lambda: theirs.decode(c91, [a91]))))
    return out


def _anchor_cases(tv, dtype: torch.dtype, device: str) -> list[Case]:
    if not tv:
        return []
    sizes = ((32,), (64,), (128,), (256,), (512,))
    ratios = ((0.5, 1.0, 2.0),) * 5
    maps = [torch.zeros(2, 8, 800 // s, 1088 // s, dtype=dtype, device=device) for s in (4, 8, 16, 32, 64)]
    images = tv[2].ImageList(torch.zeros(2, 3, 800, 1088, dtype=dtype, device=device), [(800, 1088)] * 2)
    ours = visionops.AnchorGenerator(sizes, ratios)
    theirs = tv[1].AnchorGenerator(sizes, ratios)
    return [Case("anchor_generator", "fpn 5 levels batch 2", lambda: ours(images, maps), lambda: theirs(images, maps))]


def cases(ops: list[str], sizes: list[int], elements: int, dtype: torch.dtype, device: str) -> list[Case]:
    unknown = [op for op in ops if op not in ALL]
    if unknown:
        raise ValueError(f"unknown coding op {unknown[0]!r}; choose from {', '.join(ALL)}")
    tv = _torchvision_detection()
    g = torch.Generator().manual_seed(0)
    out: list[Case] = []
    for op in ops:
        out += _coder_cases(tv, sizes, dtype, device, g) if op == "box_coder" else _anchor_cases(tv, dtype, device)
    return out
