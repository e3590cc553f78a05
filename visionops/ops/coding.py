"""The coding family: Faster R-CNN's box coding and anchors, and YOLO's head
decoding.

Box coding (Faster R-CNN's BoxCoder), as fused native ops. A box relative to a reference box (an anchor or a proposal) is coded as

    dx = wx * (cx - cx_ref) / w_ref      dw = ww * log(w / w_ref)
    dy = wy * (cy - cy_ref) / h_ref      dh = wh * log(h / h_ref)

and decoded back with ``exp`` of the size codes, capped at
``bbox_xform_clip`` (default ``log(1000 / 16)``). Same names, signatures and
results as torchvision's ``BoxCoder`` (``torchvision.models.detection._utils``),
within an ulp or two (exp and log are computed by vectorized polynomials).

dtypes: float32, float64, float16 and bfloat16 (computed in float32). Decoding
is differentiable in the codes and the reference boxes, encoding in both box
sets.

Anchors: torchvision's AnchorGenerator, with every level's anchors made by
one native op (torchvision builds each level from several tensor ops and
concatenates them per image).

Same names, arguments, order and values as
``torchvision.models.detection.anchor_utils.AnchorGenerator``: for each
feature map, ``len(sizes[i]) * len(aspect_ratios[i])`` anchors per location,
centred on the location's top-left corner in image pixels (stride = image
size // map size), in (level, row, column, anchor) order.

YOLO head decoding, fused: every scale of a YOLO head to each image's top
boxes with scores and classes, ready for :func:`visionops.padded_nms` (or
``batched_nms``), and the differentiable box decoding that a box loss needs.

A head of one scale is ``[B, A * (5 + C), H, W]``: per anchor, the box
logits (tx, ty, tw, th), the objectness and C class logits. Anchors are
given per scale in pixels (``[L, A, 2]``, e.g. YOLOv5's
``[[10, 13], [16, 30], [33, 23]]`` for stride 8). Boxes are
(x1, y1, x2, y2) in pixels:

- ``'v3'``: centre ``(sigmoid(t) + cell) * stride``, size ``exp(t) * anchor``;
- ``'v5'``: centre ``(2 sigmoid(t) - 0.5 + cell) * stride``, size
  ``(2 sigmoid(t)) ** 2 * anchor``.

A box's score is ``sigmoid(objectness) * sigmoid(best class logit)`` and
its class the best one (one label per box; the first class wins ties).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from visionops._checks import (
    LIB,
    MAX_ANCHORS,
    MAX_FIXED_OUTPUTS,
    MAX_GRID_SIDE,
    check_at_most,
    check_grad_device,
    check_same_dtype_device,
    dtype_name,
    refuse_double_backward,
)

__all__ = [
    "AnchorGenerator",
    "BoxCoder",
    "decode_boxes",
    "encode_boxes",
    "yolo_boxes",
    "yolo_decode",
]

# ----------------------------------------------------------------- box coding


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
    the fused native ops. Scriptable, as torchvision's is (as a class, or as
    an attribute of a scripted module).

    Args:
        weights ((float, float, float, float)): (wx, wy, ww, wh).
        bbox_xform_clip (float): cap on dw and dh before exp.
    """

    def __init__(self, weights: tuple[float, float, float, float],
                 bbox_xform_clip: float = math.log(1000.0 / 16)) -> None:
        if len(weights) != 4:
            raise ValueError(f"visionops.BoxCoder: weights must have 4 values (wx, wy, ww, wh), got {len(weights)}")
        self.weights = weights
        self.bbox_xform_clip = bbox_xform_clip
        # The native ops take float[]; built once here, and spelled out
        # because the scripter compiles __init__ and iterates no tuples.
        self._weight_list = [float(weights[0]), float(weights[1]), float(weights[2]), float(weights[3])]

    def encode(self, reference_boxes: list[Tensor], proposals: list[Tensor]) -> list[Tensor]:
        """Per-image codes of ``reference_boxes`` relative to ``proposals``."""
        boxes_per_image = [b.size(0) for b in reference_boxes]
        targets = self.encode_single(torch.cat(reference_boxes, dim=0), torch.cat(proposals, dim=0))
        return list(targets.split(boxes_per_image, 0))

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """Codes [N, 4] of ``reference_boxes`` [N, 4] relative to ``proposals`` [N, 4]."""
        return torch.ops.visionops.encode_boxes(reference_boxes, proposals, self._weight_list)

    def decode(self, rel_codes: Tensor, boxes: list[Tensor]) -> Tensor:
        """Decode codes for the concatenated per-image ``boxes``: [sum N_i, C, 4]."""
        torch._assert(isinstance(boxes, (list, tuple)), "This function expects boxes of type list or tuple.")
        torch._assert(isinstance(rel_codes, Tensor), "This function expects rel_codes of type torch.Tensor.")
        box_sum = 0
        for b in boxes:  # a loop: the scripter has no generator expressions
            box_sum += b.size(0)
        concat_boxes = torch.cat(boxes, dim=0)
        if box_sum > 0:
            rel_codes = rel_codes.reshape(box_sum, -1)
        pred_boxes = self.decode_single(rel_codes, concat_boxes)
        if box_sum > 0:
            pred_boxes = pred_boxes.reshape(box_sum, -1, 4)
        return pred_boxes

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """Decode ``rel_codes`` [N, 4 * C] relative to ``boxes`` [N, 4]: [N, 4 * C]."""
        return torch.ops.visionops.decode_boxes(rel_codes, boxes, self._weight_list, self.bbox_xform_clip)


