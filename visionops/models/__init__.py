"""Detection models on visionops' ops (torchvision is needed for backbones
and layers: ``pip install 'visionops[models]'``).

- Faster R-CNN and Mask R-CNN: ``fasterrcnn_resnet50_fpn`` and
  ``maskrcnn_resnet50_fpn`` (torchvision's layout: their state dicts load),
  ``faster_rcnn_small`` and ``mask_rcnn_small`` (train on a CPU in minutes).
- ``PaddedInference(model)``: the fixed-size inference path as a module,
  for ``torch.export``.
"""

from visionops.models._components.padded import PaddedInference
from visionops.models.faster_rcnn import FasterRCNN, SmallBackbone, faster_rcnn_small, fasterrcnn_resnet50_fpn
from visionops.models.mask_rcnn import MaskRCNN, mask_rcnn_small, maskrcnn_resnet50_fpn

__all__ = [
    "FasterRCNN",
    "MaskRCNN",
    "PaddedInference",
    "SmallBackbone",
    "faster_rcnn_small",
    "fasterrcnn_resnet50_fpn",
    "mask_rcnn_small",
    "maskrcnn_resnet50_fpn",
]
