"""The region proposal network of Faster R-CNN, on visionops' ops.

Parameter names are torchvision's (``head.conv``, ``head.cls_logits``,
``head.bbox_pred``), and so is every rule: anchors per level, top-k per level
before NMS, clipping, small-box and score filters, NMS per level, the
matcher (0.7 / 0.3, low-quality matches kept), the 256-anchor sampler and
the losses. What differs is how the work is done: every image's proposals
are decoded in one call, filtered as one batch, and suppressed by one native
batched NMS (levels of different images never meet); torchvision loops over
images and, within each, over levels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import visionops
from visionops.models._components.sampling import match, nms_per_image, sample


def flatten_head_outputs(objectness: list[Tensor], deltas: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-level [B, A, H, W] logits and [B, A * 4, H, W] deltas to [B, T]
    and [B, T, 4], T = sum of H * W * A, in (level, row, column, anchor)
    order: the anchors' order."""
    logits, codes = [], []
    for o, d in zip(objectness, deltas):
        b, a, h, w = o.shape
        logits.append(o.permute(0, 2, 3, 1).reshape(b, -1))
        codes.append(d.view(b, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4))
    return torch.cat(logits, 1), torch.cat(codes, 1)


class RegionProposalNetwork(nn.Module):
    def __init__(self, anchor_generator: nn.Module, head: nn.Module, *, fg_iou_thresh: float = 0.7,
                 bg_iou_thresh: float = 0.3, batch_size_per_image: int = 256, positive_fraction: float = 0.5,
                 pre_nms_top_n: dict[str, int] | None = None, post_nms_top_n: dict[str, int] | None = None,
                 nms_thresh: float = 0.7, score_thresh: float = 0.0, min_size: float = 1e-3) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = visionops.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.fg_iou_thresh, self.bg_iou_thresh = fg_iou_thresh, bg_iou_thresh
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self._pre_nms_top_n = pre_nms_top_n or {"training": 2000, "testing": 1000}
        self._post_nms_top_n = post_nms_top_n or {"training": 2000, "testing": 1000}
        self.nms_thresh, self.score_thresh, self.min_size = nms_thresh, score_thresh, min_size

    def pre_nms_top_n(self) -> int:
        return self._pre_nms_top_n["training" if self.training else "testing"]

    def post_nms_top_n(self) -> int:
        return self._post_nms_top_n["training" if self.training else "testing"]

    def top_per_level(self, logits: Tensor, per_level: list[int]) -> Tensor:
        """[B, K] indices of each level's pre_nms_top_n best logits."""
        out, offset = [], 0
        for ob in logits.split(per_level, 1):
            k = min(self.pre_nms_top_n(), ob.shape[1])
            out.append(ob.topk(k, dim=1)[1] + offset)
            offset += ob.shape[1]
        return torch.cat(out, 1)

    def filter_proposals(self, proposals: Tensor, logits: Tensor, image_sizes: list[tuple[int, int]],
                         per_level: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        b = proposals.shape[0]
        device = proposals.device
        logits = logits.detach()
        top = self.top_per_level(logits, per_level)
        levels = torch.repeat_interleave(torch.arange(len(per_level), device=device),
                                         torch.tensor(per_level, device=device))[top]
        rows = torch.arange(b, device=device)[:, None]
        boxes = proposals[rows, top]
        scores = torch.sigmoid(logits[rows, top])
        # Clip every image's boxes at once: x to [0, width], y to [0, height].
        sizes = torch.tensor(image_sizes, dtype=boxes.dtype, device=device)  # [B, (h, w)]
        hi = sizes[:, [1, 0, 1, 0]].view(b, 1, 4)
        boxes = torch.minimum(boxes.clamp(min=0), hi)
        wh = boxes[..., 2:] - boxes[..., :2]
        valid = (wh >= self.min_size).all(-1) & (scores >= self.score_thresh)
        image_of, slot = torch.where(valid)
        flat_boxes, flat_scores = boxes[image_of, slot], scores[image_of, slot]
        kept = nms_per_image(flat_boxes, flat_scores, levels[image_of, slot], image_of, b, self.nms_thresh,
                             len(per_level))
        n = self.post_nms_top_n()
        return [flat_boxes[k[:n]] for k in kept], [flat_scores[k[:n]] for k in kept]

    def assign_targets(self, anchors: list[Tensor], targets: list[dict[str, Tensor]]) -> tuple[list[Tensor],
                                                                                              list[Tensor]]:
        labels, matched_boxes = [], []
        for anc, t in zip(anchors, targets):
            gt = t["boxes"]
            if gt.numel() == 0:
                labels.append(torch.zeros(anc.shape[0], dtype=torch.float32, device=anc.device))
                matched_boxes.append(torch.zeros(anc.shape, dtype=torch.float32, device=anc.device))
                continue
            m = match(gt, anc, self.fg_iou_thresh, self.bg_iou_thresh, allow_low_quality=True)
            matched_boxes.append(gt[m.clamp(min=0)])
            lab = (m >= 0).to(torch.float32)
            lab[m == -2] = -1.0
            labels.append(lab)
        return labels, matched_boxes

    def losses(self, logits: Tensor, codes: Tensor, labels: list[Tensor], targets: list[Tensor]) -> dict[str, Tensor]:
        pos, neg = sample(labels, self.batch_size_per_image, self.positive_fraction)
        pos_i = torch.where(torch.cat(pos))[0]
        sampled = torch.cat([pos_i, torch.where(torch.cat(neg))[0]])
        labels_cat = torch.cat(labels)
        box_loss = F.smooth_l1_loss(codes.reshape(-1, 4)[pos_i], torch.cat(targets)[pos_i], beta=1 / 9,
                                    reduction="sum") / sampled.numel()
        obj_loss = F.binary_cross_entropy_with_logits(logits.flatten()[sampled], labels_cat[sampled])
        return {"loss_objectness": obj_loss, "loss_rpn_box_reg": box_loss}

    def forward(self, images, features: dict[str, Tensor], targets: list[dict[str, Tensor]] | None = None):
        feats = list(features.values())
        objectness, deltas = self.head(feats)
        anchors = self.anchor_generator(images, feats)
        b = len(anchors)
        per_level = [o.shape[1] * o.shape[2] * o.shape[3] for o in objectness]
        logits, codes = flatten_head_outputs(objectness, deltas)
        # One decode of every image's anchors (Faster R-CNN does not backpropagate through proposals).
        proposals = self.box_coder.decode_single(codes.detach().reshape(-1, 4), torch.cat(anchors)).view(b, -1, 4)
        boxes, _scores = self.filter_proposals(proposals, logits, images.image_sizes, per_level)
        losses: dict[str, Tensor] = {}
        if self.training:
            if targets is None:
                raise ValueError("visionops.models: targets are needed in training mode")
            labels, matched = self.assign_targets(anchors, targets)
            regression = self.box_coder.encode(matched, anchors)
            losses = self.losses(logits, codes, labels, list(regression))
        return boxes, losses
