"""The mask family: Mask R-CNN's paste step.

``paste_masks_in_image`` has torchvision's name, signature and result
(``torchvision.models.detection.roi_heads.paste_masks_in_image``), computed by
one native op instead of a Python loop of one interpolation per detection.
"""

from __future__ import annotations

import torch
from torch import Tensor

from visionops._checks import LIB, dtype_name

__all__ = ["paste_masks_in_image"]

_MAX_PADDING = 1 << 20  # csrc/masks/args.h: kMaxPastePadding


def paste_masks_in_image(
    masks: Tensor,
    boxes: Tensor,
    img_shape: tuple[int, int],
    padding: int = 1,
    threshold: float | None = None,
) -> Tensor:
    """Each detection's mask probabilities resized into its box of an image of zeros.

    Args:
        masks (Tensor[N, 1, M, M]): mask probabilities (any floating dtype),
            as Mask R-CNN's mask head gives them for each detection's class.
            ``[N, M, M]`` is taken too.
        boxes (Tensor[N, 4]): boxes (x1, y1, x2, y2) in image pixels, floating
            point.
        img_shape (tuple[int, int]): the image (height, width).
        padding (int): zeros added around each mask before resizing; the box
            grows by the same proportion, (M + 2 padding) / M, as in
            torchvision (this keeps the mask's border from being smeared).
        threshold (float, optional): not in torchvision. When given, the
            result is the bool masks ``pasted > threshold``, computed in the
            same pass: a quarter of the memory of the float masks, and no
            second pass over them.

    Returns:
        Tensor[N, 1, height, width] in the masks' dtype (bool with a
        threshold): zero outside each box, the bilinear (align_corners=False)
        resize of the padded mask to the box's integer extent inside it, as
        torchvision gives. Large results (8 MiB and up) on the CPU are zeroed
        by the operating system page by page as the boxes are written, as
        numpy.zeros is: the first read of a page no box touched costs a minor
        page fault.

    A box with a NaN coordinate pastes nothing; a box partly outside the image
    is cut at its edges. Not differentiable (inference post-processing, as in
    torchvision's models).
    """
    if masks.dim() == 3:
        masks = masks.unsqueeze(1)
    height, width = img_shape
    out = torch.ops.visionops.paste_masks(
        masks, boxes, int(height), int(width), int(padding), None if threshold is None else float(threshold)
    )
    return out


@torch.library.register_fake(LIB + "paste_masks")
def _paste_masks_fake(masks, boxes, height, width, padding=1, threshold=None):
    op = "visionops.paste_masks"
    torch._check(
        masks.dim() == 4 and masks.shape[1] == 1,
        lambda: f"{op}: masks must have shape [N, 1, M, M], got {list(masks.shape)}",
    )
    torch._check(masks.dtype.is_floating_point, lambda: f"{op}: masks must be a floating point tensor, got {dtype_name(masks.dtype)}")
    torch._check(
        boxes.dim() == 2 and boxes.shape[1] == 4 and boxes.shape[0] == masks.shape[0],
        lambda: f"{op}: boxes must have shape [{masks.shape[0]}, 4] (one box per mask), got {list(boxes.shape)}",
    )
    torch._check(boxes.dtype.is_floating_point, lambda: f"{op}: boxes must be a floating point tensor, got {dtype_name(boxes.dtype)}")
    torch._check(
        masks.device == boxes.device,
        lambda: f"{op}: masks and boxes must be on the same device, got {masks.device} and {boxes.device}",
    )
    torch._check_value(
        height >= 0 and width >= 0, lambda: f"{op}: the image size must not be negative, got ({height}, {width})"
    )
    torch._check_value(
        0 <= padding <= _MAX_PADDING, lambda: f"{op}: padding must be in [0, {_MAX_PADDING}], got {padding}"
    )
    torch._check_value(
        masks.shape[0] == 0 or (masks.shape[2] > 0 and masks.shape[3] > 0),
        lambda: f"{op}: masks must not be empty, got {list(masks.shape)}",
    )
    dtype = masks.dtype if threshold is None else torch.bool
    return masks.new_empty((masks.shape[0], 1, height, width), dtype=dtype)
