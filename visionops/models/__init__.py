"""Detection models on visionops' ops (torchvision is needed for backbones
and layers: ``pip install 'visionops[models]'``).

- Faster R-CNN and Mask R-CNN: ``fasterrcnn_resnet50_fpn`` and
  ``maskrcnn_resnet50_fpn`` (torchvision's layout: their state dicts load),
  ``faster_rcnn_small`` and ``mask_rcnn_small`` (train on a CPU in minutes).
- YOLO (v5-style): ``YOLO`` (width and depth multipliers), ``YOLOLoss``
  (cell and anchor assignment, CIoU, objectness, classes), ``yolo_small``;
  ``forward_padded`` decodes and suppresses with fixed-size outputs.
- DETR: ``DETR`` (CNN backbone, transformer, learned queries, no NMS),
  ``DETRLoss`` (Hungarian matching on our batched assignment, cross-entropy
  + L1 + GIoU, auxiliary losses), ``detr_small``.
- U-Net: ``UNet`` (any depth and width, binary or multi-class),
  ``UNetLoss`` (our Dice loss plus cross-entropy), ``unet_small``.
- ``PaddedInference(model)``: the fixed-size inference path as a module,
  for ``torch.export``.
"""

from visionops.models._components.padded import PaddedInference
from visionops.models.detr import DETR, DETRLoss, detr_small
from visionops.models.faster_rcnn import FasterRCNN, SmallBackbone, faster_rcnn_small, fasterrcnn_resnet50_fpn
from visionops.models.mask_rcnn import MaskRCNN, mask_rcnn_small, maskrcnn_resnet50_fpn
from visionops.models.unet import UNet, UNetLoss, unet_small
from visionops.models.yolo import YOLO, YOLOLoss, yolo_small

__all__ = [
    "DETR",
    "YOLO",
    "DETRLoss",
    "FasterRCNN",
    "MaskRCNN",
    "PaddedInference",
    "SmallBackbone",
    "UNet",
    "UNetLoss",
    "YOLOLoss",
    "detr_small",
    "faster_rcnn_small",
    "fasterrcnn_resnet50_fpn",
    "mask_rcnn_small",
    "maskrcnn_resnet50_fpn",
    "unet_small",
    "yolo_small",
]
