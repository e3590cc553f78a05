"""Faster R-CNN's and Mask R-CNN's RoI heads, on visionops' ops.

Parameter names are torchvision's (``box_head``, ``box_predictor``,
``mask_head``, ``mask_predictor``; the RoI poolers have none), and so are
the rules: ground truth added to the proposals, the 0.5 matcher, 512
sampled RoIs a quarter positive, the losses, and in inference softmax
scores, per-class boxes clipped to the image, the score and size filters,
NMS per class and the 100 best. The batch is processed as one: one decode,
one clip, one native batched NMS for all images and classes, and mask
targets cropped by one RoI Align over every image's masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import visionops
from visionops.models._components.sampling import match, nms_per_image, sample


class RoIHeads(nn.Module):
    def __init__(self, box_roi_pool: nn.Module, box_head: nn.Module, box_predictor: nn.Module, *,
                 fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.5, batch_size_per_image: int = 512,
                 positive_fraction: float = 0.25, bbox_reg_weights: tuple[float, float, float, float] | None = None,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
                 mask_roi_pool: nn.Module | None = None, mask_head: nn.Module | None = None,
                 mask_predictor: nn.Module | None = None) -> None:
        super().__init__()
        self.box_roi_pool, self.box_head, self.box_predictor = box_roi_pool, box_head, box_predictor
        self.mask_roi_pool, self.mask_head, self.mask_predictor = mask_roi_pool, mask_head, mask_predictor
        self.box_coder = visionops.BoxCoder(bbox_reg_weights or (10.0, 10.0, 5.0, 5.0))
        self.fg_iou_thresh, self.bg_iou_thresh = fg_iou_thresh, bg_iou_thresh
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img

    def has_mask(self) -> bool:
        return self.mask_roi_pool is not None

    # ------------------------------------------------------------------ training
    def select_training_samples(self, proposals: list[Tensor], targets: list[dict[str, Tensor]]):
        """The sampled RoIs of each image with their matched ground truth
        index, label and regression target."""
        out_props, out_matched, out_labels, matched_boxes = [], [], [], []
        labels_all, matched_all, props_all = [], [], []
        for props, t in zip(proposals, targets):
            gt, gt_labels = t["boxes"].to(props.dtype), t["labels"]
            props = torch.cat([props, gt])
            if gt.numel() == 0:
                m = torch.zeros(props.shape[0], dtype=torch.int64, device=props.device)
                lab = torch.zeros_like(m)
            else:
                raw = match(gt, props, self.fg_iou_thresh, self.bg_iou_thresh, allow_low_quality=False)
                m = raw.clamp(min=0)
                lab = gt_labels[m].to(torch.int64)
                lab[raw == -1] = 0
                lab[raw == -2] = -1
            props_all.append(props)
            matched_all.append(m)
            labels_all.append(lab)
        pos, neg = sample(labels_all, self.batch_size_per_image, self.positive_fraction)
        for props, m, lab, p, n, t in zip(props_all, matched_all, labels_all, pos, neg, targets):
            idx = torch.where(p | n)[0]
            out_props.append(props[idx])
            out_matched.append(m[idx])
            out_labels.append(lab[idx])
            gt = t["boxes"].to(props.dtype)
            if gt.numel() == 0:
                gt = torch.zeros(1, 4, dtype=props.dtype, device=props.device)
            matched_boxes.append(gt[m[idx]])
        regression = self.box_coder.encode(matched_boxes, out_props)
        return out_props, out_matched, out_labels, list(regression)

    @staticmethod
    def box_losses(class_logits: Tensor, box_regression: Tensor, labels: list[Tensor],
                   regression_targets: list[Tensor]) -> dict[str, Tensor]:
        labels_cat = torch.cat(labels)
        targets = torch.cat(regression_targets)
        cls_loss = F.cross_entropy(class_logits, labels_cat)
        pos = torch.where(labels_cat > 0)[0]
        reg = box_regression.reshape(box_regression.shape[0], -1, 4)[pos, labels_cat[pos]]
        box_loss = F.smooth_l1_loss(reg, targets[pos], beta=1 / 9, reduction="sum") / labels_cat.numel()
        return {"loss_classifier": cls_loss, "loss_box_reg": box_loss}

    @staticmethod
    def mask_loss(mask_logits: Tensor, proposals: list[Tensor], targets: list[dict[str, Tensor]],
                  matched: list[Tensor]) -> Tensor:
        """BCE of each positive RoI's mask logits for its class against its
        ground truth mask cropped to the RoI by RoI Align (all images at once)."""
        m = mask_logits.shape[-1]
        labels = torch.cat([t["labels"][i] for t, i in zip(targets, matched)])
        if labels.numel() == 0:
            return mask_logits.sum() * 0
        # Every image's masks stacked as one batch of maps; each RoI reads its own.
        offsets, total = [], 0
        for t in targets:
            offsets.append(total)
            total += t["masks"].shape[0]
        rois = torch.cat([
            torch.cat([(i + off).to(p.dtype)[:, None], p], 1) for p, i, off in zip(proposals, matched, offsets)
        ])
        sizes = {tuple(t["masks"].shape[-2:]) for t in targets}
        if len(sizes) == 1:
            maps = torch.cat([t["masks"] for t in targets])[:, None].to(rois.dtype)
            mask_targets = visionops.roi_align(maps, rois, (m, m), 1.0)[:, 0]
        else:  # images of different sizes: one call per image
            parts = []
            for p, i, t in zip(proposals, matched, targets):
                r = torch.cat([i.to(p.dtype)[:, None], p], 1)
                parts.append(visionops.roi_align(t["masks"][:, None].to(p.dtype), r, (m, m), 1.0)[:, 0])
            mask_targets = torch.cat(parts)
        picked = mask_logits[torch.arange(labels.shape[0], device=labels.device), labels]
        return F.binary_cross_entropy_with_logits(picked, mask_targets)

    # ------------------------------------------------------------------ inference
    def postprocess_detections(self, class_logits: Tensor, box_regression: Tensor, proposals: list[Tensor],
                               image_sizes: list[tuple[int, int]]) -> tuple[list[Tensor], list[Tensor],
                                                                            list[Tensor]]:
        num_classes = class_logits.shape[-1]
        counts = [p.shape[0] for p in proposals]
        device = class_logits.device
        boxes = self.box_coder.decode(box_regression, proposals)  # [R, C, 4]
        scores = F.softmax(class_logits, -1)
        # Clip each RoI's boxes to its image.
        image_of_roi = torch.repeat_interleave(torch.arange(len(counts), device=device),
                                               torch.tensor(counts, device=device))
        sizes = torch.tensor(image_sizes, dtype=boxes.dtype, device=device)[image_of_roi]  # [R, (h, w)]
        boxes = torch.minimum(boxes.clamp(min=0), sizes[:, [1, 0, 1, 0]].unsqueeze(1))
        # Drop the background class; every (RoI, class) is a candidate.
        boxes, scores = boxes[:, 1:], scores[:, 1:]
        labels = torch.arange(1, num_classes, device=device).expand_as(scores)
        image_of = image_of_roi[:, None].expand_as(scores)
        wh = boxes[..., 2:] - boxes[..., :2]
        valid = (scores > self.score_thresh) & (wh >= 1e-2).all(-1)
        boxes, scores, labels, image_of = boxes[valid], scores[valid], labels[valid], image_of[valid]
        kept = nms_per_image(boxes, scores, labels, image_of, len(counts), self.nms_thresh, num_classes)
        kept = [k[: self.detections_per_img] for k in kept]
        return [boxes[k] for k in kept], [scores[k] for k in kept], [labels[k] for k in kept]

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_sizes: list[tuple[int, int]],
                targets: list[dict[str, Tensor]] | None = None):
        if self.training:
            if targets is None:
                raise ValueError("visionops.models: targets are needed in training mode")
            proposals, matched, labels, regression = self.select_training_samples(proposals, targets)
        x = self.box_roi_pool(features, proposals, image_sizes)
        x = self.box_head(x)
        class_logits, box_regression = self.box_predictor(x)
        result: list[dict[str, Tensor]] = []
        losses: dict[str, Tensor] = {}
        if self.training:
            losses = self.box_losses(class_logits, box_regression, labels, regression)
        else:
            boxes, scores, labels_out = self.postprocess_detections(class_logits, box_regression, proposals,
                                                                    image_sizes)
            result = [{"boxes": b, "labels": lab, "scores": s} for b, s, lab in zip(boxes, scores, labels_out)]
        if self.has_mask():
            if self.training:
                pos = [torch.where(lab > 0)[0] for lab in labels]
                mask_props = [p[i] for p, i in zip(proposals, pos)]
                pos_matched = [m[i] for m, i in zip(matched, pos)]
            else:
                mask_props = [r["boxes"] for r in result]
            x = self.mask_roi_pool(features, mask_props, image_sizes)
            mask_logits = self.mask_predictor(self.mask_head(x))
            if self.training:
                losses["loss_mask"] = self.mask_loss(mask_logits, mask_props, targets, pos_matched)
            else:
                labels_cat = torch.cat([r["labels"] for r in result])
                probs = mask_logits[torch.arange(labels_cat.shape[0], device=labels_cat.device), labels_cat]
                probs = probs.sigmoid()[:, None]
                for r, p in zip(result, probs.split([len(r["labels"]) for r in result])):
                    r["masks"] = p
        return result, losses