# ----------------------------------------------------------------- anchors


_CPU = torch.device("cpu")


def grid_anchors(cell_anchors: list[Tensor], grid_sizes: list[tuple[int, int]],
                 strides: list[tuple[int, int]]) -> Tensor:
    """All levels' anchors [sum H W A, 4]: ``cell_anchors[l]`` [A_l, 4] tiled over
    ``grid_sizes[l]`` (H, W) with ``strides[l]`` (stride_h, stride_w)."""
    return torch.ops.visionops.grid_anchors(
        torch.cat(cell_anchors) if len(cell_anchors) != 1 else cell_anchors[0],
        [int(c.shape[0]) for c in cell_anchors],
        [int(g[0]) for g in grid_sizes], [int(g[1]) for g in grid_sizes],
        [int(s[0]) for s in strides], [int(s[1]) for s in strides],
    )


def _image_list_type() -> type:
    """torchvision's ImageList when torchvision is installed, so that a
    scripted AnchorGenerator takes what torchvision's detection models pass;
    otherwise a scriptable class with the same two fields."""
    try:
        from torchvision.models.detection.image_list import ImageList as TorchvisionImageList
    except ImportError:
        return _ImageList
    return TorchvisionImageList


class _ImageList:
    """The two fields of torchvision's ImageList that AnchorGenerator reads."""

    def __init__(self, tensors: Tensor, image_sizes: list[tuple[int, int]]) -> None:
        self.tensors = tensors
        self.image_sizes = image_sizes


