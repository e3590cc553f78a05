"""The models `python -m visionops.train` and `python -m visionops.predict`
know: how to build each, its training losses, and what it predicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[int, int, str], nn.Module]  # (num_classes, image_size, config) -> model
    configs: tuple[str, ...]
    task: str = "detection"  # or "segmentation"
    masks: bool = False  # instance masks: segm mAP too
    # Training losses: (model, images, targets) -> dict of losses. The model
    # may be wrapped by DistributedDataParallel: call it, not its module.
    losses: Callable[[nn.Module, list[Tensor], list[dict]], dict[str, Tensor]] = \
        lambda model, images, targets: model(images, targets)
    # Inference: (model, images) -> one dict of boxes, labels, scores (masks) per image.
    detect: Callable[[nn.Module, list[Tensor]], list[dict[str, Tensor]]] = lambda model, images: model(images)
    # Scale jitter changes image sizes; models that take one batch tensor use flips only.
    scale_jitter: bool = True


# ------------------------------------------------------------------ R-CNN


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


# ------------------------------------------------------------------ U-Net


def _unet(num_classes: int, image_size: int, config: str) -> nn.Module:
    from visionops import models

    classes = 1 if config == "binary" else num_classes
    # Three levels below 128 px: the 1/8 level still sees a whole object
    # (at most 45% of the side) and a step costs a fifth less; at 64 px the
    # multi-class Dice passes 0.9 about a minute sooner than with four.
    return models.unet_small(classes, depth=3 if image_size < 128 else 4)


def _unet_targets(model: nn.Module, targets: list[dict]) -> Tensor:
    semantic = torch.stack([t["semantic"] for t in targets])
    return (semantic > 0).long() if _unwrap(model).num_classes == 1 else semantic


def _unet_losses(model: nn.Module, images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]:
    from visionops.models import UNetLoss

    logits = model(torch.stack(images))
    return UNetLoss(_unwrap(model).num_classes)(logits, _unet_targets(model, targets).to(logits.device))


# ------------------------------------------------------------------ YOLO
# Our datasets number classes from 1 (0 is the background); YOLO's classes
# are 0-based, so labels shift by one on the way in and out.


def _yolo(num_classes: int, image_size: int, config: str) -> nn.Module:
    from visionops import models

    return models.yolo_small(num_classes - 1, image_size)


def _yolo_losses(model: nn.Module, images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]:
    from visionops.models import YOLOLoss

    net = _unwrap(model)
    heads = model(torch.stack(images))
    shifted = [{"boxes": t["boxes"], "labels": t["labels"] - 1} for t in targets]
    return YOLOLoss(net.anchors, net.strides, net.num_classes)(heads, shifted)


def _padded_to_list(out: dict[str, Tensor], label_offset: int) -> list[dict[str, Tensor]]:
    result = []
    for i, n in enumerate(out["counts"].tolist()):
        result.append({"boxes": out["boxes"][i, :n], "scores": out["scores"][i, :n],
                       "labels": out["labels"][i, :n] + label_offset})
    return result


def _yolo_detect(model: nn.Module, images: list[Tensor]) -> list[dict[str, Tensor]]:
    return _padded_to_list(_unwrap(model).forward_padded(torch.stack(images)), 1)


# ------------------------------------------------------------------ DETR
# Labels as they come (class 0, the background, is never a target); DETR's
# "no object" is the extra last class.


def _detr(num_classes: int, image_size: int, config: str) -> nn.Module:
    from visionops import models

    return models.detr_small(num_classes)


def _detr_losses(model: nn.Module, images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]:
    from visionops.models import DETRLoss

    batch = torch.stack(images)
    outputs = model(batch)
    loss = DETRLoss(_unwrap(model).num_classes).to(batch.device)
    return loss(outputs, targets, image_size=tuple(batch.shape[-2:]))


def _detr_detect(model: nn.Module, images: list[Tensor]) -> list[dict[str, Tensor]]:
    return _padded_to_list(_unwrap(model).forward_padded(torch.stack(images)), 0)


MODELS: dict[str, ModelSpec] = {
    "faster_rcnn": ModelSpec(_faster, configs=("small", "resnet50_fpn")),
    "mask_rcnn": ModelSpec(_mask, configs=("small", "resnet50_fpn"), masks=True),
    "yolo": ModelSpec(_yolo, configs=("small",), losses=_yolo_losses, detect=_yolo_detect, scale_jitter=False),
    "detr": ModelSpec(_detr, configs=("small",), losses=_detr_losses, detect=_detr_detect, scale_jitter=False),
    "unet": ModelSpec(_unet, configs=("multiclass", "binary"), task="segmentation", losses=_unet_losses,
                      scale_jitter=False),
}
