"""The models `python -m visionops.train` and `python -m visionops.predict`
know: how to build each, and what it predicts (boxes, masks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[..., nn.Module]  # (num_classes, image_size, config) -> model
    masks: bool  # instance masks: evaluated with segm mAP too
    configs: tuple[str, ...]


def _faster(num_classes: int, image_size: int, config: str) -> nn.Module:
    from visionops import models

    if config == "resnet50_fpn":
        return models.fasterrcnn_resnet50_fpn(num_classes, min_size=image_size, max_size=image_size)
    return models.faster_rcnn_small(num_classes, image_size)


def _mask(num_classes: int, image_size: int, config: str) -> nn.Module:
    from visionops import models

    if config == "resnet50_fpn":
        return models.maskrcnn_resnet50_fpn(num_classes, min_size=image_size, max_size=image_size)
    return models.mask_rcnn_small(num_classes, image_size)


MODELS: dict[str, ModelSpec] = {
    "faster_rcnn": ModelSpec(_faster, masks=False, configs=("small", "resnet50_fpn")),
    "mask_rcnn": ModelSpec(_mask, masks=True, configs=("small", "resnet50_fpn")),
}
