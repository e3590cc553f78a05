"""Mask R-CNN on visionops' ops: Faster R-CNN (faster_rcnn.py) plus the mask
branch (``roi_heads.mask_roi_pool``, ``mask_head``, ``mask_predictor``, as
torchvision names them): 14 x 14 RoI Align over the FPN levels, the mask
loss on targets cropped by one RoI Align call for the whole batch, and in
inference the masks of each detection's class pasted into the image by the
native paste_masks op (bool masks in the same pass with ``mask_threshold``).
"""

from __future__ import annotations

from torch import nn

import visionops
from visionops.models.faster_rcnn import (
    SMALL_DEFAULTS,
    FasterRCNN,
    SmallBackbone,
    _torchvision_detection,
    resnet50_fpn_backbone,
    small_anchor_generator,
)


class MaskRCNN(FasterRCNN):
    """Faster R-CNN with torchvision's mask branch; keyword arguments as
    torchvision's MaskRCNN (``mask_roi_pool``, ``mask_head``,
    ``mask_predictor``) and FasterRCNN's."""

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, *, mask_roi_pool: nn.Module | None = None,
                 mask_head: nn.Module | None = None, mask_predictor: nn.Module | None = None,
                 mask_layers: tuple[int, ...] = (256, 256, 256, 256), mask_dim_reduced: int = 256, **kwargs) -> None:
        _, tv_mask, _ = _torchvision_detection()
        out_channels = backbone.out_channels
        levels = len(backbone.fpn.inner_blocks) + 1 if hasattr(backbone, "fpn") else 1
        if mask_roi_pool is None:
            names = [str(i) for i in range(max(levels - 1, 1))]
            mask_roi_pool = visionops.MultiScaleRoIAlign(names, output_size=14, sampling_ratio=2)
        if mask_head is None:
            mask_head = tv_mask.MaskRCNNHeads(out_channels, mask_layers, 1)
        if mask_predictor is None:
            if num_classes is None:
                raise ValueError("visionops.models.MaskRCNN: num_classes is needed when mask_predictor is not given")
            mask_predictor = tv_mask.MaskRCNNPredictor(mask_layers[-1], mask_dim_reduced, num_classes)
        super().__init__(backbone, num_classes, mask_roi_pool=mask_roi_pool, mask_head=mask_head,
                         mask_predictor=mask_predictor, **kwargs)


def maskrcnn_resnet50_fpn(num_classes: int = 91, **kwargs) -> MaskRCNN:
    """torchvision's ``maskrcnn_resnet50_fpn`` layout (its state_dict loads),
    random weights."""
    return MaskRCNN(resnet50_fpn_backbone(), num_classes, **kwargs)


def mask_rcnn_small(num_classes: int = 7, image_size: int = 256, **kwargs) -> MaskRCNN:
    """faster_rcnn_small with a mask branch of two 64-channel convolutions."""
    options = {**SMALL_DEFAULTS, "min_size": image_size, "max_size": image_size,
               "rpn_anchor_generator": small_anchor_generator(), "mask_layers": (64, 64), "mask_dim_reduced": 64,
               **kwargs}
    return MaskRCNN(SmallBackbone(), num_classes, **options)
