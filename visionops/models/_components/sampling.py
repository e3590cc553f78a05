"""Matching predictions to ground truth, and sampling them for the losses.

The rules are Faster R-CNN's as torchvision implements them (so that a model
loaded with torchvision's weights and seeded alike draws the same samples):

- ``match``: each prediction takes the ground truth of highest IoU; below
  ``low`` it is background (-1), in [low, high) ignored (-2). With
  ``allow_low_quality``, every prediction that is some ground truth's best
  match (ties included) keeps that match whatever its IoU, so no ground truth
  is left without a prediction.
- ``sample``: per image, up to ``batch_size * positive_fraction`` positives
  (label >= 1) and negatives (label 0) for the rest, each drawn by
  ``torch.randperm`` (positives first, image by image).
"""

from __future__ import annotations

import torch
from torch import Tensor

import visionops

BELOW_LOW_THRESHOLD = -1
BETWEEN_THRESHOLDS = -2


def match(gt_boxes: Tensor, boxes: Tensor, high: float, low: float, allow_low_quality: bool) -> Tensor:
    """The index of each box's ground truth ([M] int64), or -1 (background) or
    -2 (ignored). gt_boxes [G, 4] with G > 0, boxes [M, 4]."""
    quality = visionops.box_iou(gt_boxes, boxes)  # [G, M]
    best, matches = quality.max(dim=0)
    if allow_low_quality:
        all_matches = matches.clone()
    matches[best < low] = BELOW_LOW_THRESHOLD
    matches[(best >= low) & (best < high)] = BETWEEN_THRESHOLDS
    if allow_low_quality:
        best_per_gt = quality.max(dim=1).values
        rescued = torch.where(quality == best_per_gt[:, None])[1]
        matches[rescued] = all_matches[rescued]
    return matches


def sample(labels: list[Tensor], batch_size: int, positive_fraction: float) -> tuple[list[Tensor], list[Tensor]]:
    """Per image, bool masks [M_i] of the sampled positives and negatives."""
    pos_masks, neg_masks = [], []
    for lab in labels:
        positive = torch.where(lab >= 1)[0]
        negative = torch.where(lab == 0)[0]
        num_pos = min(positive.numel(), int(batch_size * positive_fraction))
        num_neg = min(negative.numel(), batch_size - num_pos)
        pos = positive[torch.randperm(positive.numel(), device=positive.device)[:num_pos]]
        neg = negative[torch.randperm(negative.numel(), device=negative.device)[:num_neg]]
        pos_mask = torch.zeros_like(lab, dtype=torch.bool)
        neg_mask = torch.zeros_like(lab, dtype=torch.bool)
        pos_mask[pos] = True
        neg_mask[neg] = True
        pos_masks.append(pos_mask)
        neg_masks.append(neg_mask)
    return pos_masks, neg_masks


def nms_per_image(boxes: Tensor, scores: Tensor, classes: Tensor, image_of: Tensor, num_images: int,
                  iou_threshold: float, classes_per_image: int) -> list[Tensor]:
    """Per-class NMS of every image in one native call: the kept indices of
    each image, by decreasing score.

    Tied scores are listed as torchvision's per-image ``batched_nms`` lists
    them (its loop over classes and unstable sort above 1000 boxes on the
    CPU and 25000 on CUDA, a stable sort below), so that models loaded with torchvision's
    weights keep its proposal and detection order exactly."""
    idxs = image_of * classes_per_image + classes
    keep = visionops.batched_nms(boxes, scores, idxs, iou_threshold)
    counts = torch.bincount(image_of, minlength=num_images).tolist()
    kept_image = image_of[keep]
    out = []
    for i in range(num_images):
        k = keep[kept_image == i]
        if counts[i] * 4 > (4000 if boxes.device.type == "cpu" else 100_000):
            k = k.sort()[0]
            k = k[scores[k].sort(descending=True)[1]]
        out.append(k)
    return out
