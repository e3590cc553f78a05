"""AnchorGenerator: the same anchors as torchvision's, in the same order, on
FPN and single-map configurations, every dtype, odd grids and errors."""

from __future__ import annotations

import pytest
import torch

import visionops

from ..conftest import require

anchor_utils = require("torchvision.models.detection.anchor_utils")
image_list = require("torchvision.models.detection.image_list")

FPN_SIZES = ((32,), (64,), (128,), (256,), (512,))
FPN_RATIOS = ((0.5, 1.0, 2.0),) * 5


def fpn_maps(h: int, w: int, dtype=torch.float32, device="cpu"):
    return [torch.zeros(1, 2, -(-h // s), -(-w // s), dtype=dtype, device=device) for s in (4, 8, 16, 32, 64)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_fpn_matches_torchvision(dtype, device):
    images = image_list.ImageList(torch.zeros(2, 3, 800, 1088, device=device), [(800, 1066), (790, 1088)])
    maps = fpn_maps(800, 1088, dtype, device)
    ours = visionops.AnchorGenerator(FPN_SIZES, FPN_RATIOS)(images, maps)
    theirs = anchor_utils.AnchorGenerator(FPN_SIZES, FPN_RATIOS)(images, maps)
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        assert a.dtype == dtype and torch.equal(a, b)
    assert ours[0].data_ptr() != ours[1].data_ptr()  # one tensor per image


def test_single_map_and_many_sizes():
    images = image_list.ImageList(torch.zeros(1, 3, 100, 150), [(100, 150)])
    maps = [torch.zeros(1, 2, 13, 19)]  # stride 100 // 13 = 7 by 150 // 19 = 7
    m = visionops.AnchorGenerator((16, 40, 100), (0.25, 1.0, 3.0))
    t = anchor_utils.AnchorGenerator((16, 40, 100), (0.25, 1.0, 3.0))
    assert m.num_anchors_per_location() == t.num_anchors_per_location()
    # sizes given per map as a flat tuple means one size per map
    assert torch.equal(m(images, [maps[0]] * 3)[0], t(images, [maps[0]] * 3)[0])
    m1 = visionops.AnchorGenerator(((16, 40, 100),), ((0.25, 1.0, 3.0),))
    t1 = anchor_utils.AnchorGenerator(((16, 40, 100),), ((0.25, 1.0, 3.0),))
    assert torch.equal(m1(images, maps)[0], t1(images, maps)[0])


def test_hand_values():
    # One 2 x 2 map with stride 10 and a single 20 x 20 anchor (ratio 1): the
    # cell anchor (-10, -10, 10, 10) moved to (0, 0), (10, 0), (0, 10), (10, 10).
    images = image_list.ImageList(torch.zeros(1, 3, 20, 20), [(20, 20)])
    anchors = visionops.AnchorGenerator(((20,),), ((1.0,),))(images, [torch.zeros(1, 1, 2, 2)])[0]
    expected = torch.tensor([[-10.0, -10, 10, 10], [0, -10, 20, 10], [-10, 0, 10, 20], [0, 0, 20, 20]])
    assert torch.equal(anchors, expected)


def test_empty_grid_and_errors():
    images = image_list.ImageList(torch.zeros(1, 3, 20, 20), [(20, 20)])
    gen = visionops.AnchorGenerator(((20,), (40,)), ((1.0,), (1.0,)))
    # An empty level (here given straight to the op: a map of 0 rows has no stride) adds nothing.
    out = torch.ops.visionops.grid_anchors(torch.ones(2, 4), [1, 1], [2, 0], [2, 2], [10, 20], [10, 20])
    assert out.shape == (4, 4)
    with pytest.raises(AssertionError, match="There needs to be a match between the number of feature maps"):
        gen(images, [torch.zeros(1, 1, 2, 2)])
    with pytest.raises(ValueError, match="visionops.grid_anchors: anchors_per_level sums to 2 but cell_anchors has 3"):
        torch.ops.visionops.grid_anchors(torch.zeros(3, 4), [2], [2], [2], [1], [1])
    with pytest.raises(RuntimeError, match=r"visionops.grid_anchors: cell_anchors must have shape \[A, 4\], got \[3, 5\]"):
        torch.ops.visionops.grid_anchors(torch.zeros(3, 5, device="meta"), [3], [2], [2], [1], [1])


def test_opcheck_and_compile():
    cells = torch.randn(6, 4).round()
    torch.library.opcheck(torch.ops.visionops.grid_anchors.default, (cells, [2, 4], [3, 2], [5, 1], [4, 8], [4, 8]))
    torch._dynamo.reset()
    images = image_list.ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)])
    gen = visionops.AnchorGenerator(((16,), (32,)), ((0.5, 1.0, 2.0),) * 2)
    maps = [torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 8, 8)]
    compiled = torch.compile(lambda m: gen(images, m)[0], fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(maps), gen(images, maps)[0])
    torch._dynamo.reset()
