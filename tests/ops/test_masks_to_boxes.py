"""masks_to_boxes: torchvision's boxes for every mask dtype, the empty-mask
choice, NaN, opcheck and compile."""

from __future__ import annotations

import pytest
import torch

import visionops

from ..conftest import require

tv_ops = require("torchvision.ops")


def random_masks(n: int, h: int, w: int, g=None) -> torch.Tensor:
    masks = torch.zeros(n, h, w)
    for i in range(n):
        y0, x0 = torch.randint(0, h, (2,), generator=g).tolist()[0], torch.randint(0, w, (1,), generator=g).item()
        y1, x1 = y0 + torch.randint(1, h - y0 + 1, (1,), generator=g).item(), x0 + torch.randint(1, w - x0 + 1, (1,),
                                                                                               generator=g).item()
        masks[i, y0:y1, x0:x1] = torch.rand(y1 - y0, x1 - x0, generator=g) > 0.3
        masks[i, y0, x0] = 1
    return masks


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float32, torch.float16])
def test_matches_torchvision(dtype, device):
    g = torch.Generator().manual_seed(0)
    masks = random_masks(12, 37, 53, g).to(dtype=dtype, device=device)
    ours = visionops.masks_to_boxes(masks)
    assert ours.dtype == torch.float32
    assert torch.equal(ours.cpu(), tv_ops.masks_to_boxes(masks.cpu()))


def test_hand_values_empty_and_nan(device):
    masks = torch.zeros(3, 4, 5, device=device)
    masks[0, 1:3, 2:5] = 1  # rows 1..2, columns 2..4
    masks[2, 3, 0] = float("nan")  # NaN != 0: set, as torchvision counts it
    boxes = visionops.masks_to_boxes(masks).cpu()
    assert boxes.tolist() == [[2.0, 1.0, 4.0, 2.0], [0.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 3.0]]
    assert visionops.masks_to_boxes(torch.zeros(0, 4, 5, device=device)).shape == (0, 4)
    with pytest.raises(RuntimeError, match=r"visionops.masks_to_boxes: masks must have shape \[N, H, W\], got \[4, 5\]"):
        visionops.masks_to_boxes(torch.zeros(4, 5, device=device))


def test_opcheck_and_compile():
    masks = random_masks(5, 9, 11, torch.Generator().manual_seed(1))
    torch.library.opcheck(torch.ops.visionops.masks_to_boxes.default, (masks,))
    torch._dynamo.reset()
    f = torch.compile(visionops.masks_to_boxes, fullgraph=True, backend="aot_eager")
    assert torch.equal(f(masks), visionops.masks_to_boxes(masks))
    torch._dynamo.reset()
