"""paste_masks_in_image: hand-computed pastes, torchvision's result for every
float dtype, a float64 reference on adversarial boxes (outside the image,
inverted, degenerate, NaN, inf, huge), both output paths (written whole, and
zeroed by the operating system for large outputs), the fused threshold,
opcheck and compile."""

from __future__ import annotations

import pytest
import torch

import visionops

from .. import references as ref
from ..conftest import require

tv_heads = require("torchvision.models.detection.roi_heads")

FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def detections(n: int, h: int, w: int, g: torch.Generator, m: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks and boxes as Mask R-CNN gives them: boxes inside the image (where
    torchvision's slicing is defined), 1 to 300 pixels a side."""
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.9, h * 0.9])
    wh = torch.rand(n, 2, generator=g) * 300 + 1
    boxes = torch.cat([xy, torch.minimum(xy + wh, torch.tensor([w - 1.0, h - 1.0]))], 1)
    return torch.rand(n, 1, m, m, generator=g), boxes


def test_hand_values(device):
    # Padding 1 grows the 2 x 2 mask to 4 x 4 (a ring of zeros) and the box
    # (0, 0, 1, 1) about its centre by (2 + 2) / 2 = 2 to (-0.5, -0.5, 1.5,
    # 1.5), which truncates to (0, 0, 1, 1): a 2 x 2 resize of the 4 x 4
    # padded mask. Each output pixel samples the middle of a 2 x 2 block
    # (source 0.5 or 2.5), the average of four pixels of which one is the
    # mask's: a quarter of the mask value.
    mask = torch.tensor([[[[0.8, 0.4], [0.2, 1.0]]]], device=device)
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]], device=device)
    out = visionops.paste_masks_in_image(mask, box, (3, 3))
    expected = [[0.2, 0.1, 0.0], [0.05, 0.25, 0.0], [0.0, 0.0, 0.0]]
    assert out.shape == (1, 1, 3, 3)
    torch.testing.assert_close(out[0, 0].cpu(), torch.tensor(expected), rtol=0, atol=1e-7)
    # No padding: the row [a, b] resized to 4 pixels samples at source
    # positions -0.25 (clamped to 0), 0.25, 0.75 and 1.25 (the last pixel,
    # clamped): [a, 0.75 a + 0.25 b, 0.25 a + 0.75 b, b], here at x = 1..4.
    row = torch.tensor([[[[1.0, 0.0]]]], device=device)
    out = visionops.paste_masks_in_image(row, torch.tensor([[1.0, 0.0, 4.0, 0.0]], device=device), (1, 6), padding=0)
    torch.testing.assert_close(out[0, 0, 0].cpu(), torch.tensor([0.0, 1.0, 0.75, 0.25, 0.0, 0.0]), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_matches_torchvision(dtype, device):
    g = torch.Generator().manual_seed(0)
    masks, boxes = detections(40, 300, 400, g)
    masks = masks.to(dtype)
    expected = tv_heads.paste_masks_in_image(masks, boxes, (300, 400))
    ours = visionops.paste_masks_in_image(masks.to(device), boxes.to(device), (300, 400)).cpu()
    assert ours.dtype == dtype and ours.shape == expected.shape
    reference = ref.paste_masks_in_image(masks, boxes, (300, 400))
    if dtype in (torch.float32, torch.float64):
        # Rounding only: torchvision's interpolation is built with FMA contraction.
        atol = 2e-6 if dtype == torch.float32 else 1e-14
        torch.testing.assert_close(ours, expected, rtol=0, atol=atol)
    else:
        # At most twice torchvision's own error against float64.
        tv_error = (expected.double() - reference).abs().max()
        assert (ours.double() - reference).abs().max() <= 2 * tv_error
        return  # a 1-ulp difference of half at 0.5 flips pixels: the IoU below is for float masks
    # The masks Mask R-CNN users keep: above 0.5, IoU >= 0.999 per mask.
    a, b = ours > 0.5, expected > 0.5
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    assert iou.min() >= 0.999


@pytest.mark.parametrize("box_dtype", [torch.float32, torch.float64, torch.float16])
def test_reference_on_adversarial_boxes(box_dtype, device):
    g = torch.Generator().manual_seed(1)
    inf, nan = float("inf"), float("nan")
    boxes = torch.tensor(
        [
            [-40.0, -30.0, 20.0, 10.0],  # over the top-left corner
            [50.0, 40.0, 90.0, 70.0],  # beyond the bottom-right corner
            [-90.0, 5.0, -60.0, 20.0],  # wholly left of the image
            [10.0, 80.0, 30.0, 95.0],  # wholly below it
            [30.0, 20.0, 10.0, 5.0],  # inverted
            [12.0, 12.0, 12.0, 12.0],  # a point
            [3.0, 4.0, 3.5, 40.0],  # zero width after truncation
            [nan, 0.0, 10.0, 10.0],
            [0.0, 0.0, inf, 10.0],
            [-inf, -inf, inf, inf],
            [-1e30, 5.0, 1e30, 9.0],
            [0.0, 0.0, 63.0, 47.0],  # the whole image
        ],
        dtype=box_dtype,
    )
    masks = torch.rand(len(boxes), 1, 28, 28, generator=g)
    ours = visionops.paste_masks_in_image(masks.to(device), boxes.to(device), (48, 64)).cpu()
    expected = ref.paste_masks_in_image(masks, boxes, (48, 64))
    torch.testing.assert_close(ours.double(), expected, rtol=0, atol=2e-6)
    assert ours[2].abs().sum() == 0 and ours[3].abs().sum() == 0 and ours[7].abs().sum() == 0


@pytest.mark.parametrize("padding", [0, 1, 3])
def test_reference_padding_shapes_and_layouts(padding, device):
    g = torch.Generator().manual_seed(2)
    masks, boxes = detections(9, 70, 90, g, m=14)
    masks = torch.rand(9, 1, 11, 14, generator=g)  # not square: the scale follows the width, as in torchvision
    expected = ref.paste_masks_in_image(masks, boxes, (70, 90), padding)
    ours = visionops.paste_masks_in_image(masks.to(device), boxes.to(device), (70, 90), padding).cpu()
    torch.testing.assert_close(ours.double(), expected, rtol=0, atol=2e-6)
    # Non-contiguous masks and boxes, and masks given as [N, M, M].
    masks_t = masks.transpose(2, 3).contiguous().transpose(2, 3).to(device)
    boxes_t = boxes.t().contiguous().t().to(device)
    assert not masks_t.is_contiguous() and not boxes_t.is_contiguous()
    torch.testing.assert_close(visionops.paste_masks_in_image(masks_t, boxes_t, (70, 90), padding).cpu(), ours)
    torch.testing.assert_close(
        visionops.paste_masks_in_image(masks[:, 0].to(device), boxes.to(device), (70, 90), padding).cpu(), ours
    )


def test_large_output_path_agrees(device):
    # 6 x 800 x 800 float32 is 15 MB: above the 8 MiB where the CPU output is
    # zeroed by the operating system and only the boxes are written.
    g = torch.Generator().manual_seed(3)
    masks, boxes = detections(6, 800, 800, g)
    big = visionops.paste_masks_in_image(masks.to(device), boxes.to(device), (800, 800)).cpu()
    for i in range(6):  # one at a time: 2.5 MB each, written whole
        small = visionops.paste_masks_in_image(masks[i : i + 1].to(device), boxes[i : i + 1].to(device), (800, 800))
        assert torch.equal(big[i : i + 1], small.cpu())
    torch.testing.assert_close(big, tv_heads.paste_masks_in_image(masks, boxes, (800, 800)), rtol=0, atol=2e-6)
    assert (big == 0).sum() > 0.5 * big.numel()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("size", [(60, 80), (800, 800)])
def test_threshold(dtype, size, device):
    g = torch.Generator().manual_seed(4)
    masks, boxes = detections(12, *size, g)
    masks = masks.to(dtype).to(device)
    boxes = boxes.to(device)
    pasted = visionops.paste_masks_in_image(masks, boxes, size)
    for t in (0.5, 0.3):
        fused = visionops.paste_masks_in_image(masks, boxes, size, threshold=t)
        assert fused.dtype == torch.bool and fused.shape == pasted.shape
        assert torch.equal(fused, pasted > t)


def test_empty(device):
    masks = torch.zeros(0, 1, 28, 28, device=device)
    boxes = torch.zeros(0, 4, device=device)
    assert visionops.paste_masks_in_image(masks, boxes, (20, 30)).shape == (0, 1, 20, 30)
    one = visionops.paste_masks_in_image(torch.rand(2, 1, 5, 5, device=device), torch.ones(2, 4, device=device), (0, 7))
    assert one.shape == (2, 1, 0, 7)


def test_opcheck_and_compile():
    g = torch.Generator().manual_seed(5)
    masks, boxes = detections(5, 40, 50, g)
    for args in [(masks, boxes, 40, 50, 1, None), (masks, boxes, 40, 50, 2, 0.5)]:
        torch.library.opcheck(torch.ops.visionops.paste_masks.default, args)
    torch._dynamo.reset()
    f = torch.compile(lambda m, b: visionops.paste_masks_in_image(m, b, (40, 50)), fullgraph=True, backend="aot_eager")
    assert torch.equal(f(masks, boxes), visionops.paste_masks_in_image(masks, boxes, (40, 50)))
    torch._dynamo.reset()
