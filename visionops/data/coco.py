"""COCO-format folders: export a dataset to one, and load one for training.

A folder is ``images/`` plus ``annotations.json`` (COCO's detection format:
images, categories, annotations with ``bbox`` (x, y, w, h), ``category_id``,
``area``, ``iscrowd`` and ``segmentation`` as polygons or RLE). Reading
and writing images needs Pillow (torchvision's dependency).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from visionops.data.synthetic import CLASSES, make_target


def _pil():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow comes with torchvision
        raise ImportError("visionops.data: reading and writing COCO image files needs Pillow (pip install pillow)") from e
    return Image


def rle_counts(mask: Tensor) -> list[int]:
    """COCO's uncompressed RLE of one [H, W] mask: run lengths in column-major
    order, starting with a run of zeros (0 when the first pixel is set)."""
    flat = mask.bool().t().reshape(-1)
    if flat.numel() == 0:
        return []
    change = torch.nonzero(flat[1:] != flat[:-1]).flatten() + 1
    bounds = torch.cat([torch.tensor([0]), change, torch.tensor([flat.numel()])])
    runs = (bounds[1:] - bounds[:-1]).tolist()
    return [0, *runs] if bool(flat[0]) else runs


def unpack_masks(packed: Tensor, h: int, w: int) -> Tensor:
    """visionops' packed masks (pack_masks' layout) [K, words] to uint8 [K, h, w]."""
    bits = (packed.unsqueeze(-1) >> torch.arange(64)) & 1
    return bits.reshape(packed.shape[0], -1)[:, : h * w].reshape(-1, h, w).to(torch.uint8)


def export_coco(dataset: Dataset, root: str | os.PathLike, *, categories: list[str] | None = None) -> str:
    """Writes every item of `dataset` (image, target with boxes, labels and
    masks) to `root`/images/NNNNNN.png and `root`/annotations.json; labels
    are category ids, named by `categories` (label i is categories[i - 1];
    default: the synthetic CLASSES). Returns the JSON file's path."""
    image_cls = _pil()
    names = list(categories) if categories is not None else list(CLASSES)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    images, annotations = [], []
    for index in range(len(dataset)):
        image, target = dataset[index]
        h, w = image.shape[-2:]
        name = f"{index:06d}.png"
        pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        image_cls.fromarray(pixels).save(os.path.join(root, "images", name))
        images.append({"id": index, "file_name": name, "height": int(h), "width": int(w)})
        for box, label, mask in zip(target["boxes"].tolist(), target["labels"].tolist(), target["masks"]):
            x1, y1, x2, y2 = box
            annotations.append({
                "id": len(annotations) + 1, "image_id": index, "category_id": int(label),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(mask.sum()), "iscrowd": 0,
                "segmentation": {"size": [int(h), int(w)], "counts": rle_counts(mask)},
            })
    path = os.path.join(root, "annotations.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations,
                   "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}, f)
    return path


class CocoDetectionFolder(Dataset):
    """A COCO-format folder as a detection dataset: the targets of
    SyntheticShapes (boxes x1, y1, x2, y2; labels; masks; semantic; area;
    iscrowd; image_id).

    Args:
        root: the folder; images are read from `root`/images unless the
            JSON's file names reach them from `root`.
        ann_file: the annotations (default `root`/annotations.json).
        transforms: called as ``transforms(image, target)``.

    Category ids are mapped to labels 1..K in increasing id order
    (``categories`` lists their names by label - 1). Crowd annotations are
    kept with ``iscrowd`` 1.
    """

    def __init__(self, root: str | os.PathLike, ann_file: str | os.PathLike | None = None,
                 transforms: Callable | None = None) -> None:
        self.root = str(root)
        with open(ann_file or os.path.join(self.root, "annotations.json")) as f:
            data: dict[str, Any] = json.load(f)
        self.images = sorted(data.get("images", []), key=lambda im: im["id"])
        cats = sorted(data.get("categories", []), key=lambda c: c["id"])
        self.category_ids = [c["id"] for c in cats]
        self.categories = [c.get("name", str(c["id"])) for c in cats]
        self._label = {cid: i + 1 for i, cid in enumerate(self.category_ids)}
        self._anns: dict[int, list[dict]] = {im["id"]: [] for im in self.images}
        for a in data.get("annotations", []):
            if a["image_id"] in self._anns:
                self._anns[a["image_id"]].append(a)
        self.transforms = transforms

    @property
    def num_classes(self) -> int:
        return len(self.categories) + 1

    def __len__(self) -> int:
        return len(self.images)

    def _path(self, file_name: str) -> str:
        direct = os.path.join(self.root, file_name)
        return direct if os.path.exists(direct) else os.path.join(self.root, "images", file_name)

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        from visionops.metrics.coco_format import _decode

        info = self.images[index]
        with _pil().open(self._path(info["file_name"])) as im:
            rgb = torch.frombuffer(bytearray(im.convert("RGB").tobytes()), dtype=torch.uint8)
        h, w = int(info["height"]), int(info["width"])
        image = rgb.view(h, w, 3).permute(2, 0, 1).float() / 255
        anns = [a for a in self._anns[info["id"]] if a["category_id"] in self._label]
        labels = torch.tensor([self._label[a["category_id"]] for a in anns], dtype=torch.int64)
        if anns and all("segmentation" in a for a in anns):
            masks = unpack_masks(_decode(anns, [h] * len(anns), [w] * len(anns)).view(len(anns), -1), h, w)
        else:
            masks = torch.zeros(len(anns), h, w, dtype=torch.uint8)
        target = make_target(masks, labels, int(info["id"]))
        if anns:  # the JSON's boxes, areas and crowd flags are authoritative
            xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).view(-1, 4)
            target["boxes"] = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
            target["area"] = torch.tensor([float(a.get("area", 0.0)) for a in anns])
            target["iscrowd"] = torch.tensor([int(a.get("iscrowd", 0)) for a in anns], dtype=torch.int64)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
