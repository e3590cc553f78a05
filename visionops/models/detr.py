"""DETR (Carion et al., 2020), on visionops' ops.

As the lecture notes describe it: a CNN backbone's feature map, flattened to
a sequence with sine positional encodings, goes through a transformer
encoder; a decoder turns a fixed set of learned queries (100 by default)
into as many predictions of a class (or "no object") and a box. Training
matches predictions one to one to the targets with the Hungarian algorithm
(our batched ``linear_sum_assignment`` over each image's DETR cost block,
``detr_matching_cost``), so no NMS is needed, ever; the loss is
cross-entropy (the no-object class weighted 0.1) + L1 + GIoU (our
``generalized_box_iou_loss``) on the matched pairs, at the output of every
decoder layer (auxiliary losses).

The transformer is torch's (``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer``, the layers of ``nn.Transformer``, run layer
by layer so that every decoder layer's output is kept for the auxiliary
losses). Positional encodings are added to the encoder's input and memory;
the queries enter the decoder as its input.

Matching needs no host round trip beyond the target counts (known on the
host: the targets come from the data loader): the cost, the assignment and
the loss stay on the device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import visionops


def sine_positions(h: int, w: int, dim: int, device, dtype=torch.float32) -> Tensor:
    """DETR's 2-D sine encoding, [h * w, dim]: half the channels for y, half for x."""
    quarter = dim // 4
    freq = 1.0 / (10000 ** (torch.arange(quarter, device=device, dtype=dtype) / quarter))
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h * 2 * math.pi
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w * 2 * math.pi
    py = ys[:, None] * freq[None]
    px = xs[:, None] * freq[None]
    py = torch.cat([py.sin(), py.cos()], 1)[:, None, :].expand(h, w, 2 * quarter)
    px = torch.cat([px.sin(), px.cos()], 1)[None, :, :].expand(h, w, 2 * quarter)
    pos = torch.cat([py, px], -1).reshape(h * w, 4 * quarter)
    return F.pad(pos, (0, dim - 4 * quarter))


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    x = x.clamp(eps, 1 - eps)
    return torch.log(x / (1 - x))


