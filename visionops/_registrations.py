"""Fake (meta) kernels and autograd for every visionops op.

The fake kernels repeat the native argument checks (csrc/checks.h) with the
same messages and exception types, and the native output dtype rules
(csrc/box_dtypes.h); tests/test_errors.py holds the two in step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from visionops._extension import _C  # noqa: F401  (loads the library: the ops must exist first)

_lib = "visionops::"

# c10's names for dtypes, as the native messages print them.
_DTYPE_NAMES = {
    torch.float32: "Float",
    torch.float64: "Double",
    torch.float16: "Half",
    torch.bfloat16: "BFloat16",
    torch.int64: "Long",
    torch.int32: "Int",
    torch.int16: "Short",
    torch.int8: "Char",
    torch.uint8: "Byte",
    torch.bool: "Bool",
    torch.complex64: "ComplexFloat",
    torch.complex128: "ComplexDouble",
}

_FORMATS = ("xyxy", "xywh", "cxcywh")
_ROTATED_FORMATS = ("xywhr", "cxcywhr", "xyxyxyxy")
_REDUCTIONS = ("none", "mean", "sum")
_VARIANTS = ("iou", "giou", "diou", "ciou")


def _dtype_name(dtype: torch.dtype) -> str:
    return _DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


# ----------------------------------------------------------------- checks (mirror csrc/checks.h)


def check_boxes(t: Tensor, op: str, arg: str, min_dim: int, expected: str) -> None:
    torch._check(
        t.dim() >= min_dim and t.shape[-1] == 4,
        lambda: f"visionops.{op}: {arg} must have shape {expected}, got {list(t.shape)}",
    )
    torch._check(
        (t.dtype.is_floating_point or not (t.dtype.is_complex or t.dtype == torch.bool)),
        lambda: f"visionops.{op}: {arg} must be a floating point or integer tensor, got {_dtype_name(t.dtype)}",
    )


def check_same_dtype_device(a: Tensor, b: Tensor, op: str, name_a: str, name_b: str) -> None:
    torch._check(
        a.dtype == b.dtype,
        lambda: f"visionops.{op}: {name_a} and {name_b} must have the same dtype, got "
        f"{_dtype_name(a.dtype)} and {_dtype_name(b.dtype)}",
    )
    torch._check(
        a.device == b.device,
        lambda: f"visionops.{op}: {name_a} and {name_b} must be on the same device, got {a.device} and {b.device}",
    )


def check_format(fmt: str, op: str, arg: str) -> str:
    torch._check_not_implemented(
        fmt not in _ROTATED_FORMATS,
        lambda: f"visionops.{op}: rotated box format '{fmt}' for {arg} is not supported; "
        "use torchvision.ops for rotated boxes",
    )
    torch._check_value(
        fmt in _FORMATS, lambda: f"visionops.{op}: {arg} must be one of 'xyxy', 'xywh', 'cxcywh', got '{fmt}'"
    )
    return fmt


def check_reduction(reduction: str, op: str) -> str:
    torch._check_value(
        reduction in _REDUCTIONS,
        lambda: f"visionops.{op}: reduction must be one of 'none', 'mean', 'sum', got '{reduction}'",
    )
    return reduction


def check_variant(variant: str, op: str) -> str:
    torch._check_value(
        variant in _VARIANTS,
        lambda: f"visionops.{op}: variant must be one of 'iou', 'giou', 'diou', 'ciou', got '{variant}'",
    )
    return variant


# ----------------------------------------------------------------- dtype rules (mirror csrc/box_dtypes.h)


def iou_out_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def area_out_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype.is_floating_point:
        return iou_out_dtype(dtype)
    return torch.int64 if dtype == torch.int64 else torch.int32


def convert_out_dtype(dtype: torch.dtype, in_fmt: str, out_fmt: str) -> torch.dtype:
    halves = in_fmt != out_fmt and "cxcywh" in (in_fmt, out_fmt)
    return torch.float32 if (not dtype.is_floating_point and halves) else dtype


# ----------------------------------------------------------------- box area and convert


@torch.library.register_fake(_lib + "box_area")
def _box_area_fake(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    check_format(fmt, "box_area", "fmt")
    check_boxes(boxes, "box_area", "boxes", 1, "[..., 4]")
    return boxes.new_empty(boxes.shape[:-1], dtype=area_out_dtype(boxes.dtype))


def _box_area_setup(ctx, inputs, output):
    boxes, fmt = inputs
    ctx.fmt = fmt
    ctx.save_for_backward(boxes)


def _box_area_backward(ctx, grad: Tensor):
    # area is bilinear in the coordinates: its gradient is a few products,
    # written with torch ops so that it is itself differentiable.
    (boxes,) = ctx.saved_tensors
    b = boxes.to(grad.dtype)
    g = grad
    if ctx.fmt == "xyxy":
        w = b[..., 2] - b[..., 0]
        h = b[..., 3] - b[..., 1]
        gb = torch.stack((-g * h, -g * w, g * h, g * w), dim=-1)
    else:
        zero = torch.zeros_like(g)
        gb = torch.stack((zero, zero, g * b[..., 3], g * b[..., 2]), dim=-1)
    return gb.to(boxes.dtype), None


torch.library.register_autograd(_lib + "box_area", _box_area_backward, setup_context=_box_area_setup)


@torch.library.register_fake(_lib + "box_convert")
def _box_convert_fake(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    check_format(in_fmt, "box_convert", "in_fmt")
    check_format(out_fmt, "box_convert", "out_fmt")
    check_boxes(boxes, "box_convert", "boxes", 1, "[..., 4]")
    return boxes.new_empty(boxes.shape, dtype=convert_out_dtype(boxes.dtype, in_fmt, out_fmt))


def _box_convert_setup(ctx, inputs, output):
    _, ctx.in_fmt, ctx.out_fmt = inputs
    ctx.in_dtype = inputs[0].dtype


def _to_xyxy_transpose(g: Tensor, fmt: str) -> Tensor:
    """Gradient through the map fmt -> xyxy (a constant linear map)."""
    g0, g1, g2, g3 = g.unbind(-1)
    if fmt == "xywh":  # (x, y, x + w, y + h)
        return torch.stack((g0 + g2, g1 + g3, g2, g3), dim=-1)
    if fmt == "cxcywh":  # (cx - w/2, cy - h/2, cx + w/2, cy + h/2)
        return torch.stack((g0 + g2, g1 + g3, (g2 - g0) * 0.5, (g3 - g1) * 0.5), dim=-1)
    return g


def _from_xyxy_transpose(g: Tensor, fmt: str) -> Tensor:
    """Gradient through the map xyxy -> fmt."""
    g0, g1, g2, g3 = g.unbind(-1)
    if fmt == "xywh":  # (x1, y1, x2 - x1, y2 - y1)
        return torch.stack((g0 - g2, g1 - g3, g2, g3), dim=-1)
    if fmt == "cxcywh":  # ((x1 + x2)/2, (y1 + y2)/2, x2 - x1, y2 - y1)
        return torch.stack((g0 * 0.5 - g2, g1 * 0.5 - g3, g0 * 0.5 + g2, g1 * 0.5 + g3), dim=-1)
    return g


def _box_convert_backward(ctx, grad: Tensor):
    g = _to_xyxy_transpose(_from_xyxy_transpose(grad, ctx.out_fmt), ctx.in_fmt)
    return g.to(ctx.in_dtype), None, None


torch.library.register_autograd(_lib + "box_convert", _box_convert_backward, setup_context=_box_convert_setup)


# ----------------------------------------------------------------- pairwise IoU family


def _pairwise_fake_shape(boxes1: Tensor, boxes2: Tensor, op: str) -> list:
    check_boxes(boxes1, op, "boxes1", 2, "[..., N, 4]")
    check_boxes(boxes2, op, "boxes2", 2, "[..., M, 4]")
    check_same_dtype_device(boxes1, boxes2, op, "boxes1", "boxes2")
    lead1, lead2 = list(boxes1.shape[:-2]), list(boxes2.shape[:-2])
    nd = max(len(lead1), len(lead2))
    lead1 = [1] * (nd - len(lead1)) + lead1
    lead2 = [1] * (nd - len(lead2)) + lead2
    batch = []
    for d1, d2 in zip(lead1, lead2):
        torch._check(
            d1 == d2 or d1 == 1 or d2 == 1,
            lambda: f"visionops.{op}: the leading (batch) dimensions of boxes1 and boxes2 must broadcast, got "
            f"{list(boxes1.shape)} and {list(boxes2.shape)}",
        )
        batch.append(d2 if d1 == 1 else d1)
    return batch


def _register_pairwise(op: str, variant: str, has_fmt: bool, has_eps: bool) -> None:
    def fake(boxes1: Tensor, boxes2: Tensor, *args) -> Tensor:
        if has_fmt:
            check_format(args[0] if args else "xyxy", op, "fmt")
        batch = _pairwise_fake_shape(boxes1, boxes2, op)
        shape = batch + [boxes1.shape[-2], boxes2.shape[-2]]
        return boxes1.new_empty(shape, dtype=iou_out_dtype(boxes1.dtype))

    def setup_context(ctx, inputs, output):
        boxes1, boxes2, *args = inputs
        ctx.fmt = args[0] if has_fmt else "xyxy"
        ctx.eps = args[0] if has_eps else 0.0
        ctx.save_for_backward(boxes1, boxes2)

    def backward(ctx, grad: Tensor):
        boxes1, boxes2 = ctx.saved_tensors
        g1, g2 = torch.ops.visionops._pairwise_box_iou_backward(grad, boxes1, boxes2, variant, ctx.fmt, ctx.eps)
        g1 = g1.sum_to_size(boxes1.shape) if ctx.needs_input_grad[0] else None
        g2 = g2.sum_to_size(boxes2.shape) if ctx.needs_input_grad[1] else None
        return (g1, g2) + (None,) * (int(has_fmt) + int(has_eps))

    torch.library.register_fake(_lib + op, fake)
    torch.library.register_autograd(_lib + op, backward, setup_context=setup_context)


_register_pairwise("box_iou", "iou", has_fmt=True, has_eps=False)
_register_pairwise("generalized_box_iou", "giou", has_fmt=False, has_eps=False)
_register_pairwise("distance_box_iou", "diou", has_fmt=False, has_eps=True)
_register_pairwise("complete_box_iou", "ciou", has_fmt=False, has_eps=True)


@torch.library.register_fake(_lib + "_pairwise_box_iou_backward")
def _pairwise_backward_fake(grad, boxes1, boxes2, variant, fmt, eps):
    op = "_pairwise_box_iou_backward"
    check_variant(variant, op)
    check_format(fmt, op, "fmt")
    batch = _pairwise_fake_shape(boxes1, boxes2, op)
    return (
        boxes1.new_empty(batch + [boxes1.shape[-2], 4]),
        boxes2.new_empty(batch + [boxes2.shape[-2], 4]),
    )


# ----------------------------------------------------------------- IoU losses


def _loss_fake_check(boxes1: Tensor, boxes2: Tensor, op: str) -> None:
    check_boxes(boxes1, op, "boxes1", 1, "[..., 4]")
    check_boxes(boxes2, op, "boxes2", 1, "[..., 4]")
    check_same_dtype_device(boxes1, boxes2, op, "boxes1", "boxes2")
    torch._check(
        boxes1.shape == boxes2.shape,
        lambda: f"visionops.{op}: boxes1 and boxes2 must have the same shape, got "
        f"{list(boxes1.shape)} and {list(boxes2.shape)}",
    )


def _register_loss(op: str, variant: str) -> None:
    def fake(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
        check_reduction(reduction, op)
        _loss_fake_check(boxes1, boxes2, op)
        shape = boxes1.shape[:-1] if reduction == "none" else ()
        return boxes1.new_empty(shape, dtype=iou_out_dtype(boxes1.dtype))

    def setup_context(ctx, inputs, output):
        boxes1, boxes2, reduction, eps = inputs
        ctx.reduction, ctx.eps = reduction, eps
        ctx.save_for_backward(boxes1, boxes2)

    def backward(ctx, grad: Tensor):
        boxes1, boxes2 = ctx.saved_tensors
        g1, g2 = torch.ops.visionops._box_iou_loss_backward(grad, boxes1, boxes2, variant, ctx.reduction, ctx.eps)
        return (g1 if ctx.needs_input_grad[0] else None, g2 if ctx.needs_input_grad[1] else None, None, None)

    torch.library.register_fake(_lib + op, fake)
    torch.library.register_autograd(_lib + op, backward, setup_context=setup_context)


_register_loss("generalized_box_iou_loss", "giou")
_register_loss("distance_box_iou_loss", "diou")
_register_loss("complete_box_iou_loss", "ciou")


@torch.library.register_fake(_lib + "_box_iou_loss_backward")
def _loss_backward_fake(grad, boxes1, boxes2, variant, reduction, eps):
    op = "_box_iou_loss_backward"
    check_variant(variant, op)
    torch._check_value(variant != "iou", lambda: f"visionops.{op}: variant must be 'giou', 'diou' or 'ciou'")
    check_reduction(reduction, op)
    _loss_fake_check(boxes1, boxes2, op)
    return boxes1.new_empty(boxes1.shape), boxes2.new_empty(boxes2.shape)


# ----------------------------------------------------------------- NMS (mirror csrc/nms_checks.h)


def check_nms_inputs(boxes: Tensor, scores: Tensor, idxs: Tensor | None, dims: int, op: str) -> None:
    torch._check(
        boxes.dim() == dims and boxes.shape[-1] == 4,
        lambda: f"visionops.{op}: boxes must have shape {'[N, 4]' if dims == 2 else '[B, N, 4]'}, "
        f"got {list(boxes.shape)}",
    )
    torch._check(
        boxes.dtype.is_floating_point,
        lambda: f"visionops.{op}: boxes must be a floating point tensor, got {_dtype_name(boxes.dtype)}",
    )
    per_box = list(boxes.shape[:-1])
    torch._check(
        list(scores.shape) == per_box,
        lambda: f"visionops.{op}: scores must have shape {per_box} (one per box), got {list(scores.shape)}",
    )
    torch._check(
        scores.dtype == boxes.dtype,
        lambda: f"visionops.{op}: scores must have the same dtype as boxes, got {_dtype_name(scores.dtype)} and "
        f"{_dtype_name(boxes.dtype)}",
    )
    torch._check(
        scores.device == boxes.device,
        lambda: f"visionops.{op}: scores must be on the same device as boxes, got {scores.device} and "
        f"{boxes.device}",
    )
    if idxs is not None:
        torch._check(
            list(idxs.shape) == per_box,
            lambda: f"visionops.{op}: idxs must have shape {per_box} (one per box), got {list(idxs.shape)}",
        )
        torch._check(
            not (idxs.dtype.is_floating_point or idxs.dtype.is_complex or idxs.dtype == torch.bool),
            lambda: f"visionops.{op}: idxs must be an integer tensor, got {_dtype_name(idxs.dtype)}",
        )
        torch._check(
            idxs.device == boxes.device,
            lambda: f"visionops.{op}: idxs must be on the same device as boxes, got {idxs.device} and {boxes.device}",
        )


def check_nms_args(boxes: Tensor, scores: Tensor, idxs: Tensor | None, max_output: int | None, op: str) -> None:
    check_nms_inputs(boxes, scores, idxs, 2, op)
    torch._check_value(
        max_output is None or max_output >= 0,
        lambda: f"visionops.{op}: max_output must be >= 0, got {max_output}",
    )


def _kept_indices(boxes: Tensor, max_output: int | None) -> Tensor:
    # The number kept depends on the data: an unbacked size, at most N (and
    # at most max_output).
    ctx = torch.library.get_ctx()
    bound = boxes.shape[0] if max_output is None else max_output
    k = ctx.new_dynamic_size(min=0, max=bound) if isinstance(bound, int) else ctx.new_dynamic_size()
    return boxes.new_empty((k,), dtype=torch.int64)


@torch.library.register_fake(_lib + "nms")
def _nms_fake(boxes, scores, iou_threshold, *, score_threshold=None, max_output=None):
    check_nms_args(boxes, scores, None, max_output, "nms")
    return _kept_indices(boxes, max_output)


@torch.library.register_fake(_lib + "batched_nms")
def _batched_nms_fake(boxes, scores, idxs, iou_threshold, *, score_threshold=None, max_output=None):
    check_nms_args(boxes, scores, idxs, max_output, "batched_nms")
    return _kept_indices(boxes, max_output)


@torch.library.register_fake(_lib + "padded_nms")
def _padded_nms_fake(boxes, scores, iou_threshold, max_output, *, idxs=None, score_threshold=None):
    check_nms_inputs(boxes, scores, idxs, 3, "padded_nms")
    torch._check_value(max_output >= 0, lambda: f"visionops.padded_nms: max_output must be >= 0, got {max_output}")
    B = boxes.shape[0]
    return boxes.new_empty((B, max_output), dtype=torch.int64), boxes.new_empty((B,), dtype=torch.int64)


@torch.library.register_fake(_lib + "soft_nms")
def _soft_nms_fake(boxes, scores, iou_threshold=0.3, sigma=0.5, score_threshold=0.001, method="linear"):
    check_nms_args(boxes, scores, None, None, "soft_nms")
    torch._check_value(
        method in ("linear", "gaussian"),
        lambda: f"visionops.soft_nms: method must be 'linear' or 'gaussian', got '{method}'",
    )
    torch._check_value(
        method != "gaussian" or sigma > 0, lambda: f"visionops.soft_nms: sigma must be > 0, got {sigma:g}"
    )
    k = torch.library.get_ctx().new_dynamic_size(min=0, max=boxes.shape[0]) if isinstance(boxes.shape[0], int) \
        else torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((k,), dtype=torch.int64), scores.new_empty((k,))


# ----------------------------------------------------------------- RoI ops (mirror csrc/roi_checks.h)


def check_roi_input(t: Tensor, op: str, arg: str = "input") -> None:
    torch._check(t.dim() == 4, lambda: f"visionops.{op}: {arg} must be a 4-D tensor [N, C, H, W], got {list(t.shape)}")
    torch._check(
        t.dtype.is_floating_point,
        lambda: f"visionops.{op}: {arg} must be a floating point tensor, got {_dtype_name(t.dtype)}",
    )


def check_rois(rois: Tensor, input: Tensor, op: str) -> None:
    torch._check(
        rois.dim() == 2 and rois.shape[1] == 5,
        lambda: f"visionops.{op}: rois must have shape [K, 5], got {list(rois.shape)}",
    )
    check_same_dtype_device(input, rois, op, "input", "rois")


def check_output_size(pooled_h: int, pooled_w: int, op: str) -> None:
    torch._check_value(
        pooled_h >= 0 and pooled_w >= 0,
        lambda: f"visionops.{op}: output_size must not be negative, got ({pooled_h}, {pooled_w})",
    )


def _is_channels_last(t: Tensor) -> bool:
    # A map that is both (C == 1, or H == W == 1) counts as channels-first.
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def _empty_map(like: Tensor, n: int, c: int, h: int, w: int, channels_last: bool) -> Tensor:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((n, c, h, w), dtype=like.dtype, device=like.device, memory_format=fmt)


@torch.library.register_fake(_lib + "roi_align")
def _roi_align_fake(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    check_roi_input(input, "roi_align")
    check_rois(rois, input, "roi_align")
    check_output_size(pooled_height, pooled_width, "roi_align")
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


@torch.library.register_fake(_lib + "_roi_align_backward")
def _roi_align_backward_fake(grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height,
                             width, sampling_ratio, aligned, channels_last):
    check_rois(rois, grad, "_roi_align_backward")
    return _empty_map(grad, batch_size, channels, height, width, channels_last)


def _roi_align_setup(ctx, inputs, output):
    input, rois, ctx.spatial_scale, ctx.pooled_h, ctx.pooled_w, ctx.sampling_ratio, ctx.aligned = inputs
    ctx.input_shape = input.shape
    ctx.channels_last = _is_channels_last(input)
    ctx.save_for_backward(rois)


def _roi_align_backward(ctx, grad: Tensor):
    (rois,) = ctx.saved_tensors
    n, c, h, w = ctx.input_shape
    grad_input = torch.ops.visionops._roi_align_backward(
        grad, rois, ctx.spatial_scale, ctx.pooled_h, ctx.pooled_w, n, c, h, w, ctx.sampling_ratio, ctx.aligned,
        ctx.channels_last,
    )
    return grad_input, None, None, None, None, None, None


torch.library.register_autograd(_lib + "roi_align", _roi_align_backward, setup_context=_roi_align_setup)


@torch.library.register_fake(_lib + "roi_pool")
def _roi_pool_fake(input, rois, spatial_scale, pooled_height, pooled_width):
    check_roi_input(input, "roi_pool")
    check_rois(rois, input, "roi_pool")
    check_output_size(pooled_height, pooled_width, "roi_pool")
    shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.int32)


@torch.library.register_fake(_lib + "_roi_pool_backward")
def _roi_pool_backward_fake(grad, rois, argmax, spatial_scale, pooled_height, pooled_width, batch_size, channels,
                            height, width, channels_last):
    check_rois(rois, grad, "_roi_pool_backward")
    return _empty_map(grad, batch_size, channels, height, width, channels_last)


def _roi_pool_setup(ctx, inputs, output):
    input, rois, ctx.spatial_scale, ctx.pooled_h, ctx.pooled_w = inputs
    ctx.input_shape = input.shape
    ctx.channels_last = _is_channels_last(input)
    ctx.save_for_backward(rois, output[1])


def _roi_pool_backward(ctx, grad: Tensor, _grad_argmax):
    rois, argmax = ctx.saved_tensors
    n, c, h, w = ctx.input_shape
    grad_input = torch.ops.visionops._roi_pool_backward(
        grad, rois, argmax, ctx.spatial_scale, ctx.pooled_h, ctx.pooled_w, n, c, h, w, ctx.channels_last
    )
    return grad_input, None, None, None, None


torch.library.register_autograd(_lib + "roi_pool", _roi_pool_backward, setup_context=_roi_pool_setup)


def check_multi_scale_args(features, rois, spatial_scales, pooled_h, pooled_w, canonical_scale, op) -> None:
    torch._check_value(len(features) > 0, lambda: f"visionops.{op}: features must hold at least one feature map")
    torch._check_value(
        len(spatial_scales) == len(features),
        lambda: f"visionops.{op}: spatial_scales must have one scale per feature map, got {len(spatial_scales)} "
        f"scales for {len(features)} maps",
    )
    f0 = features[0]
    for level, f in enumerate(features):
        check_roi_input(f, op, "features")
        check_same_dtype_device(f0, f, op, "features[0]", "every feature map")
        torch._check(
            f.shape[0] == f0.shape[0] and f.shape[1] == f0.shape[1],
            lambda f=f, level=level: f"visionops.{op}: every feature map must have the batch size and channels "
            f"of features[0], {list(f0.shape)}, got {list(f.shape)} at level {level}",
        )
        scale = spatial_scales[level]
        torch._check_value(
            scale > 0 and math.isfinite(scale),
            lambda scale=scale, level=level: f"visionops.{op}: spatial_scales must be positive and finite, "
            f"got {scale} at level {level}",
        )
    torch._check(
        rois.dim() == 2 and rois.shape[1] == 5,
        lambda: f"visionops.{op}: rois must have shape [K, 5], got {list(rois.shape)}",
    )
    check_same_dtype_device(f0, rois, op, "features", "rois")
    check_output_size(pooled_h, pooled_w, op)
    torch._check_value(
        canonical_scale > 0, lambda: f"visionops.{op}: canonical_scale must be positive, got {canonical_scale}"
    )


@torch.library.register_fake(_lib + "multi_scale_roi_align")
def _multi_scale_roi_align_fake(features, rois, spatial_scales, pooled_height, pooled_width, sampling_ratio,
                                canonical_scale=224, canonical_level=4, eps=1e-6):
    check_multi_scale_args(features, rois, spatial_scales, pooled_height, pooled_width, canonical_scale,
                           "multi_scale_roi_align")
    return features[0].new_empty((rois.shape[0], features[0].shape[1], pooled_height, pooled_width))


@torch.library.register_fake(_lib + "_multi_scale_roi_align_backward")
def _multi_scale_roi_align_backward_fake(grad, rois, spatial_scales, heights, widths, batch_size, channels,
                                         sampling_ratio, canonical_scale, canonical_level, eps, channels_last):
    check_rois(rois, grad, "_multi_scale_roi_align_backward")
    return [_empty_map(grad, batch_size, channels, h, w, cl) for h, w, cl in zip(heights, widths, channels_last)]


def _multi_scale_setup(ctx, inputs, output):
    features, rois, ctx.scales, _, _, ctx.sampling_ratio, ctx.canonical_scale, ctx.canonical_level, ctx.eps = inputs
    ctx.batch, ctx.channels = features[0].shape[0], features[0].shape[1]
    ctx.heights = [f.shape[2] for f in features]
    ctx.widths = [f.shape[3] for f in features]
    ctx.channels_last = [_is_channels_last(f) for f in features]
    ctx.save_for_backward(rois)


def _multi_scale_backward(ctx, grad: Tensor):
    (rois,) = ctx.saved_tensors
    grads = torch.ops.visionops._multi_scale_roi_align_backward(
        grad, rois, ctx.scales, ctx.heights, ctx.widths, ctx.batch, ctx.channels, ctx.sampling_ratio,
        ctx.canonical_scale, ctx.canonical_level, ctx.eps, ctx.channels_last,
    )
    return list(grads), None, None, None, None, None, None, None, None


torch.library.register_autograd(
    _lib + "multi_scale_roi_align", _multi_scale_backward, setup_context=_multi_scale_setup
)


# Autocast, as torchvision registers it for roi_align and roi_pool: half and
# bfloat16 inputs are computed in float32 and the result cast back to the
# input's dtype (float64 stays float64).
_autocast_lib = torch.library.Library("visionops", "IMPL")


def _autocast_float(t: Tensor) -> Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _register_roi_autocast(device_key: str) -> None:
    keys = torch._C.DispatchKeySet(getattr(torch._C.DispatchKey, device_key))

    def roi_align(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
        with torch._C._ExcludeDispatchKeyGuard(keys):
            out = torch.ops.visionops.roi_align(_autocast_float(input), _autocast_float(rois), spatial_scale,
                                                pooled_height, pooled_width, sampling_ratio, aligned)
        return out.to(input.dtype)

    def roi_pool(input, rois, spatial_scale, pooled_height, pooled_width):
        with torch._C._ExcludeDispatchKeyGuard(keys):
            out, argmax = torch.ops.visionops.roi_pool(_autocast_float(input), _autocast_float(rois),
                                                       spatial_scale, pooled_height, pooled_width)
        return out.to(input.dtype), argmax

    def multi_scale_roi_align(features, rois, spatial_scales, pooled_height, pooled_width, sampling_ratio,
                              canonical_scale=224, canonical_level=4, eps=1e-6):
        # Under autocast the levels may come in different dtypes; torchvision
        # computes each in float32 and returns the first level's dtype.
        with torch._C._ExcludeDispatchKeyGuard(keys):
            out = torch.ops.visionops.multi_scale_roi_align(
                [_autocast_float(f) for f in features], _autocast_float(rois), spatial_scales, pooled_height,
                pooled_width, sampling_ratio, canonical_scale, canonical_level, eps,
            )
        return out.to(features[0].dtype)

    _autocast_lib.impl("roi_align", roi_align, device_key)
    _autocast_lib.impl("roi_pool", roi_pool, device_key)
    _autocast_lib.impl("multi_scale_roi_align", multi_scale_roi_align, device_key)


_register_roi_autocast("AutocastCPU")
_register_roi_autocast("AutocastCUDA")


# ----------------------------------------------------------------- box coding (mirror csrc/coder_checks.h)


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
        lambda: f"visionops.{op}: rel_codes must be a floating point tensor, got {_dtype_name(rel_codes.dtype)}",
    )
    torch._check(
        boxes.dim() == 2 and boxes.shape[1] == 4 and boxes.shape[0] == rel_codes.shape[0],
        lambda: f"visionops.{op}: boxes must have shape [{rel_codes.shape[0]}, 4] (one per row of rel_codes), "
        f"got {list(boxes.shape)}",
    )
    torch._check(
        boxes.dtype.is_floating_point,
        lambda: f"visionops.{op}: boxes must be a floating point tensor, got {_dtype_name(boxes.dtype)}",
    )
    torch._check(
        rel_codes.device == boxes.device,
        lambda: f"visionops.{op}: rel_codes and boxes must be on the same device, got {rel_codes.device} and "
        f"{boxes.device}",
    )


@torch.library.register_fake(_lib + "decode_boxes")
def _decode_boxes_fake(rel_codes, boxes, weights, bbox_xform_clip):
    check_decode_args(rel_codes, boxes, "decode_boxes")
    check_coder_weights(weights, "decode_boxes")
    return rel_codes.new_empty(rel_codes.shape)


@torch.library.register_fake(_lib + "_decode_boxes_backward")
def _decode_boxes_backward_fake(grad, rel_codes, boxes, weights, bbox_xform_clip):
    check_decode_args(rel_codes, boxes, "_decode_boxes_backward")
    return rel_codes.new_empty(rel_codes.shape), boxes.new_empty(boxes.shape)


def _decode_setup(ctx, inputs, output):
    rel_codes, boxes, ctx.weights, ctx.clip = inputs
    ctx.save_for_backward(rel_codes, boxes)


def _decode_backward(ctx, grad: Tensor):
    rel_codes, boxes = ctx.saved_tensors
    g_codes, g_boxes = torch.ops.visionops._decode_boxes_backward(grad, rel_codes, boxes, ctx.weights, ctx.clip)
    return g_codes, (g_boxes if ctx.needs_input_grad[1] else None), None, None


torch.library.register_autograd(_lib + "decode_boxes", _decode_backward, setup_context=_decode_setup)


@torch.library.register_fake(_lib + "encode_boxes")
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
        f"{_dtype_name(reference_boxes.dtype)}",
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


torch.library.register_autograd(_lib + "encode_boxes", _encode_backward, setup_context=_encode_setup)


# ----------------------------------------------------------------- anchors (mirror csrc/anchors_checks.h)


@torch.library.register_fake(_lib + "grid_anchors")
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
        lambda: f"visionops.{op}: cell_anchors must be a floating point tensor, got {_dtype_name(cell_anchors.dtype)}",
    )
    torch._check_value(
        sum(anchors_per_level) == cell_anchors.shape[0],
        lambda: f"visionops.{op}: anchors_per_level sums to {sum(anchors_per_level)} but cell_anchors has "
        f"{cell_anchors.shape[0]} rows",
    )
    total = sum(a * h * w for a, h, w in zip(anchors_per_level, grid_heights, grid_widths))
    return cell_anchors.new_empty((total, 4))


# ----------------------------------------------------------------- focal loss and masks (mirror csrc/focal_checks.h)


def check_focal_args(inputs: Tensor, targets: Tensor, op: str) -> None:
    torch._check(
        inputs.dtype.is_floating_point,
        lambda: f"visionops.{op}: inputs must be a floating point tensor, got {_dtype_name(inputs.dtype)}",
    )
    torch._check_value(
        inputs.shape == targets.shape,
        lambda: f"visionops.{op}: targets must have the shape of inputs, {list(inputs.shape)}, got "
        f"{list(targets.shape)}",
    )
    torch._check(
        targets.dtype.is_floating_point,
        lambda: f"visionops.{op}: targets must be a floating point tensor, got {_dtype_name(targets.dtype)}",
    )
    torch._check(
        inputs.device == targets.device,
        lambda: f"visionops.{op}: inputs and targets must be on the same device, got {inputs.device} and "
        f"{targets.device}",
    )


@torch.library.register_fake(_lib + "sigmoid_focal_loss")
def _sigmoid_focal_loss_fake(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    check_reduction(reduction, "sigmoid_focal_loss")
    check_focal_args(inputs, targets, "sigmoid_focal_loss")
    return inputs.new_empty(inputs.shape if reduction == "none" else ())


@torch.library.register_fake(_lib + "_sigmoid_focal_loss_backward")
def _sigmoid_focal_loss_backward_fake(grad, inputs, targets, alpha, gamma, reduction):
    check_focal_args(inputs, targets, "_sigmoid_focal_loss_backward")
    return inputs.new_empty(inputs.shape), targets.new_empty(targets.shape)


def _focal_setup(ctx, inputs, output):
    x, t, ctx.alpha, ctx.gamma, ctx.reduction = inputs
    ctx.save_for_backward(x, t)


def _focal_backward(ctx, grad: Tensor):
    x, t = ctx.saved_tensors
    gx, gt = torch.ops.visionops._sigmoid_focal_loss_backward(grad, x, t, ctx.alpha, ctx.gamma, ctx.reduction)
    return gx, (gt if ctx.needs_input_grad[1] else None), None, None, None


torch.library.register_autograd(_lib + "sigmoid_focal_loss", _focal_backward, setup_context=_focal_setup)


@torch.library.register_fake(_lib + "masks_to_boxes")
def _masks_to_boxes_fake(masks):
    torch._check(
        masks.dim() == 3,
        lambda: f"visionops.masks_to_boxes: masks must have shape [N, H, W], got {list(masks.shape)}",
    )
    return masks.new_empty((masks.shape[0], 4), dtype=torch.float32)


# ----------------------------------------------------------------- Dice loss (mirror csrc/dice_checks.h)

_DICE_MODES = ("binary", "multiclass", "multilabel")


def check_dice_args(inputs: Tensor, targets: Tensor, mode: str, weight, op: str) -> None:
    torch._check_value(
        mode in _DICE_MODES,
        lambda: f"visionops.{op}: mode must be one of 'binary', 'multiclass', 'multilabel', got '{mode}'",
    )
    torch._check(
        inputs.dtype.is_floating_point,
        lambda: f"visionops.{op}: inputs must be a floating point tensor, got {_dtype_name(inputs.dtype)}",
    )
    torch._check(inputs.dim() >= 2, lambda: f"visionops.{op}: inputs must have shape [B, C, ...], got "
                 f"{list(inputs.shape)}")
    torch._check(
        inputs.device == targets.device,
        lambda: f"visionops.{op}: inputs and targets must be on the same device, got {inputs.device} and "
        f"{targets.device}",
    )
    c = inputs.shape[1]
    if mode == "multiclass":
        expected = [inputs.shape[0], *inputs.shape[2:]]
        torch._check_value(
            list(targets.shape) == expected,
            lambda: f"visionops.{op}: targets must be a class map of shape [B, ...] = {expected} for inputs "
            f"{list(inputs.shape)}, got {list(targets.shape)}",
        )
        torch._check(
            not targets.dtype.is_floating_point and not targets.dtype.is_complex,
            lambda: f"visionops.{op}: multiclass targets must be an integer class map, got "
            f"{_dtype_name(targets.dtype)}",
        )
    elif mode == "binary":
        torch._check_value(
            c == 1, lambda: f"visionops.{op}: binary inputs must have one channel, [B, 1, ...], got {list(inputs.shape)}"
        )
        torch._check_value(
            targets.numel() == inputs.numel() and targets.dim() >= 1 and targets.shape[0] == inputs.shape[0],
            lambda: f"visionops.{op}: targets must hold one value per input, shape [B, 1, ...] or [B, ...], got "
            f"{list(targets.shape)} for inputs {list(inputs.shape)}",
        )
    else:
        torch._check_value(
            targets.shape == inputs.shape,
            lambda: f"visionops.{op}: multilabel targets must have the shape of inputs, {list(inputs.shape)}, got "
            f"{list(targets.shape)}",
        )
    if weight is not None:
        torch._check_value(
            weight.dim() == 1 and weight.shape[0] == c,
            lambda: f"visionops.{op}: weight must have one value per class, [{c}], got {list(weight.shape)}",
        )


@torch.library.register_fake(_lib + "dice_loss")
def _dice_loss_fake(inputs, targets, mode="binary", from_logits=True, smooth=0.0, eps=1e-7, squared=False,
                    ignore_index=None, weight=None, log_loss=False, reduction="mean"):
    check_reduction(reduction, "dice_loss")
    check_dice_args(inputs, targets, mode, weight, "dice_loss")
    c = inputs.shape[1]
    loss = inputs.new_empty((c,) if reduction == "none" else ())
    return loss, inputs.new_empty((3, c), dtype=torch.float64)


@torch.library.register_fake(_lib + "_dice_loss_backward")
def _dice_loss_backward_fake(grad, inputs, targets, stats, mode, from_logits, smooth, eps, squared, ignore_index,
                             weight, log_loss, reduction):
    check_dice_args(inputs, targets, mode, weight, "_dice_loss_backward")
    return inputs.new_empty(inputs.shape)


def _dice_setup(ctx, inputs, output):
    (x, t, ctx.mode, ctx.from_logits, ctx.smooth, ctx.eps, ctx.squared, ctx.ignore_index, weight, ctx.log_loss,
     ctx.reduction) = inputs
    ctx.save_for_backward(x, t, output[1], weight)


def _dice_backward(ctx, grad: Tensor, _grad_stats):
    x, t, stats, weight = ctx.saved_tensors
    gx = torch.ops.visionops._dice_loss_backward(grad, x, t, stats, ctx.mode, ctx.from_logits, ctx.smooth, ctx.eps,
                                                 ctx.squared, ctx.ignore_index, weight, ctx.log_loss, ctx.reduction)
    return gx, None, None, None, None, None, None, None, None, None, None


torch.library.register_autograd(_lib + "dice_loss", _dice_backward, setup_context=_dice_setup)


# ----------------------------------------------------------------- YOLO (mirror csrc/yolo_checks.h)


def check_yolo_head(head: Tensor, a: int, op: str, arg: str) -> None:
    torch._check(
        head.dim() == 4,
        lambda: f"visionops.{op}: {arg} must have shape [B, A * (5 + C), H, W], got {list(head.shape)}",
    )
    torch._check(
        head.dtype.is_floating_point,
        lambda: f"visionops.{op}: {arg} must be a floating point tensor, got {_dtype_name(head.dtype)}",
    )
    torch._check_value(
        a > 0 and head.shape[1] % a == 0 and head.shape[1] // a > 5,
        lambda: f"visionops.{op}: {arg} must have A * (5 + C) channels with C >= 1 for {a} anchors, "
        f"got {head.shape[1]}",
    )


def _check_version(version: str, op: str) -> None:
    torch._check_value(version in ("v3", "v5"), lambda: f"visionops.{op}: version must be 'v3' or 'v5', got '{version}'")


@torch.library.register_fake(_lib + "yolo_decode")
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
    for h in heads:
        check_yolo_head(h, anchors.shape[1], op, "heads")
    b, k, h0 = heads[0].shape[0], max_detections, heads[0]
    return (h0.new_empty((b, k, 4)), h0.new_empty((b, k)), h0.new_empty((b, k), dtype=torch.int64),
            h0.new_empty((b,), dtype=torch.int64))


@torch.library.register_fake(_lib + "yolo_boxes")
def _yolo_boxes_fake(head, anchors, stride, version="v5"):
    _check_version(version, "yolo_boxes")
    torch._check(
        anchors.dim() == 2 and anchors.shape[1] == 2,
        lambda: f"visionops.yolo_boxes: anchors must have shape [A, 2] (pixels), got {list(anchors.shape)}",
    )
    check_yolo_head(head, anchors.shape[0], "yolo_boxes", "head")
    return head.new_empty((head.shape[0], anchors.shape[0], head.shape[2], head.shape[3], 4))


@torch.library.register_fake(_lib + "_yolo_boxes_backward")
def _yolo_boxes_backward_fake(grad, head, anchors, stride, version):
    return head.new_empty(head.shape)


def _yolo_boxes_setup(ctx, inputs, output):
    head, anchors, ctx.stride, ctx.version = inputs
    ctx.save_for_backward(head, anchors)


def _yolo_boxes_backward(ctx, grad: Tensor):
    head, anchors = ctx.saved_tensors
    return torch.ops.visionops._yolo_boxes_backward(grad, head, anchors, ctx.stride, ctx.version), None, None, None


torch.library.register_autograd(_lib + "yolo_boxes", _yolo_boxes_backward, setup_context=_yolo_boxes_setup)


# ----------------------------------------------------------------- no double backward


def _refuse_double_backward(op: str, public: str) -> None:
    def setup_context(ctx, inputs, output):
        pass

    def backward(ctx, *grads):
        raise RuntimeError(
            f"visionops.{public}: double backward is not supported (the backward is a fused native kernel)"
        )

    torch.library.register_autograd(_lib + op, backward, setup_context=setup_context)


_refuse_double_backward("_pairwise_box_iou_backward", "box_iou family")
_refuse_double_backward("_box_iou_loss_backward", "box IoU losses")
_refuse_double_backward("_roi_align_backward", "roi_align")
_refuse_double_backward("_roi_pool_backward", "roi_pool")
_refuse_double_backward("_multi_scale_roi_align_backward", "multi_scale_roi_align")
_refuse_double_backward("_decode_boxes_backward", "decode_boxes")
_refuse_double_backward("_sigmoid_focal_loss_backward", "sigmoid_focal_loss")
_refuse_double_backward("_dice_loss_backward", "dice_loss")
_refuse_double_backward("_yolo_boxes_backward", "yolo_boxes")


# ----------------------------------------------------------------- matching (mirror csrc/lsap_checks.h, matching_checks.h)


@torch.library.register_fake(_lib + "linear_sum_assignment")
def _linear_sum_assignment_fake(cost, row_counts=None, col_counts=None, maximize=False):
    op = "visionops.linear_sum_assignment"
    torch._check_value(cost.dim() == 3, lambda: f"{op}: cost must have shape [B, R, C], got {list(cost.shape)}")
    torch._check(
        cost.dtype.is_floating_point or (not cost.dtype.is_complex and cost.dtype != torch.bool),
        lambda: f"{op}: cost must be a floating point or integer tensor, got {_DTYPE_NAMES.get(cost.dtype)}",
    )
    for name, c in (("row_counts", row_counts), ("col_counts", col_counts)):
        if c is None:
            continue
        torch._check_value(
            c.dim() == 1 and c.shape[0] == cost.shape[0],
            lambda name=name, c=c: f"{op}: {name} must have shape [B] = [{cost.shape[0]}], got {list(c.shape)}",
        )
        torch._check(
            c.dtype in (torch.int64, torch.int32),
            lambda name=name, c=c: f"{op}: {name} must be an int64 or int32 tensor, got {_DTYPE_NAMES.get(c.dtype)}",
        )
    B, R = cost.shape[0], cost.shape[1]
    return cost.new_empty((B, R), dtype=torch.long), cost.new_empty((B,), dtype=torch.int32)


@torch.library.register_fake(_lib + "detr_matching_cost")
def _detr_matching_cost_fake(logits, pred_boxes, target_labels, target_boxes, target_counts, class_weight=1.0,
                             bbox_weight=1.0, giou_weight=1.0):
    op = "visionops.detr_matching_cost"
    torch._check(
        logits.dim() == 3 and logits.shape[2] > 0,
        lambda: f"{op}: logits must have shape [B, Q, K] with K >= 1, got {list(logits.shape)}",
    )
    B, Q = logits.shape[0], logits.shape[1]
    torch._check(
        pred_boxes.dim() == 3 and pred_boxes.shape[0] == B and pred_boxes.shape[1] == Q and pred_boxes.shape[2] == 4,
        lambda: f"{op}: pred_boxes must have shape [B, Q, 4] = [{B}, {Q}, 4], got {list(pred_boxes.shape)}",
    )
    torch._check(
        target_boxes.dim() == 2 and target_boxes.shape[1] == 4,
        lambda: f"{op}: target_boxes must have shape [T, 4], got {list(target_boxes.shape)}",
    )
    torch._check(
        len(target_counts) == B,
        lambda: f"{op}: target_counts must have one count per image ({B}), got {len(target_counts)}",
    )
    T = max(target_counts, default=0)
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    return logits.new_empty((B, Q, T), dtype=dtype)


# ----------------------------------------------------------------- COCO evaluation (CPU only)


@torch.library.register_fake(_lib + "coco_evaluate")
def _coco_evaluate_fake(det_boxes, det_scores, det_labels, det_areas, det_counts, gt_boxes, gt_labels, gt_crowd,
                        gt_areas, gt_counts, classes, iou_thresholds, recall_thresholds, area_ranges, max_dets,
                        det_masks=None, gt_masks=None, mask_words=None):
    T, R, K = iou_thresholds.shape[0], recall_thresholds.shape[0], classes.shape[0]
    A, M = area_ranges.shape[0], len(max_dets)
    opts = {"dtype": torch.float64, "device": det_scores.device}
    return (det_scores.new_empty((T, R, K, A, M), **opts), det_scores.new_empty((T, K, A, M), **opts),
            det_scores.new_empty((T, R, K, A, M), **opts))


@torch.library.register_fake(_lib + "pack_masks")
def _pack_masks_fake(masks):
    torch._check(
        masks.dim() == 3,
        lambda: f"visionops.pack_masks: masks must have shape [N, H, W], got {list(masks.shape)}",
    )
    return masks.new_empty((masks.shape[0], (masks.shape[1] * masks.shape[2] + 63) // 64), dtype=torch.long)


def _packed_words(heights, widths):
    return sum((h * w + 63) // 64 for h, w in zip(heights, widths))


@torch.library.register_fake(_lib + "coco_rle_decode")
def _coco_rle_decode_fake(counts, heights, widths):
    return torch.empty((_packed_words(heights, widths),), dtype=torch.long, device="cpu")


@torch.library.register_fake(_lib + "coco_runs_decode")
def _coco_runs_decode_fake(runs, run_counts, heights, widths):
    return runs.new_empty((_packed_words(heights, widths),), dtype=torch.long)


@torch.library.register_fake(_lib + "coco_polygons_decode")
def _coco_polygons_decode_fake(xy, vertex_counts, polygons_per_object, heights, widths):
    return xy.new_empty((_packed_words(heights, widths),), dtype=torch.long)
