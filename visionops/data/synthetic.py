"""SyntheticShapes: images of random shapes on textured backgrounds, with
boxes, instance masks, semantic masks and labels.

Each image is drawn from its own generator, seeded by (seed, split, index):
the same arguments give the same images in any order, in any worker, on any
machine, and the splits never share an image. Objects are painted in order,
so later ones occlude earlier ones; an object left with less than
``min_visible`` of its area visible (or fewer than 16 pixels) is dropped
before painting, so every painted object is labelled and its mask is what
can be seen of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

#: The shape classes; label i + 1 is CLASSES[i] (0 is the background).
CLASSES: tuple[str, ...] = ("rectangle", "ellipse", "triangle", "star", "hexagon", "cross")

_SPLITS = {"train": 0, "val": 1, "test": 2}
_MIN_PIXELS = 16


def _polygon(px: Tensor, py: Tensor, vertices: list[tuple[float, float]]) -> Tensor:
    """Even-odd point-in-polygon test of every (px, py), vertices in order."""
    inside = torch.zeros(px.shape, dtype=torch.bool)
    n = len(vertices)
    for i in range(n):
        x1, y1 = vertices[i]
        x2, y2 = vertices[(i + 1) % n]
        if y1 == y2:
            continue
        crosses = (py < y1) != (py < y2)
        x_at = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (px < x_at)
    return inside


def _regular(n: int, radius: float, inner: float | None = None) -> list[tuple[float, float]]:
    """A regular polygon of n corners (a star of n points with `inner`)."""
    if inner is None:
        return [(radius * math.cos(2 * math.pi * k / n), radius * math.sin(2 * math.pi * k / n)) for k in range(n)]
    pts = []
    for k in range(2 * n):
        r = radius if k % 2 == 0 else radius * inner
        a = math.pi * k / n - math.pi / 2
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def shape_mask(kind: str, u: Tensor, v: Tensor, aspect: float) -> Tensor:
    """The shape in its own frame: (u, v) are pixel offsets from its centre,
    rotated and divided by its half-size, so the shape fits the unit square
    (stretched by `aspect` along u for rectangles and ellipses)."""
    if kind == "rectangle":
        return (u.abs() <= aspect) & (v.abs() <= 1 / aspect)
    if kind == "ellipse":
        return (u / aspect) ** 2 + (v * aspect) ** 2 <= 1
    if kind == "triangle":
        return _polygon(u, v, [(0.0, -1.0), (0.95, 0.8), (-0.95, 0.8)])
    if kind == "star":
        return _polygon(u, v, _regular(5, 1.0, inner=0.45))
    if kind == "hexagon":
        return _polygon(u, v, _regular(6, 1.0))
    if kind == "cross":
        return ((u.abs() <= 1) & (v.abs() <= 0.33)) | ((u.abs() <= 0.33) & (v.abs() <= 1))
    raise ValueError(f"visionops.data: unknown shape {kind!r}; choose from {', '.join(CLASSES)}")


def _texture(h: int, w: int, g: torch.Generator, waves: int, amplitude: float) -> Tensor:
    """A sum of random sinusoidal gratings plus noise, [h, w], around 0."""
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    out = torch.zeros(h, w)
    for _ in range(waves):
        angle, freq, phase = torch.rand(3, generator=g).tolist()
        k = 2 * math.pi * (0.01 + 0.15 * freq)
        a = angle * math.pi
        out += torch.sin(k * (xs * math.cos(a) + ys * math.sin(a)) + 2 * math.pi * phase)
    out *= amplitude / max(waves, 1)
    return out + torch.randn(h, w, generator=g) * (amplitude / 3)


class SyntheticShapes(Dataset):
    """Images of shapes (CLASSES) of several sizes and colours on textured
    backgrounds, with overlaps and occlusion.

    Args:
        num_images: the dataset's length.
        image_size: ``s`` or ``(height, width)``.
        split: ``"train"``, ``"val"`` or ``"test"``: disjoint image streams.
        seed: the dataset's seed.
        objects: (least, most) objects drawn per image, before occlusion
            drops some.
        object_size: (smallest, largest) object size as a fraction of the
            image's shorter side.
        min_visible: the least visible fraction of an object's area.
        classes: which of CLASSES to draw (labels stay CLASSES' numbering).
        transforms: called as ``transforms(image, target)`` (data.transforms).
        cache: keep each drawn image and target in memory, so a later epoch
            reuses them instead of drawing again (drawing costs 3-10 ms an
            image, a large share of a small model's step). The same images
            either way; about 26 bytes a pixel. With DataLoader workers each
            worker holds its own cache.

    Each item is ``(image, target)``: image float32 [3, H, W] in [0, 1];
    target a dict of ``boxes`` float32 [K, 4] (x1, y1, x2, y2: the visible
    pixels' extent, x2 and y2 one past the last pixel), ``labels`` int64 [K]
    (1 + the class's index in CLASSES), ``masks`` uint8 [K, H, W] (the
    visible pixels), ``semantic`` int64 [H, W] (the label of each pixel, 0
    for background), ``area`` float32 [K] (visible pixels), ``iscrowd``
    int64 [K] (zeros) and ``image_id`` (int).
    """

    def __init__(
        self,
        num_images: int = 1000,
        image_size: int | tuple[int, int] = 256,
        *,
        split: str = "train",
        seed: int = 0,
        objects: tuple[int, int] = (1, 6),
        object_size: tuple[float, float] = (0.12, 0.45),
        min_visible: float = 0.4,
        classes: Sequence[str] = CLASSES,
        transforms: Callable | None = None,
        cache: bool = False,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"visionops.data: split must be one of {', '.join(_SPLITS)}, got {split!r}")
        if num_images < 0:
            raise ValueError(f"visionops.data: num_images must not be negative, got {num_images}")
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f"visionops.data: image_size must be at least 8 pixels a side, got {image_size}")
        if not (0 < object_size[0] <= object_size[1]):
            raise ValueError(f"visionops.data: object_size must be 0 < smallest <= largest, got {object_size}")
        if not (0 <= objects[0] <= objects[1]):
            raise ValueError(f"visionops.data: objects must be 0 <= least <= most, got {objects}")
        unknown = [c for c in classes if c not in CLASSES]
        if unknown or not classes:
            raise ValueError(f"visionops.data: classes must be a non-empty subset of {CLASSES}, got {list(classes)}")
        self.num_images = num_images
        self.image_size = size
        self.split = split
        self.seed = seed
        self.objects = objects
        self.object_size = object_size
        self.min_visible = min_visible
        self.classes = tuple(classes)
        self.transforms = transforms
        self._cache: dict[int, tuple[Tensor, dict]] | None = {} if cache else None

    @property
    def num_classes(self) -> int:
        """Classes including the background: what a detector's num_classes is."""
        return len(CLASSES) + 1

    def __len__(self) -> int:
        return self.num_images

    def _generator(self, index: int) -> torch.Generator:
        # Distinct streams per (seed, split, index); 2^61 - 1 is prime.
        key = (self.seed * 1_000_003 + _SPLITS[self.split]) * 2_147_483_647 + index
        return torch.Generator().manual_seed(key % (2**61 - 1))

    def draw(self, index: int) -> tuple[Tensor, dict]:
        """The image and target of `index`, before transforms."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"visionops.data: index {index} out of range for {self.num_images} images")
        g = self._generator(index)
        h, w = self.image_size
        ys = torch.arange(h, dtype=torch.float32).view(h, 1)
        xs = torch.arange(w, dtype=torch.float32).view(1, w)
        side = min(h, w)
        # Draw the objects' shapes.
        count = int(torch.randint(self.objects[0], self.objects[1] + 1, (1,), generator=g))
        shapes, labels, colours = [], [], []
        for _ in range(count):
            kind = self.classes[int(torch.randint(len(self.classes), (1,), generator=g))]
            r = torch.rand(6, generator=g).tolist()
            lo, hi = self.object_size
            half = 0.5 * side * (lo + (hi - lo) * r[0])
            # Centres keep most of each shape inside the image.
            cx = 0.6 * half + r[1] * max(w - 1.2 * half, 0.0)
            cy = 0.6 * half + r[2] * max(h - 1.2 * half, 0.0)
            angle = r[3] * 2 * math.pi
            aspect = math.sqrt(0.6 + 0.9 * r[4]) if kind in ("rectangle", "ellipse") else 1.0
            dx, dy = xs - cx, ys - cy
            u = (dx * math.cos(angle) + dy * math.sin(angle)) / half
            v = (-dx * math.sin(angle) + dy * math.cos(angle)) / half
            shapes.append(shape_mask(kind, u, v, aspect))
            labels.append(CLASSES.index(kind) + 1)
            colours.append(torch.rand(3, generator=g))
        # Drop the least visible object until every one is visible enough.
        alive = list(range(count))
        while True:
            visible = self._visible([shapes[i] for i in alive])
            worst, worst_i = 2.0, -1
            for j, i in enumerate(alive):
                full = int(shapes[i].sum())
                frac = int(visible[j].sum()) / full if full else 0.0
                if (frac < self.min_visible or int(visible[j].sum()) < _MIN_PIXELS) and frac < worst:
                    worst, worst_i = frac, j
            if worst_i < 0:
                break
            alive.pop(worst_i)
        # Paint: a textured background, then each object with its own texture.
        base = torch.rand(3, 1, 1, generator=g) * 0.8 + 0.1
        image = base + _texture(h, w, g, 3, 0.15).unsqueeze(0) * torch.rand(3, 1, 1, generator=g)
        for i in alive:
            tex = _texture(h, w, g, 1, 0.08)
            image = torch.where(shapes[i], colours[i].view(3, 1, 1) + tex, image)
        image = image.clamp(0, 1)
        masks = (torch.stack(visible) if alive else torch.zeros(0, h, w, dtype=torch.bool)).to(torch.uint8)
        target = make_target(masks, torch.tensor([labels[i] for i in alive], dtype=torch.int64), index)
        return image, target

    @staticmethod
    def _visible(shapes: list[Tensor]) -> list[Tensor]:
        """What is seen of each shape under the ones painted after it."""
        out = [s.clone() for s in shapes]
        above = torch.zeros_like(shapes[0]) if shapes else None
        for j in range(len(shapes) - 1, -1, -1):
            out[j] &= ~above
            above |= shapes[j]
        return out

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        if self._cache is None:
            image, target = self.draw(index)
        else:
            if index not in self._cache:
                self._cache[index] = self.draw(index)
            cached_image, cached = self._cache[index]
            # Copies (microseconds against a draw's milliseconds), so nothing
            # downstream can change what the next epoch gets.
            image = cached_image.clone()
            target = {k: v.clone() if isinstance(v, Tensor) else v for k, v in cached.items()}
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def boxes_from_masks(masks: Tensor) -> Tensor:
    """[K, H, W] masks to float32 boxes (x1, y1, x2 + 1, y2 + 1) of their
    pixels: the box that covers them, as COCO's bbox (x, y, w, h) does."""
    if masks.shape[0] == 0:
        return torch.zeros(0, 4)
    any_y = masks.any(2)
    any_x = masks.any(1)
    h, w = masks.shape[1:]
    ar_y = torch.arange(h).expand_as(any_y)
    ar_x = torch.arange(w).expand_as(any_x)
    y1 = torch.where(any_y, ar_y, h).min(1).values
    y2 = torch.where(any_y, ar_y, -1).max(1).values + 1
    x1 = torch.where(any_x, ar_x, w).min(1).values
    x2 = torch.where(any_x, ar_x, -1).max(1).values + 1
    return torch.stack([x1, y1, x2, y2], 1).float()


def make_target(masks: Tensor, labels: Tensor, image_id: int) -> dict:
    """The target dict of instance masks [K, H, W] and their labels [K]."""
    k, h, w = masks.shape
    semantic = torch.zeros(h, w, dtype=torch.int64)
    for j in range(k):
        semantic[masks[j].bool()] = labels[j]
    return {
        "boxes": boxes_from_masks(masks.bool()),
        "labels": labels,
        "masks": masks,
        "semantic": semantic,
        "area": masks.flatten(1).sum(1).float(),
        "iscrowd": torch.zeros(k, dtype=torch.int64),
        "image_id": image_id,
    }