class AnchorGenerator(nn.Module):
    """Drop-in for torchvision's ``AnchorGenerator``; scriptable, as
    torchvision's is.

    Args:
        sizes (tuple of tuples of int): anchor sizes per feature map.
        aspect_ratios (tuple of tuples of float): height / width ratios per
            feature map.
    """

    __annotations__ = {"cell_anchors": list[Tensor]}

    def __init__(self, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)) -> None:
        super().__init__()
        # forward's annotation names ImageList; the scripter looks it up in
        # this module's globals when it compiles, after a module was built.
        globals()["ImageList"] = _image_list_type()
        if not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (aspect_ratios,) * len(sizes)
        self.sizes = sizes
        self.aspect_ratios = aspect_ratios
        self.cell_anchors = [self.generate_anchors(s, a) for s, a in zip(sizes, aspect_ratios)]

    def generate_anchors(self, scales, aspect_ratios, dtype: torch.dtype = torch.float32,
                         device: torch.device = _CPU) -> Tensor:
        """Zero-centred anchors [len(aspect_ratios) * len(scales), 4], rounded (torchvision's formula)."""
        scales = torch.as_tensor(scales, dtype=dtype, device=device)
        aspect_ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
        h_ratios = torch.sqrt(aspect_ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()

    def set_cell_anchors(self, dtype: torch.dtype, device: torch.device) -> None:
        self.cell_anchors = [c.to(dtype=dtype, device=device) for c in self.cell_anchors]

    def num_anchors_per_location(self) -> list[int]:
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios)]

    def forward(self, image_list: ImageList, feature_maps: list[Tensor]) -> list[Tensor]:  # noqa: F821
        """Anchors [sum H W A, 4] for each image of ``image_list`` (an ImageList:
        ``.tensors`` [B, C, H, W] and ``.image_sizes``)."""
        grid_sizes = [(int(fm.shape[-2]), int(fm.shape[-1])) for fm in feature_maps]
        image_height, image_width = int(image_list.tensors.shape[-2]), int(image_list.tensors.shape[-1])
        torch._assert(
            len(grid_sizes) == len(self.cell_anchors),
            "Anchors should be Tuple[Tuple[int]] because each feature map could potentially have different sizes "
            "and aspect ratios. There needs to be a match between the number of feature maps passed and the number "
            "of sizes / aspect ratios specified.",
        )
        self.set_cell_anchors(feature_maps[0].dtype, feature_maps[0].device)
        strides = [(image_height // g[0], image_width // g[1]) for g in grid_sizes]
        anchors = grid_anchors(self.cell_anchors, grid_sizes, strides)
        # One tensor per image, as torchvision returns (not views of one another).
        return [anchors] + [anchors.clone() for _ in range(len(image_list.image_sizes) - 1)]


# ----------------------------------------------------------------- YOLO


def _anchors_tensor(anchors, like: Tensor) -> Tensor:
    if isinstance(anchors, Tensor):
        return anchors.to(device=like.device, dtype=torch.float32)
    a = torch.tensor(anchors, dtype=torch.float32)
    if like.is_cuda and not torch.compiler.is_compiling():
        # Nested lists (the docstring's form) go through pinned memory with a
        # non-blocking copy: a pageable one would wait for the device (a host
        # sync on every call).
        return a.pin_memory().to(like.device, non_blocking=True)
    return a.to(like.device)


def yolo_decode(heads: list[Tensor], anchors, strides: list[int], *, version: str = "v5",
                score_threshold: float = 0.25, max_detections: int = 300
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The top ``max_detections`` boxes of each image, over every scale.

    Args:
        heads (list of Tensor[B, A * (5 + C), H_l, W_l]): the head of each scale.
        anchors (Tensor[L, A, 2] or nested lists): anchor sizes in pixels, per scale.
        strides (list of int): each scale's stride in pixels.
        version (str): ``'v3'`` or ``'v5'``.
        score_threshold (float): scores must be above it.
        max_detections (int): boxes kept per image.

    Returns:
        boxes (Tensor[B, K, 4]), scores (Tensor[B, K]), classes (Tensor[B, K],
        int64) and counts (Tensor[B], int64), K = ``max_detections``: each
        image's boxes by decreasing score (ties in candidate order: scale,
        anchor, row, column), padded with zero boxes and scores and class -1.
        No host synchronization on CUDA.
    """
    return torch.ops.visionops.yolo_decode(list(heads), _anchors_tensor(anchors, heads[0]), [int(s) for s in strides],
                                           version, float(score_threshold), int(max_detections))


def yolo_boxes(head: Tensor, anchors, stride: int, *, version: str = "v5") -> Tensor:
    """Differentiable box decoding of one scale: [B, A, H, W, 4] boxes (x1, y1, x2, y2).

    Args:
        head (Tensor[B, A * (5 + C), H, W]): the head (only its box logits are read).
        anchors (Tensor[A, 2] or list): this scale's anchor sizes in pixels.
        stride (int): the scale's stride in pixels.
        version (str): ``'v3'`` or ``'v5'``.
    """
    return torch.ops.visionops.yolo_boxes(head, _anchors_tensor(anchors, head), int(stride), version)


# ================================================================= dispatcher registrations
# Fake kernels run csrc/coding/args.h's checks with the same messages.


# ----------------------------------------------------------------- box coding


def check_coder_weights(weights, op: str) -> None:
    torch._check_value(
        len(weights) == 4, lambda: f"visionops.{op}: weights must hold 4 values (x, y, w, h), got {len(weights)}"
    )


def check_decode_args(rel_codes: Tensor, boxes: Tensor, op: str) -> None:
    torch._check(
        rel_codes.dim() == 2 and rel_codes.shape[1] % 4 == 0,
        lambda: f"visionops.{op}: rel_codes must have shape [N, 4 * C] (a multiple of 4 per box), "
        f"got {list(rel_codes.shape)}",
    )
    torch._check(
        rel_codes.dtype.is_floating_point,
        lambda: f"visionops.{op}: rel_codes must be a floating point tensor, got {dtype_name(rel_codes.dtype)}",
    )
    torch._check(
        boxes.dim() == 2 and boxes.shape[1] == 4 and boxes.shape[0] == rel_codes.shape[0],
        lambda: f"visionops.{op}: boxes must have shape [{rel_codes.shape[0]}, 4] (one per row of rel_codes), "
        f"got {list(boxes.shape)}",
    )
    torch._check(
        boxes.dtype.is_floating_point,
        lambda: f"visionops.{op}: boxes must be a floating point tensor, got {dtype_name(boxes.dtype)}",
    )
    torch._check(
        rel_codes.device == boxes.device,
        lambda: f"visionops.{op}: rel_codes and boxes must be on the same device, got {rel_codes.device} and "
        f"{boxes.device}",
    )


@torch.library.register_fake(LIB + "decode_boxes")
def _decode_boxes_fake(rel_codes, boxes, weights, bbox_xform_clip):
    check_decode_args(rel_codes, boxes, "decode_boxes")
    check_coder_weights(weights, "decode_boxes")
    return rel_codes.new_empty(rel_codes.shape)


@torch.library.register_fake(LIB + "_decode_boxes_backward")
def _decode_boxes_backward_fake(grad, rel_codes, boxes, weights, bbox_xform_clip):
    op = "_decode_boxes_backward"
    check_decode_args(rel_codes, boxes, op)
    torch._check(
        grad.shape == rel_codes.shape and grad.dtype == rel_codes.dtype,
        lambda: f"visionops.{op}: grad must match rel_codes, got {list(grad.shape)}",
    )
    check_grad_device(grad, rel_codes, op)
    check_coder_weights(weights, op)
    return rel_codes.new_empty(rel_codes.shape), boxes.new_empty(boxes.shape)


def _decode_setup(ctx, inputs, output):
    rel_codes, boxes, ctx.weights, ctx.clip = inputs
    ctx.save_for_backward(rel_codes, boxes)


def _decode_backward(ctx, grad: Tensor):
    rel_codes, boxes = ctx.saved_tensors
    g_codes, g_boxes = torch.ops.visionops._decode_boxes_backward(grad, rel_codes, boxes, ctx.weights, ctx.clip)
    return g_codes, (g_boxes if ctx.needs_input_grad[1] else None), None, None


torch.library.register_autograd(LIB + "decode_boxes", _decode_backward, setup_context=_decode_setup)


@torch.library.register_fake(LIB + "encode_boxes")
def _encode_boxes_fake(reference_boxes, proposals, weights):
    op = "encode_boxes"
    torch._check(
        reference_boxes.dim() == 2 and reference_boxes.shape[1] == 4,
        lambda: f"visionops.{op}: reference_boxes must have shape [N, 4], got {list(reference_boxes.shape)}",
    )
    torch._check(
        proposals.dim() == 2 and proposals.shape[1] == 4 and proposals.shape[0] == reference_boxes.shape[0],
        lambda: f"visionops.{op}: proposals must have shape [{reference_boxes.shape[0]}, 4] (one per reference "
        f"box), got {list(proposals.shape)}",
    )
    torch._check(
        reference_boxes.dtype.is_floating_point,
        lambda: f"visionops.{op}: reference_boxes must be a floating point tensor, got "
        f"{dtype_name(reference_boxes.dtype)}",
    )
    check_same_dtype_device(reference_boxes, proposals, op, "reference_boxes", "proposals")
    check_coder_weights(weights, op)
    return reference_boxes.new_empty(reference_boxes.shape)


def _encode_setup(ctx, inputs, output):
    reference_boxes, proposals, ctx.weights = inputs
    ctx.save_for_backward(reference_boxes, proposals, output)


def _encode_backward(ctx, grad: Tensor):
    # Closed form, in torch ops (so it is itself differentiable): the codes
    # depend on each box through its centre and its size.
    ref, prop, codes = ctx.saved_tensors
    wx, wy, ww, wh = ctx.weights
    g = grad.float() if grad.dtype in (torch.float16, torch.bfloat16) else grad
    r, p, c = (t.to(g.dtype) for t in (ref, prop, codes))
    ex_w, ex_h = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    gt_w, gt_h = r[:, 2] - r[:, 0], r[:, 3] - r[:, 1]
    g_gt_cx, g_gt_cy = g[:, 0] * wx / ex_w, g[:, 1] * wy / ex_h
    g_gt_w, g_gt_h = g[:, 2] * ww / gt_w, g[:, 3] * wh / gt_h
    g_ex_w = -g[:, 0] * c[:, 0] / ex_w - g[:, 2] * ww / ex_w
    g_ex_h = -g[:, 1] * c[:, 1] / ex_h - g[:, 3] * wh / ex_h
    g_ref = torch.stack((0.5 * g_gt_cx - g_gt_w, 0.5 * g_gt_cy - g_gt_h, 0.5 * g_gt_cx + g_gt_w,
                         0.5 * g_gt_cy + g_gt_h), dim=1)
    g_prop = torch.stack((-0.5 * g_gt_cx - g_ex_w, -0.5 * g_gt_cy - g_ex_h, -0.5 * g_gt_cx + g_ex_w,
                          -0.5 * g_gt_cy + g_ex_h), dim=1)
    return g_ref.to(ref.dtype), g_prop.to(prop.dtype), None


torch.library.register_autograd(LIB + "encode_boxes", _encode_backward, setup_context=_encode_setup)


# ----------------------------------------------------------------- anchors


@torch.library.register_fake(LIB + "grid_anchors")
def _grid_anchors_fake(cell_anchors, anchors_per_level, grid_heights, grid_widths, stride_heights, stride_widths):
    op = "grid_anchors"
    n = len(anchors_per_level)
    lengths = [len(grid_heights), len(grid_widths), len(stride_heights), len(stride_widths)]
    torch._check_value(
        all(v == n for v in lengths),
        lambda: f"visionops.{op}: anchors_per_level, grid_heights, grid_widths, stride_heights and stride_widths "
        f"must have one entry per feature map, got {n}, {lengths[0]}, {lengths[1]}, {lengths[2]} and {lengths[3]}",
    )
    torch._check(
        cell_anchors.dim() == 2 and cell_anchors.shape[1] == 4,
        lambda: f"visionops.{op}: cell_anchors must have shape [A, 4], got {list(cell_anchors.shape)}",
    )
    torch._check(
        cell_anchors.dtype.is_floating_point,
        lambda: f"visionops.{op}: cell_anchors must be a floating point tensor, got {dtype_name(cell_anchors.dtype)}",
    )
    for level, (a, h, w) in enumerate(zip(anchors_per_level, grid_heights, grid_widths)):
        torch._check_value(
            a >= 0 and h >= 0 and w >= 0,
            lambda level=level: f"visionops.{op}: anchor counts and grid sizes must not be negative, at level {level}",
        )
        check_at_most(max(h, w), MAX_GRID_SIDE, op, "a grid side", "feature map cells per side")
        check_at_most(a, cell_anchors.shape[0], op, "anchors_per_level", "the rows of cell_anchors")
        check_at_most(h * w, MAX_ANCHORS, op, "a grid's cells", "H * W")
        total = sum(a_ * h_ * w_ for a_, h_, w_ in zip(anchors_per_level[:level + 1], grid_heights, grid_widths))
        check_at_most(total, MAX_ANCHORS, op, "the number of anchors", "sum of H * W * A over the levels")
    torch._check_value(
        sum(anchors_per_level) == cell_anchors.shape[0],
        lambda: f"visionops.{op}: anchors_per_level sums to {sum(anchors_per_level)} but cell_anchors has "
        f"{cell_anchors.shape[0]} rows",
    )
    total = sum(a * h * w for a, h, w in zip(anchors_per_level, grid_heights, grid_widths))
    return cell_anchors.new_empty((total, 4))


# ----------------------------------------------------------------- YOLO


def check_yolo_head(head: Tensor, a: int, op: str, arg: str) -> None:
    torch._check(
        head.dim() == 4,
        lambda: f"visionops.{op}: {arg} must have shape [B, A * (5 + C), H, W], got {list(head.shape)}",
    )
    torch._check(
        head.dtype.is_floating_point,
        lambda: f"visionops.{op}: {arg} must be a floating point tensor, got {dtype_name(head.dtype)}",
    )
    torch._check_value(
        a > 0 and head.shape[1] % a == 0 and head.shape[1] // a > 5,
        lambda: f"visionops.{op}: {arg} must have A * (5 + C) channels with C >= 1 for {a} anchors, "
        f"got {head.shape[1]}",
    )


def _check_version(version: str, op: str) -> None:
    torch._check_value(version in ("v3", "v5"), lambda: f"visionops.{op}: version must be 'v3' or 'v5', got '{version}'")


@torch.library.register_fake(LIB + "yolo_decode")
def _yolo_decode_fake(heads, anchors, strides, version="v5", score_threshold=0.25, max_detections=300):
    op = "yolo_decode"
    _check_version(version, op)
    torch._check_value(len(heads) > 0, lambda: f"visionops.{op}: heads must hold at least one scale")
    torch._check(
        anchors.dim() == 3 and anchors.shape[0] == len(heads) and anchors.shape[2] == 2,
        lambda: f"visionops.{op}: anchors must have shape [{len(heads)}, A, 2] (pixels, per scale), got "
        f"{list(anchors.shape)}",
    )
    torch._check_value(
        len(strides) == len(heads),
        lambda: f"visionops.{op}: strides must have one value per scale, got {len(strides)} for {len(heads)} scales",
    )
    torch._check_value(max_detections >= 0, lambda: f"visionops.{op}: max_detections must be >= 0, got "
                       f"{max_detections}")
    check_at_most(max_detections, MAX_FIXED_OUTPUTS, op, "max_detections", "the fixed output size per image")
    a, h0 = anchors.shape[1], heads[0]
    classes = None
    for h in heads:
        check_yolo_head(h, a, op, "heads")
        check_same_dtype_device(h0, h, op, "heads[0]", "every head")
        c = h.shape[1] // a - 5
        torch._check_value(
            h.shape[0] == h0.shape[0] and (classes is None or c == classes),
            lambda h=h: f"visionops.{op}: every head must have the batch size and classes of heads[0], got "
            f"{list(h.shape)}",
        )
        classes = c
    torch._check(
        anchors.device == h0.device,
        lambda: f"visionops.{op}: anchors must be on the device of the heads, got {anchors.device}",
    )
    b, k = h0.shape[0], max_detections
    return (h0.new_empty((b, k, 4)), h0.new_empty((b, k)), h0.new_empty((b, k), dtype=torch.int64),
            h0.new_empty((b,), dtype=torch.int64))


def _check_yolo_boxes_args(head: Tensor, anchors: Tensor, op: str) -> None:
    torch._check(
        anchors.dim() == 2 and anchors.shape[1] == 2,
        lambda: f"visionops.{op}: anchors must have shape [A, 2] (pixels), got {list(anchors.shape)}",
    )
    check_yolo_head(head, anchors.shape[0], op, "head")
    torch._check(
        anchors.device == head.device,
        lambda: f"visionops.{op}: anchors must be on the device of head, got {anchors.device}",
    )


@torch.library.register_fake(LIB + "yolo_boxes")
def _yolo_boxes_fake(head, anchors, stride, version="v5"):
    _check_version(version, "yolo_boxes")
    _check_yolo_boxes_args(head, anchors, "yolo_boxes")
    return head.new_empty((head.shape[0], anchors.shape[0], head.shape[2], head.shape[3], 4))


@torch.library.register_fake(LIB + "_yolo_boxes_backward")
def _yolo_boxes_backward_fake(grad, head, anchors, stride, version):
    op = "_yolo_boxes_backward"
    _check_version(version, op)
    _check_yolo_boxes_args(head, anchors, op)
    shape = [head.shape[0], anchors.shape[0], head.shape[2], head.shape[3], 4]
    torch._check(
        list(grad.shape) == shape and grad.dtype == head.dtype,
        lambda: f"visionops.{op}: grad must be a {dtype_name(head.dtype)} tensor of shape {shape}, got "
        f"{dtype_name(grad.dtype)} {list(grad.shape)}",
    )
    check_grad_device(grad, head, op)
    return head.new_empty(head.shape)


def _yolo_boxes_setup(ctx, inputs, output):
    head, anchors, ctx.stride, ctx.version = inputs
    ctx.save_for_backward(head, anchors)


def _yolo_boxes_backward(ctx, grad: Tensor):
    head, anchors = ctx.saved_tensors
    return torch.ops.visionops._yolo_boxes_backward(grad, head, anchors, ctx.stride, ctx.version), None, None, None


torch.library.register_autograd(LIB + "yolo_boxes", _yolo_boxes_backward, setup_context=_yolo_boxes_setup)


refuse_double_backward("_decode_boxes_backward", "decode_boxes")
refuse_double_backward("_yolo_boxes_backward", "yolo_boxes")
