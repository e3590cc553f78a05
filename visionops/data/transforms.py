"""Detection transforms on (image, target) pairs, and the collate function.

Targets are the dicts of SyntheticShapes and CocoDetectionFolder: ``boxes``
(x1, y1, x2, y2), ``masks`` [K, H, W] and ``semantic`` [H, W] move with the
image; the other entries are kept. Randomness comes from torch's global
generator (seed it, or let the DataLoader seed its workers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from visionops.data.synthetic import boxes_from_masks


class Compose:
    """Applies transforms in order."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Tensor, target: dict) -> tuple[Tensor, dict]:
        for t in self.transforms:
            image, target = t(image, target)
        return image, target


class RandomHorizontalFlip:
    """Mirrors the image, its boxes and masks left to right with probability p."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, image: Tensor, target: dict) -> tuple[Tensor, dict]:
        if torch.rand(()) >= self.p:
            return image, target
        w = image.shape[-1]
        target = dict(target)
        if "boxes" in target:
            b = target["boxes"]
            target["boxes"] = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1)
        for key in ("masks", "semantic"):
            if key in target:
                target[key] = target[key].flip(-1)
        return image.flip(-1), target


class ScaleJitter:
    """Resizes the image by a factor drawn uniformly from `scale_range`
    (bilinear; masks nearest). With masks, the boxes become the resized
    masks' extents and objects whose mask vanishes are dropped; without,
    the boxes are scaled."""

    def __init__(self, scale_range: tuple[float, float] = (0.75, 1.25)) -> None:
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"visionops.data.ScaleJitter: scale_range must be 0 < low <= high, got {scale_range}")
        self.scale_range = scale_range

    def __call__(self, image: Tensor, target: dict) -> tuple[Tensor, dict]:
        lo, hi = self.scale_range
        s = lo + (hi - lo) * float(torch.rand(()))
        h, w = image.shape[-2:]
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        image = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
        target = dict(target)
        if "semantic" in target:
            target["semantic"] = F.interpolate(target["semantic"][None, None].float(), size=(nh, nw),
                                               mode="nearest")[0, 0].to(target["semantic"].dtype)
        if "masks" in target:
            masks = target["masks"]
            masks = F.interpolate(masks[None].float(), size=(nh, nw), mode="nearest")[0].to(masks.dtype)
            keep = (masks.flatten(1) != 0).any(1)
            target["masks"] = masks[keep]
            for key in ("labels", "area", "iscrowd"):
                if key in target:
                    target[key] = target[key][keep]
            if "area" in target:
                target["area"] = target["masks"].flatten(1).sum(1).float()
            if "boxes" in target:  # the resized masks' extents: boxes and masks stay one
                target["boxes"] = boxes_from_masks(target["masks"] != 0)
        elif "boxes" in target:
            target["boxes"] = target["boxes"] * torch.tensor([nw / w, nh / h, nw / w, nh / h])
        return image, target


def detection_collate(batch: Sequence[tuple[Tensor, dict]]) -> tuple[list[Tensor], list[dict]]:
    """A batch as detection models take it: a list of images (sizes may
    differ) and a list of target dicts."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)
