"""Random boxes for the benchmarks and the tests: one set of generators.

Every generator draws in float64 from the given ``torch.Generator`` (or
torch's global one), so the same seed gives the same boxes whatever dtype
and device they are returned in.
"""

from __future__ import annotations

import torch

#: The image a detector's boxes live in: 1333 x 800 (Faster R-CNN's resize).
DETECTOR_IMAGE = (1333.0, 800.0)
#: Jittered copies per object in clustered layouts (a detector's duplicates).
COPIES_PER_OBJECT = 20


def random_boxes(n: int, *lead: int, image: tuple[float, float] = (100.0, 100.0),
                 sides: tuple[float, float] = (1e-3, 50.0), anchor: str = "corner",
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """[*lead, n, 4] xyxy boxes with x1 < x2 and y1 < y2.

    Args:
        image ((float, float)): width and height of the area the anchor
            points are drawn from, uniformly.
        sides ((float, float)): each side is uniform in [lo, hi).
        anchor (str): ``'corner'``: the top-left corner is the drawn point;
            ``'centre'``: the centre is.
    """
    scale = torch.tensor(image, dtype=torch.float64)
    point = torch.rand(*lead, n, 2, dtype=torch.float64, generator=generator) * scale
    lo, hi = sides
    side = torch.rand(*lead, n, 2, dtype=torch.float64, generator=generator) * (hi - lo) + lo
    first = point if anchor == "corner" else point - side / 2
    return torch.cat([first, first + side], dim=-1).to(dtype=dtype, device=device)


def detector_boxes(n: int, dtype: torch.dtype, device: str | torch.device,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """xyxy boxes as a detector sees them: centres uniform in a 1333 x 800
    image, sides from 10 to 300 pixels."""
    return random_boxes(n, image=DETECTOR_IMAGE, sides=(10.0, 300.0), anchor="centre", dtype=dtype, device=device,
                        generator=generator)


def clustered_boxes(n: int, dtype: torch.dtype, device: str | torch.device,
                    generator: torch.Generator | None = None, copies_per_object: int = COPIES_PER_OBJECT
                    ) -> torch.Tensor:
    """A detector's raw output: 20 copies (or ``copies_per_object``) of each
    object (detector_boxes), each corner jittered by up to 7.5% of the
    object's side."""
    objects = detector_boxes((n + copies_per_object - 1) // copies_per_object, torch.float64, "cpu", generator)
    copies = objects.repeat_interleave(copies_per_object, dim=0)[:n]
    side = (copies[:, 2:] - copies[:, :2]).repeat(1, 2)
    jitter = (torch.rand(copies.shape, dtype=torch.float64, generator=generator) - 0.5) * 0.15 * side
    return (copies + jitter).to(dtype=dtype, device=device)


def layout_boxes(layout: str, n: int, dtype: torch.dtype, device: str | torch.device,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``'uniform'``: detector_boxes; ``'clustered'``: clustered_boxes."""
    if layout == "uniform":
        return detector_boxes(n, dtype, device, generator)
    return clustered_boxes(n, dtype, device, generator)


def layout_classes(layout: str, n: int, classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Class ids of layout_boxes' boxes: one per box (uniform), one per object
    shared by its copies (clustered), as a detector's duplicates share a class."""
    if layout == "uniform":
        return torch.randint(0, classes, (n,), generator=generator)
    objects = (n + COPIES_PER_OBJECT - 1) // COPIES_PER_OBJECT
    return torch.randint(0, classes, (objects,), generator=generator).repeat_interleave(COPIES_PER_OBJECT)[:n]