def sine_box_embedding(boxes: Tensor, dim: int) -> Tensor:
    """[..., 4] boxes (cx, cy, w, h in [0, 1]) to [..., dim]: each coordinate
    as dim / 4 sines and cosines (DETR's encoding, applied to a box)."""
    quarter = dim // 4
    eighth = max(quarter // 2, 1)
    freq = 1.0 / (10000 ** (torch.arange(eighth, device=boxes.device, dtype=boxes.dtype) / eighth))
    angles = boxes[..., None] * (2 * math.pi) * freq  # [..., 4, eighth]
    emb = torch.cat([angles.sin(), angles.cos()], -1).flatten(-2)  # [..., 8 * eighth]
    return F.pad(emb, (0, dim - emb.shape[-1]))


class RefinementDecoderLayer(nn.Module):
    """A DETR decoder layer whose queries carry a positional embedding (of
    their current reference box) into both attentions, as DETR adds the
    query embedding; the memory's positions go into the keys only."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(dim_feedforward, d_model))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor,
                self_mask: Tensor | None = None) -> Tensor:
        q = x + query_pos
        x = self.norms[0](x + self.dropout(self.self_attn(q, q, x, attn_mask=self_mask, need_weights=False)[0]))
        attended = self.cross_attn(x + query_pos, memory + memory_pos, memory, need_weights=False)[0]
        x = self.norms[1](x + self.dropout(attended))
        return self.norms[2](x + self.dropout(self.ffn(x)))


class DETR(nn.Module):
    """Args:
        num_classes: classes (label values 0..num_classes - 1); index
            num_classes is "no object".
        backbone: a module from images [B, 3, H, W] to features [B, C, h, w]
            with an ``out_channels`` attribute (default: a small CNN of stride 32).
        d_model, nhead, encoder_layers, decoder_layers, dim_feedforward,
        dropout: the transformer.
        num_queries: predictions per image.
        refine_boxes: each query starts from a learned reference box (on a
            grid over the image) whose sine embedding is its positional
            query, and every decoder layer predicts a correction of the
            previous layer's box in logit space (iterative refinement, as in
            Deformable DETR and DAB-DETR). Off: the paper's DETR, boxes
            predicted from scratch by one shared head.
        groups: query groups in training (Group DETR, Chen et al., 2022):
            ``groups`` independent sets of num_queries queries, attending
            only within their group, each matched one to one to the targets
            and their losses averaged; more matched queries per image make
            training converge faster. Inference uses the first group only.
    """

    def __init__(self, num_classes: int, *, backbone: nn.Module | None = None, d_model: int = 256, nhead: int = 8,
                 encoder_layers: int = 6, decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 num_queries: int = 100, refine_boxes: bool = False, groups: int = 1) -> None:
        super().__init__()
        if groups < 1:
            raise ValueError(f"visionops.models.DETR: groups must be at least 1, got {groups}")
        self.num_classes, self.num_queries = num_classes, num_queries
        self.refine_boxes, self.groups = refine_boxes, groups
        self.backbone = backbone if backbone is not None else small_detr_backbone()
        self.input_proj = nn.Conv2d(self.backbone.out_channels, d_model, 1)
        self.encoder = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True)
            for _ in range(encoder_layers))
        self.decoder_norm = nn.LayerNorm(d_model)
        self.class_embed = nn.Linear(d_model, num_classes + 1)
        if not refine_boxes:
            self.decoder = nn.ModuleList(
                nn.TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True)
                for _ in range(decoder_layers))
            self.query_embed = nn.Embedding(num_queries * groups, d_model)
            self.bbox_embed = _box_mlp(d_model)
            return
        self.decoder = nn.ModuleList(RefinementDecoderLayer(d_model, nhead, dim_feedforward, dropout)
                                     for _ in range(decoder_layers))
        self.query_content = nn.Embedding(num_queries * groups, d_model)
        self.reference_boxes = nn.Embedding(num_queries * groups, 4)
        with torch.no_grad():
            self.reference_boxes.weight.copy_(inverse_sigmoid(grid_reference_boxes(num_queries).repeat(groups, 1)))
        self.query_pos_head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(inplace=True),
                                            nn.Linear(d_model, d_model))
        self.bbox_embed = nn.ModuleList(_box_mlp(d_model) for _ in range(decoder_layers))
        for head in self.bbox_embed:  # start at the reference boxes
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """images [B, 3, H, W] in [0, 1] to ``pred_logits`` [B, Q, K + 1],
        ``pred_boxes`` [B, Q, 4] (cx, cy, w, h relative to the image) and
        ``aux`` (the same of each earlier decoder layer, [L - 1, B, Q, ...])."""
        feats = self.input_proj(self.backbone(images))
        b, d, h, w = feats.shape
        pos = sine_positions(h, w, d, feats.device, feats.dtype)
        memory = feats.flatten(2).transpose(1, 2)
        for layer in self.encoder:
            memory = layer(memory + pos)
        groups = self.groups if self.training else 1
        q = self.num_queries * groups
        if self.refine_boxes:
            hs, boxes = self._refine(memory, pos, b, q, groups)
        else:
            x = self.query_embed.weight[:q].unsqueeze(0).expand(b, -1, -1)
            mem = memory + pos
            mask = _group_mask(self.num_queries, groups, x.device)
            outs = []
            for layer in self.decoder:
                x = layer(x, mem, tgt_mask=mask)
                outs.append(self.decoder_norm(x))
            hs = torch.stack(outs)  # [L, B, Q, D]
            boxes = self.bbox_embed(hs).sigmoid()
        logits = self.class_embed(hs)
        if groups > 1:  # [L, B, G * Q, ...] to [L, B * G, Q, ...]: the loss matches each group alone
            logits = logits.reshape(logits.shape[0], b * groups, self.num_queries, -1)
            boxes = boxes.reshape(boxes.shape[0], b * groups, self.num_queries, 4)
        out = {"pred_logits": logits[-1], "pred_boxes": boxes[-1], "aux_logits": logits[:-1], "aux_boxes": boxes[:-1]}
        if groups > 1:
            out["groups"] = groups
        return out

    def _refine(self, memory: Tensor, pos: Tensor, b: int, q: int, groups: int) -> tuple[Tensor, Tensor]:
        """The decoder with reference boxes: [L, B, Q, D] outputs and [L, B, Q, 4] boxes."""
        x = self.query_content.weight[:q].unsqueeze(0).expand(b, -1, -1)
        ref = self.reference_boxes.weight[:q].sigmoid().unsqueeze(0).expand(b, -1, -1)
        mask = _group_mask(self.num_queries, groups, x.device)
        mem_pos = pos.unsqueeze(0)
        outs, boxes = [], []
        for layer, head in zip(self.decoder, self.bbox_embed, strict=True):
            query_pos = self.query_pos_head(sine_box_embedding(ref, x.shape[-1]))
            x = layer(x, query_pos, memory, mem_pos, mask)
            out = self.decoder_norm(x)
            box = (head(out) + inverse_sigmoid(ref)).sigmoid()
            outs.append(out)
            boxes.append(box)
            ref = box.detach()  # each layer refines the last one's box; gradients stay per layer
        return torch.stack(outs), torch.stack(boxes)

    def forward_padded(self, images: Tensor) -> dict[str, Tensor]:
        """Inference with no NMS: every query's best class (not "no object"),
        its probability and its box in pixels (x1, y1, x2, y2), by decreasing
        score: ``boxes`` [B, Q, 4], ``scores`` [B, Q], ``labels`` [B, Q],
        ``counts`` [B] (= Q)."""
        out = self.forward(images)
        prob = out["pred_logits"].softmax(-1)[..., :-1]
        scores, labels = prob.max(-1)
        h, w = images.shape[-2:]
        boxes = visionops.box_convert(out["pred_boxes"], "cxcywh", "xyxy") * out["pred_boxes"].new_tensor([w, h, w, h])
        order = scores.argsort(dim=1, descending=True)
        b, q = scores.shape
        return {"boxes": boxes.gather(1, order[..., None].expand(-1, -1, 4)), "scores": scores.gather(1, order),
                "labels": labels.gather(1, order), "counts": torch.full((b,), q, dtype=torch.long,
                                                                      device=scores.device)}


class DETRLoss(nn.Module):
    """DETR's set criterion on our ops.

    ``forward(outputs, targets)``: targets are one dict per image with
    ``boxes`` [T, 4] (x1, y1, x2, y2, pixels), ``labels`` [T] and
    ``size`` (h, w) of the image (or pass ``image_size``). Returns
    ``loss_ce``, ``loss_bbox`` and ``loss_giou`` (weighted; summed over the
    final and auxiliary decoder outputs).
    """

    def __init__(self, num_classes: int, *, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 eos_coef: float = 0.1, ce_weight: float = 1.0, bbox_weight: float = 5.0,
                 giou_weight: float = 2.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cost = (cost_class, cost_bbox, cost_giou)
        self.weights = (ce_weight, bbox_weight, giou_weight)
        empty = torch.ones(num_classes + 1)
        empty[-1] = eos_coef
        self.register_buffer("empty_weight", empty)

    def match(self, logits: Tensor, boxes: Tensor, labels: Tensor, tboxes: Tensor, counts: list[int]) -> Tensor:
        """[B, Q] target index of each query (-1: no object), on the device."""
        cost = visionops.detr_matching_cost(logits.detach(), boxes.detach(), labels, tboxes, counts, *self.cost)
        col = torch.tensor(counts, dtype=torch.long).to(cost.device)
        if cost.shape[-1] == 0:
            return torch.full(logits.shape[:2], -1, dtype=torch.long, device=logits.device)
        return visionops.batched_linear_sum_assignment(cost, None, col)

    def single(self, logits: Tensor, boxes: Tensor, labels: Tensor, tboxes: Tensor,
               counts: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        assign = self.match(logits, boxes, labels, tboxes, counts)  # [B, Q]
        offsets = torch.tensor([0] + counts[:-1], dtype=torch.long, device=logits.device).cumsum(0)
        matched = assign >= 0
        flat = (assign + offsets[:, None]).clamp(min=0)
        if labels.numel() == 0:  # no targets anywhere: every query is "no object"
            flat = torch.zeros_like(assign)
            labels = torch.zeros(1, dtype=torch.long, device=logits.device)
            tboxes = torch.zeros(1, 4, dtype=boxes.dtype, device=logits.device)
        target_classes = torch.where(matched, labels[flat], self.num_classes)
        loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)
        num_boxes = max(sum(counts), 1)
        m = matched.unsqueeze(-1).to(boxes.dtype)
        tb = tboxes[flat]
        loss_bbox = (F.l1_loss(boxes, tb, reduction="none") * m).sum() / num_boxes
        giou = visionops.generalized_box_iou_loss(visionops.box_convert(boxes, "cxcywh", "xyxy"),
                                                  visionops.box_convert(tb, "cxcywh", "xyxy"), reduction="none")
        loss_giou = (giou * matched.to(giou.dtype)).sum() / num_boxes
        return loss_ce, loss_bbox, loss_giou

    def forward(self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]],
                image_size: tuple[int, int] | None = None) -> dict[str, Tensor]:
        device = outputs["pred_logits"].device
        groups = int(outputs.get("groups", 1))
        if groups > 1:  # each image's targets once per query group (rows b * groups + g)
            targets = [t for t in targets for _ in range(groups)]
        counts = [int(t["labels"].shape[0]) for t in targets]
        labels = torch.cat([t["labels"] for t in targets]).to(device)
        normalized = []
        for t in targets:
            h, w = image_size if image_size is not None else t["size"]
            xyxy = t["boxes"].to(device, torch.float32) / torch.tensor([w, h, w, h], device=device,
                                                                       dtype=torch.float32)
            normalized.append(visionops.box_convert(xyxy, "xyxy", "cxcywh"))
        tboxes = torch.cat(normalized) if normalized else torch.zeros(0, 4, device=device)
        layers = [(outputs["pred_logits"], outputs["pred_boxes"])]
        layers += list(zip(outputs["aux_logits"].unbind(0), outputs["aux_boxes"].unbind(0)))
        total = [0.0, 0.0, 0.0]
        for logits, boxes in layers:
            for i, v in enumerate(self.single(logits, boxes, labels, tboxes, counts)):
                total[i] = total[i] + v
        wc, wb, wg = self.weights
        return {"loss_ce": wc * total[0], "loss_bbox": wb * total[1], "loss_giou": wg * total[2]}


def _box_mlp(d_model: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(inplace=True), nn.Linear(d_model, d_model),
                         nn.ReLU(inplace=True), nn.Linear(d_model, 4))


def grid_reference_boxes(n: int) -> Tensor:
    """n boxes (cx, cy, w, h) whose centres cover the image on a grid of about
    sqrt(n) x sqrt(n) cells, each a cell wide and high."""
    side = math.ceil(math.sqrt(n))
    cells = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    cy, cx = torch.meshgrid(cells, cells, indexing="ij")
    centres = torch.stack([cx.flatten(), cy.flatten()], 1)[:n]
    return torch.cat([centres, torch.full((n, 2), 1.0 / side)], 1)


def _group_mask(queries: int, groups: int, device) -> Tensor | None:
    """Self-attention mask keeping each group of queries to itself."""
    if groups == 1:
        return None
    g = torch.arange(queries * groups, device=device) // queries
    return g[:, None] != g[None, :]


def small_detr_backbone(widths: tuple[int, ...] = (32, 64, 128, 192, 256)) -> nn.Module:
    """Five stride-2 stages of 3x3 convolutions with batch norm: stride 32."""
    layers, cin = [], 3
    for c in widths:
        layers += [nn.Conv2d(cin, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                   nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        cin = c
    net = nn.Sequential(*layers)
    net.out_channels = widths[-1]
    return net


def detr_small(num_classes: int, **kwargs) -> DETR:
    """DETR for CPU training: the small backbone, d_model 128, 4 heads, 3
    encoder and 3 decoder layers, feed-forward 512, no dropout, 25 queries
    (the synthetic images hold at most 6 objects), reference boxes refined
    layer by layer and 4 query groups in training (see DETR's arguments):
    the paper's DETR needs hundreds of epochs, more than a CPU gives in
    minutes."""
    options = {"d_model": 128, "nhead": 4, "encoder_layers": 3, "decoder_layers": 3, "dim_feedforward": 512,
               "dropout": 0.0, "num_queries": 25, "refine_boxes": True, "groups": 4, **kwargs}
    return DETR(num_classes, **options)
