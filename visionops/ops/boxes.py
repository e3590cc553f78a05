"""The box family: area, format conversion, the pairwise IoU family, the IoU
losses and masks_to_boxes.

Same names, signatures, defaults and results as torchvision.ops 0.29 for the
axis-aligned formats. Formats:

- ``'xyxy'``: (x1, y1, x2, y2), top-left and bottom-right corners.
- ``'xywh'``: (x1, y1, w, h), top-left corner and size.
- ``'cxcywh'``: (cx, cy, w, h), centre and size.

dtypes: float32, float64, float16, bfloat16 (computed in float32) and the
integer types. The pairwise results are float64 for float64 boxes and float32
for every other dtype, as torchvision gives. Integer boxes are computed in
float64, so they never wrap (torchvision's uint8 subtraction can).

NaN: any NaN coordinate makes every value that involves that box NaN. Two
boxes whose union is empty (both of zero area) have IoU 0/0 = NaN, as in
torchvision.
"""

from __future__ import annotations

import torch
from torch import Tensor

from visionops._checks import (
    LIB,
    area_out_dtype,
    check_boxes,
    check_grad_device,
    check_loss_grad,
    check_reduction,
    check_same_dtype_device,
    dtype_name,
    iou_out_dtype,
    refuse_double_backward,
)

__all__ = [
    "box_area",
    "box_convert",
    "box_iou",
    "complete_box_iou",
    "complete_box_iou_loss",
    "distance_box_iou",
    "distance_box_iou_loss",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "masks_to_boxes",
]

_FORMATS = ("xyxy", "xywh", "cxcywh")
_ROTATED_FORMATS = ("xywhr", "cxcywhr", "xyxyxyxy")
_VARIANTS = ("iou", "giou", "diou", "ciou")


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    """Area of each box.

    Args:
        boxes (Tensor[..., 4]): boxes in ``fmt``.
        fmt (str): ``'xyxy'`` (default), ``'xywh'`` or ``'cxcywh'``.

    Returns:
        Tensor[...]: the areas; float32 for half, bfloat16 and float32 boxes,
        float64 for float64, int64 for int64 and int32 for other integers.
    """
    return torch.ops.visionops.box_area(boxes, fmt)


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between ``'xyxy'``, ``'xywh'`` and ``'cxcywh'``.

    Args:
        boxes (Tensor[..., 4]): boxes in ``in_fmt``.
        in_fmt (str): the format of ``boxes``.
        out_fmt (str): the format wanted.

    Returns:
        Tensor[..., 4]: a new tensor of the same dtype; integer boxes become
        float32 when a centre is involved (cxcywh), as in torchvision.
    """
    return torch.ops.visionops.box_convert(boxes, in_fmt, out_fmt)


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """Intersection over union of every pair of boxes.

    Args:
        boxes1 (Tensor[..., N, 4]): first set of boxes.
        boxes2 (Tensor[..., M, 4]): second set of boxes; the leading
            dimensions broadcast against boxes1's.
        fmt (str): ``'xyxy'`` (default), ``'xywh'`` or ``'cxcywh'``.

    Returns:
        Tensor[..., N, M]: the IoU of boxes1[..., i] and boxes2[..., j].
    """
    return torch.ops.visionops.box_iou(boxes1, boxes2, fmt)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Generalized IoU (Rezatofighi et al., 2019) of every pair of xyxy boxes.

    Args:
        boxes1 (Tensor[..., N, 4]): first set of boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., M, 4]): second set of boxes, (x1, y1, x2, y2).

    Returns:
        Tensor[..., N, M]: IoU minus the share of the smallest enclosing box
        that the union leaves empty.
    """
    return torch.ops.visionops.generalized_box_iou(boxes1, boxes2)


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Distance IoU (Zheng et al., 2019) of every pair of xyxy boxes.

    Args:
        boxes1 (Tensor[..., N, 4]): first set of boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., M, 4]): second set of boxes, (x1, y1, x2, y2).
        eps (float): added to the squared diagonal of the enclosing box.

    Returns:
        Tensor[..., N, M]: IoU minus the squared distance between the centres
        over the squared diagonal of the smallest enclosing box.
    """
    return torch.ops.visionops.distance_box_iou(boxes1, boxes2, eps)


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU (Zheng et al., 2019) of every pair of xyxy boxes.

    Args:
        boxes1 (Tensor[..., N, 4]): first set of boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., M, 4]): second set of boxes, (x1, y1, x2, y2).
        eps (float): added to the denominators, as in torchvision.

    Returns:
        Tensor[..., N, M]: DIoU minus the aspect-ratio consistency term
        alpha * v, with alpha held constant for the gradient.
    """
    return torch.ops.visionops.complete_box_iou(boxes1, boxes2, eps)


