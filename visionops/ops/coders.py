"""Box coding (Faster R-CNN's BoxCoder) as fused native ops.

A box relative to a reference box (an anchor or a proposal) is coded as

    dx = wx * (cx - cx_ref) / w_ref      dw = ww * log(w / w_ref)
    dy = wy * (cy - cy_ref) / h_ref      dh = wh * log(h / h_ref)

and decoded back with ``exp`` of the size codes, capped at
``bbox_xform_clip`` (default ``log(1000 / 16)``). Same names, signatures and
results as torchvision's ``BoxCoder`` (``torchvision.models.detection._utils``),
within an ulp or two (exp and log are computed by vectorized polynomials).

dtypes: float32, float64, float16 and bfloat16 (computed in float32). Decoding
is differentiable in the codes and the reference boxes, encoding in both box
sets.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def decode_boxes(rel_codes: Tensor, boxes: Tensor, weights: tuple[float, float, float, float],
                 bbox_xform_clip: float = math.log(1000.0 / 16)) -> Tensor:
    """Decode ``rel_codes`` [N, 4 * C] relative to ``boxes`` [N, 4] into [N, 4 * C] boxes (x1, y1, x2, y2)."""
    return torch.ops.visionops.decode_boxes(rel_codes, boxes, [float(w) for w in weights], float(bbox_xform_clip))


def encode_boxes(reference_boxes: Tensor, proposals: Tensor, weights: Tensor | tuple[float, ...]) -> Tensor:
    """Codes [N, 4] of ``reference_boxes`` [N, 4] relative to ``proposals`` [N, 4] (torchvision's encode_boxes)."""
    w = weights.tolist() if isinstance(weights, Tensor) else [float(v) for v in weights]
    return torch.ops.visionops.encode_boxes(reference_boxes, proposals, w)


class BoxCoder:
    """Drop-in for torchvision's ``BoxCoder``: encodes and decodes boxes with
    the fused native ops.

    Args:
        weights ((float, float, float, float)): (wx, wy, ww, wh).
        bbox_xform_clip (float): cap on dw and dh before exp.
    """

    def __init__(self, weights: tuple[float, float, float, float],
                 bbox_xform_clip: float = math.log(1000.0 / 16)) -> None:
        self.weights = weights
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, reference_boxes: list[Tensor], proposals: list[Tensor]) -> list[Tensor]:
        """Per-image codes of ``reference_boxes`` relative to ``proposals``."""
        boxes_per_image = [len(b) for b in reference_boxes]
        targets = self.encode_single(torch.cat(reference_boxes, dim=0), torch.cat(proposals, dim=0))
        return list(targets.split(boxes_per_image, 0))

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """Codes [N, 4] of ``reference_boxes`` [N, 4] relative to ``proposals`` [N, 4]."""
        return encode_boxes(reference_boxes, proposals, self.weights)

    def decode(self, rel_codes: Tensor, boxes: list[Tensor]) -> Tensor:
        """Decode codes for the concatenated per-image ``boxes``: [sum N_i, C, 4]."""
        torch._assert(isinstance(boxes, (list, tuple)), "This function expects boxes of type list or tuple.")
        torch._assert(isinstance(rel_codes, Tensor), "This function expects rel_codes of type torch.Tensor.")
        box_sum = sum(b.size(0) for b in boxes)
        concat_boxes = torch.cat(boxes, dim=0)
        if box_sum > 0:
            rel_codes = rel_codes.reshape(box_sum, -1)
        pred_boxes = self.decode_single(rel_codes, concat_boxes)
        if box_sum > 0:
            pred_boxes = pred_boxes.reshape(box_sum, -1, 4)
        return pred_boxes

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """Decode ``rel_codes`` [N, 4 * C] relative to ``boxes`` [N, 4]: [N, 4 * C]."""
        return decode_boxes(rel_codes, boxes, self.weights, self.bbox_xform_clip)
