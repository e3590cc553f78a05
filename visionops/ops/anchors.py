"""Anchors: torchvision's AnchorGenerator, with every level's anchors made by
one native op (torchvision builds each level from several tensor ops and
concatenates them per image).

Same names, arguments, order and values as
``torchvision.models.detection.anchor_utils.AnchorGenerator``: for each
feature map, ``len(sizes[i]) * len(aspect_ratios[i])`` anchors per location,
centred on the location's top-left corner in image pixels (stride = image
size // map size), in (level, row, column, anchor) order.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_CPU = torch.device("cpu")


def grid_anchors(cell_anchors: list[Tensor], grid_sizes: list[tuple[int, int]],
                 strides: list[tuple[int, int]]) -> Tensor:
    """All levels' anchors [sum H W A, 4]: ``cell_anchors[l]`` [A_l, 4] tiled over
    ``grid_sizes[l]`` (H, W) with ``strides[l]`` (stride_h, stride_w)."""
    return torch.ops.visionops.grid_anchors(
        torch.cat(cell_anchors) if len(cell_anchors) != 1 else cell_anchors[0],
        [int(c.shape[0]) for c in cell_anchors],
        [int(g[0]) for g in grid_sizes], [int(g[1]) for g in grid_sizes],
        [int(s[0]) for s in strides], [int(s[1]) for s in strides],
    )


class AnchorGenerator(nn.Module):
    """Drop-in for torchvision's ``AnchorGenerator``.

    Args:
        sizes (tuple of tuples of int): anchor sizes per feature map.
        aspect_ratios (tuple of tuples of float): height / width ratios per
            feature map.
    """

    def __init__(self, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)) -> None:
        super().__init__()
        if not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (aspect_ratios,) * len(sizes)
        self.sizes = sizes
        self.aspect_ratios = aspect_ratios
        self.cell_anchors = [self.generate_anchors(s, a) for s, a in zip(sizes, aspect_ratios)]

    def generate_anchors(self, scales, aspect_ratios, dtype: torch.dtype = torch.float32,
                         device: torch.device = _CPU) -> Tensor:
        """Zero-centred anchors [len(aspect_ratios) * len(scales), 4], rounded (torchvision's formula)."""
        scales = torch.as_tensor(scales, dtype=dtype, device=device)
        aspect_ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
        h_ratios = torch.sqrt(aspect_ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()

    def set_cell_anchors(self, dtype: torch.dtype, device: torch.device) -> None:
        self.cell_anchors = [c.to(dtype=dtype, device=device) for c in self.cell_anchors]

    def num_anchors_per_location(self) -> list[int]:
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios)]

    def forward(self, image_list, feature_maps: list[Tensor]) -> list[Tensor]:
        """Anchors [sum H W A, 4] for each image of ``image_list`` (an ImageList:
        ``.tensors`` [B, C, H, W] and ``.image_sizes``)."""
        grid_sizes = [tuple(fm.shape[-2:]) for fm in feature_maps]
        image_size = image_list.tensors.shape[-2:]
        torch._assert(
            len(grid_sizes) == len(self.cell_anchors),
            "Anchors should be Tuple[Tuple[int]] because each feature map could potentially have different sizes "
            "and aspect ratios. There needs to be a match between the number of feature maps passed and the number "
            "of sizes / aspect ratios specified.",
        )
        self.set_cell_anchors(feature_maps[0].dtype, feature_maps[0].device)
        strides = [(image_size[0] // g[0], image_size[1] // g[1]) for g in grid_sizes]
        anchors = grid_anchors(self.cell_anchors, grid_sizes, strides)
        # One tensor per image, as torchvision returns (not views of one another).
        return [anchors] + [anchors.clone() for _ in range(len(image_list.image_sizes) - 1)]
