"""The Python API of the ops: thin wrappers over torch.ops.visionops."""

from visionops.ops.anchors import AnchorGenerator
from visionops.ops.boxes import (
    box_area,
    box_convert,
    box_iou,
    complete_box_iou,
    distance_box_iou,
    generalized_box_iou,
    masks_to_boxes,
    pack_masks,
)
from visionops.ops.coders import BoxCoder, decode_boxes, encode_boxes
from visionops.ops.losses import (
    DiceLoss,
    complete_box_iou_loss,
    dice_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
    sigmoid_focal_loss,
)
from visionops.ops.matching import (
    HungarianMatcher,
    batched_linear_sum_assignment,
    detr_matching_cost,
    linear_sum_assignment,
)
from visionops.ops.nms import batched_nms, nms, padded_nms, soft_nms
from visionops.ops.roi import (
    MultiScaleRoIAlign,
    RoIAlign,
    RoIPool,
    multi_scale_roi_align,
    roi_align,
    roi_pool,
)
from visionops.ops.yolo import yolo_boxes, yolo_decode

__all__ = [
    "AnchorGenerator",
    "BoxCoder",
    "DiceLoss",
    "HungarianMatcher",
    "MultiScaleRoIAlign",
    "RoIAlign",
    "RoIPool",
    "batched_linear_sum_assignment",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "complete_box_iou",
    "complete_box_iou_loss",
    "decode_boxes",
    "detr_matching_cost",
    "dice_loss",
    "distance_box_iou",
    "distance_box_iou_loss",
    "encode_boxes",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "linear_sum_assignment",
    "masks_to_boxes",
    "multi_scale_roi_align",
    "nms",
    "pack_masks",
    "padded_nms",
    "roi_align",
    "roi_pool",
    "sigmoid_focal_loss",
    "soft_nms",
    "yolo_boxes",
    "yolo_decode",
]
