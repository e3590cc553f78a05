"""The fixed-size inference path of the R-CNN models: ``forward_padded``.

torchvision's detection models cannot be exported by ``torch.export``:
proposals and detections are filtered by data-dependent masks and looped
over per image. Here every stage has a static shape: the images come as one
[B, 3, H, W] tensor (already at the model's size), each level's top-k
proposals go through ``padded_nms`` with a fixed number kept per image,
every RoI of every image is pooled (padding included), and the detections
come out padded to ``detections_per_img`` with their counts. Filters become
scores of -inf (which ``padded_nms`` never keeps), so the kept boxes are
those of the eager path: the eager ``forward`` on the same images gives the
same detections, in the same order unless scores tie exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

import visionops
from visionops.models._components.rpn import flatten_head_outputs

_NEG_INF = float("-inf")


def _image_list(tensors: Tensor, sizes: list[tuple[int, int]]):
    from torchvision.models.detection.image_list import ImageList

    return ImageList(tensors, sizes)


def gather_rows(values: Tensor, idx: Tensor) -> Tensor:
    """values [B, N, ...] at idx [B, K] (-1: padding, read as row 0)."""
    safe = idx.clamp(min=0)
    shape = (*safe.shape, *values.shape[2:])
    return values.gather(1, safe.view(*safe.shape, *([1] * (values.dim() - 2))).expand(shape))


def rpn_padded(rpn, images, features: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Proposals [B, P, 4] and their validity [B, P], P = post_nms_top_n."""
    feats = list(features.values())
    objectness, deltas = rpn.head(feats)
    anchors = rpn.anchor_generator(images, feats)[0]  # every image has the same size and anchors
    b = images.tensors.shape[0]
    per_level = [o.shape[1] * o.shape[2] * o.shape[3] for o in objectness]
    logits, codes = flatten_head_outputs(objectness, deltas)
    proposals = rpn.box_coder.decode_single(codes.reshape(-1, 4), anchors.repeat(b, 1)).view(b, -1, 4)
    top = rpn.top_per_level(logits, per_level)
    levels = torch.repeat_interleave(torch.arange(len(per_level), device=logits.device),
                                     torch.tensor(per_level, device=logits.device))[top]
    boxes = gather_rows(proposals, top)
    scores = torch.sigmoid(logits.gather(1, top))
    h, w = images.image_sizes[0]
    boxes = torch.minimum(boxes.clamp(min=0), boxes.new_tensor([w, h, w, h]))
    wh = boxes[..., 2:] - boxes[..., :2]
    valid = (wh >= rpn.min_size).all(-1) & (scores >= rpn.score_thresh)
    scores = torch.where(valid, scores, _NEG_INF)
    keep, _ = visionops.padded_nms(boxes, scores, rpn.nms_thresh, rpn.post_nms_top_n(), idxs=levels,
                                   score_threshold=_NEG_INF)
    return gather_rows(boxes, keep), keep >= 0


def roi_heads_padded(heads, features: dict[str, Tensor], proposals: Tensor, proposal_valid: Tensor,
                     image_size: tuple[int, int], mask_threshold: float | None) -> dict[str, Tensor]:
    b, p = proposals.shape[:2]
    x = heads.box_roi_pool(features, list(proposals.unbind(0)), [image_size] * b)
    class_logits, box_regression = heads.box_predictor(heads.box_head(x))
    c = class_logits.shape[-1]
    boxes = heads.box_coder.decode_single(box_regression.reshape(b * p, -1),
                                          proposals.reshape(-1, 4)).view(b, p, c, 4)
    scores = F.softmax(class_logits, -1).view(b, p, c)
    h, w = image_size
    boxes = torch.minimum(boxes.clamp(min=0), boxes.new_tensor([w, h, w, h]))[:, :, 1:].reshape(b, -1, 4)
    scores = scores[:, :, 1:]
    labels = torch.arange(1, c, device=scores.device).expand_as(scores).reshape(b, -1)
    wh = boxes[..., 2:] - boxes[..., :2]
    valid = ((scores > heads.score_thresh) & proposal_valid[:, :, None]).reshape(b, -1) & (wh >= 1e-2).all(-1)
    scores = torch.where(valid, scores.reshape(b, -1), _NEG_INF)
    keep, counts = visionops.padded_nms(boxes, scores, heads.nms_thresh, heads.detections_per_img, idxs=labels,
                                        score_threshold=_NEG_INF)
    kept = keep >= 0
    out = {
        "boxes": torch.where(kept[..., None], gather_rows(boxes, keep), 0.0),
        "scores": torch.where(kept, gather_rows(scores, keep), 0.0),
        "labels": torch.where(kept, gather_rows(labels, keep), 0),
        "counts": counts,
    }
    if heads.has_mask():
        d = keep.shape[1]
        x = heads.mask_roi_pool(features, list(out["boxes"].unbind(0)), [image_size] * b)
        logits = heads.mask_predictor(heads.mask_head(x))  # [B * D, C, M, M]
        probs = logits.gather(1, out["labels"].reshape(-1, 1, 1, 1).expand(-1, 1, *logits.shape[-2:])).sigmoid()
        # Padding slots paste nothing (a NaN box pastes nothing).
        paste_boxes = torch.where(kept[..., None], out["boxes"], float("nan")).reshape(-1, 4)
        masks = visionops.paste_masks_in_image(probs, paste_boxes, image_size, threshold=mask_threshold)
        out["masks"] = masks.view(b, d, h, w)
    return out


def forward_padded(model, images: Tensor) -> dict[str, Tensor]:
    """Fixed-size inference of an R-CNN model on images [B, 3, H, W] in [0, 1]
    (already at the size the model expects: no resizing here). Returns
    ``boxes`` [B, D, 4], ``scores`` [B, D], ``labels`` [B, D] (zeros past
    each image's count), ``counts`` [B], and for Mask R-CNN ``masks`` [B, D,
    H, W] (probabilities, or bool with the model's ``mask_threshold``); D is
    the model's ``detections_per_img``."""
    if model.training:
        raise ValueError("visionops.models: forward_padded is inference only; call model.eval() first")
    t = model.transform
    mean = torch.tensor(t.image_mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(t.image_std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    x = (images - mean) / std
    h, w = images.shape[-2:]
    d = t.size_divisible
    pad_h, pad_w = (-h) % d, (-w) % d
    x = F.pad(x, (0, pad_w, 0, pad_h))
    size = (int(h), int(w))
    image_list = _image_list(x, [size] * images.shape[0])
    features = model.features(x)
    proposals, valid = rpn_padded(model.rpn, image_list, features)
    return roi_heads_padded(model.roi_heads, features, proposals, valid, size, t.mask_threshold)


class PaddedInference(torch.nn.Module):
    """A model whose forward is the R-CNN model's forward_padded: what
    ``torch.export.export(PaddedInference(model), (images,))`` takes."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return self.model.forward_padded(images)