def masks_to_boxes(masks: Tensor) -> Tensor:
    """The boxes around the nonzero pixels of each mask, as torchvision's ``masks_to_boxes``.

    Args:
        masks (Tensor[N, H, W]): masks of any dtype (nonzero, NaN included, is "in").

    Returns:
        Tensor[N, 4]: float32 boxes (x1, y1, x2, y2) of the first and last
        nonzero columns and rows. An empty mask gives (0, 0, 0, 0) (torchvision
        raises an error; detectron2 returns zeros).
    """
    return torch.ops.visionops.masks_to_boxes(masks)


# ----------------------------------------------------------------- the IoU losses


def _broadcastable(a: list[int], b: list[int]) -> bool:
    for i in range(1, min(len(a), len(b)) + 1):
        if a[-i] != b[-i] and a[-i] != 1 and b[-i] != 1:
            return False
    return True


def _broadcast(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    # Broadcast only well-formed boxes whose shapes broadcast: anything else
    # goes to the op as it is, which then names the argument that is wrong.
    # (No try/except: TorchScript has none.)
    well_formed = boxes1.dim() >= 1 and boxes2.dim() >= 1 and boxes1.shape[-1] == 4 and boxes2.shape[-1] == 4
    if well_formed and boxes1.shape != boxes2.shape and _broadcastable(list(boxes1.shape), list(boxes2.shape)):
        both = torch.broadcast_tensors(boxes1, boxes2)
        return both[0], both[1]
    return boxes1, boxes2


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """1 - GIoU of each pair of boxes.

    Args:
        boxes1 (Tensor[..., 4]): predicted boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., 4]): target boxes, (x1, y1, x2, y2).
        reduction (str): ``'none'`` | ``'mean'`` | ``'sum'``.
        eps (float): added to the denominators.

    Returns:
        Tensor[...] for ``'none'``, else a scalar.
    """
    boxes1, boxes2 = _broadcast(boxes1, boxes2)
    return torch.ops.visionops.generalized_box_iou_loss(boxes1, boxes2, reduction, eps)


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """1 - DIoU of each pair of boxes.

    Args:
        boxes1 (Tensor[..., 4]): predicted boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., 4]): target boxes, (x1, y1, x2, y2).
        reduction (str): ``'none'`` | ``'mean'`` | ``'sum'``.
        eps (float): added to the denominators.

    Returns:
        Tensor[...] for ``'none'``, else a scalar.
    """
    boxes1, boxes2 = _broadcast(boxes1, boxes2)
    return torch.ops.visionops.distance_box_iou_loss(boxes1, boxes2, reduction, eps)


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """1 - CIoU of each pair of boxes.

    As in torchvision, ``eps`` enters the aspect-ratio weight alpha only; the
    DIoU part always uses 1e-7.

    Args:
        boxes1 (Tensor[..., 4]): predicted boxes, (x1, y1, x2, y2).
        boxes2 (Tensor[..., 4]): target boxes, (x1, y1, x2, y2).
        reduction (str): ``'none'`` | ``'mean'`` | ``'sum'``.
        eps (float): added to alpha's denominator.

    Returns:
        Tensor[...] for ``'none'``, else a scalar.
    """
    boxes1, boxes2 = _broadcast(boxes1, boxes2)
    return torch.ops.visionops.complete_box_iou_loss(boxes1, boxes2, reduction, eps)


# ================================================================= dispatcher registrations
# Fake kernels run csrc/boxes/args.h's checks with the same messages.


def check_format(fmt: str, op: str, arg: str) -> str:
    torch._check_not_implemented(
        fmt not in _ROTATED_FORMATS,
        lambda: f"visionops.{op}: rotated box format '{fmt}' for {arg} is not supported; "
        "use torchvision.ops for rotated boxes",
    )
    torch._check_value(
        fmt in _FORMATS,
        lambda: f"visionops.{op}: Unsupported format '{fmt}' for {arg}: must be one of 'xyxy', 'xywh', 'cxcywh'",
    )
    return fmt


def check_variant(variant: str, op: str) -> str:
    torch._check_value(
        variant in _VARIANTS,
        lambda: f"visionops.{op}: variant must be one of 'iou', 'giou', 'diou', 'ciou', got '{variant}'",
    )
    return variant


def convert_out_dtype(dtype: torch.dtype, in_fmt: str, out_fmt: str) -> torch.dtype:
    halves = in_fmt != out_fmt and "cxcywh" in (in_fmt, out_fmt)
    return torch.float32 if (not dtype.is_floating_point and halves) else dtype


# ----------------------------------------------------------------- box area and convert


@torch.library.register_fake(LIB + "box_area")
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


torch.library.register_autograd(LIB + "box_area", _box_area_backward, setup_context=_box_area_setup)


@torch.library.register_fake(LIB + "box_convert")
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


torch.library.register_autograd(LIB + "box_convert", _box_convert_backward, setup_context=_box_convert_setup)


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


def _check_float_for_grad(boxes: Tensor, op: str) -> None:
    torch._check(
        boxes.dtype.is_floating_point,
        lambda: f"visionops.{op}: boxes must be floating point to take gradients, got {dtype_name(boxes.dtype)}",
    )


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

    torch.library.register_fake(LIB + op, fake)
    torch.library.register_autograd(LIB + op, backward, setup_context=setup_context)


_register_pairwise("box_iou", "iou", has_fmt=True, has_eps=False)
_register_pairwise("generalized_box_iou", "giou", has_fmt=False, has_eps=False)
_register_pairwise("distance_box_iou", "diou", has_fmt=False, has_eps=True)
_register_pairwise("complete_box_iou", "ciou", has_fmt=False, has_eps=True)


@torch.library.register_fake(LIB + "_pairwise_box_iou_backward")
def _pairwise_backward_fake(grad, boxes1, boxes2, variant, fmt, eps):
    op = "_pairwise_box_iou_backward"
    check_variant(variant, op)
    check_format(fmt, op, "fmt")
    batch = _pairwise_fake_shape(boxes1, boxes2, op)
    out_shape = batch + [boxes1.shape[-2], boxes2.shape[-2]]
    torch._check(
        list(grad.shape) == out_shape,
        lambda: f"visionops.{op}: grad must have shape {out_shape}, got {list(grad.shape)}",
    )
    _check_float_for_grad(boxes1, op)
    check_grad_device(grad, boxes1, op)
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

    torch.library.register_fake(LIB + op, fake)
    torch.library.register_autograd(LIB + op, backward, setup_context=setup_context)


_register_loss("generalized_box_iou_loss", "giou")
_register_loss("distance_box_iou_loss", "diou")
_register_loss("complete_box_iou_loss", "ciou")


@torch.library.register_fake(LIB + "_box_iou_loss_backward")
def _loss_backward_fake(grad, boxes1, boxes2, variant, reduction, eps):
    op = "_box_iou_loss_backward"
    check_variant(variant, op)
    torch._check_value(variant != "iou", lambda: f"visionops.{op}: variant must be 'giou', 'diou' or 'ciou'")
    check_reduction(reduction, op)
    _loss_fake_check(boxes1, boxes2, op)
    check_loss_grad(grad, boxes1.shape[:-1], reduction, op)
    _check_float_for_grad(boxes1, op)
    check_grad_device(grad, boxes1, op)
    return boxes1.new_empty(boxes1.shape), boxes2.new_empty(boxes2.shape)


# ----------------------------------------------------------------- masks_to_boxes


@torch.library.register_fake(LIB + "masks_to_boxes")
def _masks_to_boxes_fake(masks):
    torch._check(
        masks.dim() == 3,
        lambda: f"visionops.masks_to_boxes: masks must have shape [N, H, W], got {list(masks.shape)}",
    )
    return masks.new_empty((masks.shape[0], 4), dtype=torch.float32)


refuse_double_backward("_pairwise_box_iou_backward", "box_iou family")
refuse_double_backward("_box_iou_loss_backward", "box IoU losses")
