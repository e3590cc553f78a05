"""The COCO family's native ops: the evaluation core that
:class:`visionops.metrics.MeanAveragePrecision` runs, and binary masks packed
64 pixels to a word (pack_masks, and COCO's RLE and polygon formats decoded
straight into that layout). CPU only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from visionops._checks import LIB

__all__ = [
    "pack_masks",
]


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
# Fake kernels run csrc/coco/args.h's checks with the same messages (the
# checks of values inside tensors stay with the CPU kernels, which read them).


def _check_vector(t: Tensor, n, name: str, op: str) -> None:
    torch._check(
        t.dim() == 1 and t.shape[0] == n, lambda: f"visionops.{op}: {name} must have shape [{n}], got {list(t.shape)}"
    )
    torch._check(t.device.type == "cpu", lambda: f"visionops.{op}: {name} must be on the CPU, got {t.device}")


@torch.library.register_fake(LIB + "coco_evaluate")
def _coco_evaluate_fake(det_boxes, det_scores, det_labels, det_areas, det_counts, gt_boxes, gt_labels, gt_crowd,
                        gt_areas, gt_counts, classes, iou_thresholds, recall_thresholds, area_ranges, max_dets,
                        det_masks=None, gt_masks=None, mask_words=None):
    op = "coco_evaluate"
    d, g, i = det_scores.numel(), gt_labels.numel(), det_counts.numel()
    torch._check(
        det_boxes.dim() == 2 and det_boxes.shape[0] == d and det_boxes.shape[1] == 4,
        lambda: f"visionops.{op}: det_boxes must have shape [{d}, 4], got {list(det_boxes.shape)}",
    )
    torch._check(
        gt_boxes.dim() == 2 and gt_boxes.shape[0] == g and gt_boxes.shape[1] == 4,
        lambda: f"visionops.{op}: gt_boxes must have shape [{g}, 4], got {list(gt_boxes.shape)}",
    )
    torch._check(
        gt_counts.numel() == i,
        lambda: f"visionops.{op}: det_counts and gt_counts must have one entry per image, got {i} and "
        f"{gt_counts.numel()}",
    )
    torch._check(
        area_ranges.dim() == 2 and area_ranges.shape[1] == 2,
        lambda: f"visionops.{op}: area_ranges must have shape [A, 2], got {list(area_ranges.shape)}",
    )
    torch._check_value(len(max_dets) > 0, lambda: f"visionops.{op}: max_dets must not be empty")
    for m in max_dets:
        torch._check_value(m >= 0, lambda m=m: f"visionops.{op}: max_dets must be non-negative, got {m}")
    segm = det_masks is not None
    torch._check(
        segm == (gt_masks is not None) and segm == (mask_words is not None),
        lambda: f"visionops.{op}: det_masks, gt_masks and mask_words go together",
    )
    for t, n, name in ((det_scores, d, "det_scores"), (det_labels, d, "det_labels"), (det_areas, d, "det_areas"),
                       (gt_labels, g, "gt_labels"), (gt_crowd, g, "gt_crowd"), (gt_areas, g, "gt_areas")):
        _check_vector(t, n, name, op)
    if segm:
        _check_vector(mask_words, i, "mask_words", op)
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


def _check_mask_sizes(heights, widths, n: int, op: str) -> None:
    torch._check_value(
        len(heights) == n and len(widths) == n,
        lambda: f"visionops.{op}: heights and widths must have one entry per object ({n}), got {len(heights)} and "
        f"{len(widths)}",
    )
    for h, w in zip(heights, widths):
        torch._check_value(
            h >= 0 and w >= 0, lambda h=h, w=w: f"visionops.{op}: heights and widths must be non-negative, got {h} x {w}"
        )


def _packed_words(heights, widths):
    return sum((h * w + 63) // 64 for h, w in zip(heights, widths))


@torch.library.register_fake(LIB + "coco_rle_decode")
def _coco_rle_decode_fake(counts, heights, widths):
    _check_mask_sizes(heights, widths, len(counts), "coco_rle_decode")
    return torch.empty((_packed_words(heights, widths),), dtype=torch.long, device="cpu")


@torch.library.register_fake(LIB + "coco_runs_decode")
def _coco_runs_decode_fake(runs, run_counts, heights, widths):
    op = "coco_runs_decode"
    _check_mask_sizes(heights, widths, len(run_counts), op)
    for c in run_counts:
        torch._check_value(c >= 0, lambda c=c: f"visionops.{op}: run_counts must be non-negative, got {c}")
    total = sum(run_counts)
    torch._check_value(
        runs.dim() == 1 and runs.numel() == total,
        lambda: f"visionops.{op}: runs must have shape [{total}] (the sum of run_counts), got {list(runs.shape)}",
    )
    return runs.new_empty((_packed_words(heights, widths),), dtype=torch.long)


@torch.library.register_fake(LIB + "coco_polygons_decode")
def _coco_polygons_decode_fake(xy, vertex_counts, polygons_per_object, heights, widths):
    op = "coco_polygons_decode"
    _check_mask_sizes(heights, widths, len(polygons_per_object), op)
    for k in vertex_counts:
        torch._check_value(k >= 0, lambda k=k: f"visionops.{op}: vertex_counts must be non-negative, got {k}")
    for p in polygons_per_object:
        torch._check_value(p >= 0, lambda p=p: f"visionops.{op}: polygons_per_object must be non-negative, got {p}")
    polygons, vertices = sum(polygons_per_object), sum(vertex_counts)
    torch._check_value(
        polygons == len(vertex_counts),
        lambda: f"visionops.{op}: polygons_per_object must sum to the number of polygons ({len(vertex_counts)}), "
        f"got {polygons}",
    )
    torch._check_value(
        xy.dim() == 1 and xy.numel() == 2 * vertices,
        lambda: f"visionops.{op}: xy must have shape [{2 * vertices}] (x, y of every vertex), got {list(xy.shape)}",
    )
    return xy.new_empty((_packed_words(heights, widths),), dtype=torch.long)
