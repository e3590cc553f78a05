"""The COCO family's native ops: the evaluation core that
:class:`visionops.metrics.MeanAveragePrecision` runs, and binary masks packed
64 pixels to a word (pack_masks, and COCO's RLE and polygon formats decoded
straight into that layout). CPU only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from visionops._checks import LIB


def pack_masks(masks: Tensor) -> Tensor:
    """Binary masks as bits: pixel p (row-major) of mask n in bit p % 64 of
    ``out[n, p // 64]``, the last word zero-padded. 1/8 of the memory of a
    bool mask; COCO mask IoU runs on the packed form.

    Args:
        masks (Tensor[N, H, W]): any dtype; a pixel is set where it is nonzero.

    Returns:
        Tensor[N, ceil(H * W / 64)] (int64), on the CPU.
    """
    return torch.ops.visionops.pack_masks(masks.cpu())

# ================================================================= dispatcher registrations
# Fake kernels run the native checks with the same messages.


@torch.library.register_fake(LIB + "coco_evaluate")
def _coco_evaluate_fake(det_boxes, det_scores, det_labels, det_areas, det_counts, gt_boxes, gt_labels, gt_crowd,
                        gt_areas, gt_counts, classes, iou_thresholds, recall_thresholds, area_ranges, max_dets,
                        det_masks=None, gt_masks=None, mask_words=None):
    T, R, K = iou_thresholds.shape[0], recall_thresholds.shape[0], classes.shape[0]
    A, M = area_ranges.shape[0], len(max_dets)
    opts = {"dtype": torch.float64, "device": det_scores.device}
    return (det_scores.new_empty((T, R, K, A, M), **opts), det_scores.new_empty((T, K, A, M), **opts),
            det_scores.new_empty((T, R, K, A, M), **opts))


@torch.library.register_fake(LIB + "pack_masks")
def _pack_masks_fake(masks):
    torch._check(
        masks.dim() == 3,
        lambda: f"visionops.pack_masks: masks must have shape [N, H, W], got {list(masks.shape)}",
    )
    return masks.new_empty((masks.shape[0], (masks.shape[1] * masks.shape[2] + 63) // 64), dtype=torch.long)


def _packed_words(heights, widths):
    return sum((h * w + 63) // 64 for h, w in zip(heights, widths))


@torch.library.register_fake(LIB + "coco_rle_decode")
def _coco_rle_decode_fake(counts, heights, widths):
    return torch.empty((_packed_words(heights, widths),), dtype=torch.long, device="cpu")


@torch.library.register_fake(LIB + "coco_runs_decode")
def _coco_runs_decode_fake(runs, run_counts, heights, widths):
    return runs.new_empty((_packed_words(heights, widths),), dtype=torch.long)


@torch.library.register_fake(LIB + "coco_polygons_decode")
def _coco_polygons_decode_fake(xy, vertex_counts, polygons_per_object, heights, widths):
    return xy.new_empty((_packed_words(heights, widths),), dtype=torch.long)
