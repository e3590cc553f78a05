"""The R-CNN image transform: torchvision's GeneralizedRCNNTransform
(normalize, resize to min_size / max_size, batch padded to a multiple of 32:
generic image work, not rewritten), with the postprocessing on our ops:
boxes scaled back to each original image, and Mask R-CNN's masks pasted into
it by the native paste_masks op (optionally thresholded in the same pass)."""

from __future__ import annotations

import torch
from torch import Tensor

import visionops


def _transform_base():
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    return GeneralizedRCNNTransform


def resize_boxes(boxes: Tensor, size: tuple[int, int], original: tuple[int, int]) -> Tensor:
    """Boxes of an image resized to `size` back to its `original` (h, w), in
    torchvision's arithmetic (float32 ratios)."""
    ry = torch.tensor(original[0], dtype=torch.float32, device=boxes.device) / torch.tensor(
        size[0], dtype=torch.float32, device=boxes.device)
    rx = torch.tensor(original[1], dtype=torch.float32, device=boxes.device) / torch.tensor(
        size[1], dtype=torch.float32, device=boxes.device)
    return boxes * torch.stack([rx, ry, rx, ry])


class RCNNTransform(_transform_base()):
    """GeneralizedRCNNTransform with visionops' postprocessing. ``mask_threshold``
    (None: float probabilities, as torchvision) gives bool masks instead."""

    def __init__(self, *args, mask_threshold: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mask_threshold = mask_threshold

    def postprocess(self, result: list[dict[str, Tensor]], image_shapes: list[tuple[int, int]],
                    original_image_sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        if self.training:
            return result
        for pred, size, original in zip(result, image_shapes, original_image_sizes):
            pred["boxes"] = resize_boxes(pred["boxes"], size, original)
            if "masks" in pred:
                pred["masks"] = visionops.paste_masks_in_image(pred["masks"], pred["boxes"], original,
                                                               threshold=self.mask_threshold)
        return result
