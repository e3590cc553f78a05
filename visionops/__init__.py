"""visionops: fast native detection and segmentation ops for PyTorch.

The ops have torchvision.ops' names, signatures and results, and are
registered with the dispatcher as ``torch.ops.visionops.*``.
"""

from visionops import _registrations  # noqa: F401  (fake kernels and autograd)
from visionops._extension import WITH_CUDA
from visionops.ops import (
    AnchorGenerator,
    BoxCoder,
    DiceLoss,
    MultiScaleRoIAlign,
    RoIAlign,
    RoIPool,
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    complete_box_iou,
    complete_box_iou_loss,
    decode_boxes,
    dice_loss,
    distance_box_iou,
    distance_box_iou_loss,
    encode_boxes,
    generalized_box_iou,
    generalized_box_iou_loss,
    masks_to_boxes,
    multi_scale_roi_align,
    nms,
    padded_nms,
    roi_align,
    roi_pool,
    sigmoid_focal_loss,
    soft_nms,
    yolo_boxes,
    yolo_decode,
)

__version__ = "0.1.0"

__all__ = [
    "WITH_CUDA",
    "AnchorGenerator",
    "BoxCoder",
    "DiceLoss",
    "MultiScaleRoIAlign",
    "RoIAlign",
    "RoIPool",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "complete_box_iou",
    "complete_box_iou_loss",
    "decode_boxes",
    "dice_loss",
    "distance_box_iou",
    "distance_box_iou_loss",
    "encode_boxes",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "masks_to_boxes",
    "multi_scale_roi_align",
    "nms",
    "padded_nms",
    "roi_align",
    "roi_pool",
    "sigmoid_focal_loss",
    "soft_nms",
    "yolo_boxes",
    "yolo_decode",
]
