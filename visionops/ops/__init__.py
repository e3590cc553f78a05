"""The Python API of the ops: thin wrappers over torch.ops.visionops."""

from visionops.ops.boxes import (
    box_area,
    box_convert,
    box_iou,
    complete_box_iou,
    distance_box_iou,
    generalized_box_iou,
)
from visionops.ops.losses import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss
from visionops.ops.nms import batched_nms, nms, padded_nms, soft_nms

__all__ = [
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "complete_box_iou",
    "complete_box_iou_loss",
    "distance_box_iou",
    "distance_box_iou_loss",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "nms",
    "padded_nms",
    "soft_nms",
]
