"""Argument checks and dtype rules shared by the fake (meta) kernels.

Each op family's fake kernels, in ``visionops/ops/<family>.py``, run the same
checks as the native kernels (``csrc/core/checks.h`` and the family's
``args.h``) with the same messages and exception types, so that an op fails
the same way eagerly, on the meta device and under ``torch.compile``;
``tests/test_errors.py`` holds them in step. Family-specific checks live with
their family; the ones several families use are here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from visionops._extension import _C  # noqa: F401  (loads the library: the ops must exist before registering)

#: Prefix of every op's qualified name.
LIB = "visionops::"

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

_REDUCTIONS = ("none", "mean", "sum")

# csrc/core/limits.h's bounds on the arguments that size an op's work or
# memory (sampling ratios, output and grid sizes, fixed output counts), the
# same numbers: far above any real model's values, they turn a typo that
# would run for hours or ask for terabytes into a ValueError before any work.
MAX_SAMPLING_RATIO = 128  # points per RoI bin side
MAX_POOLED_SIDE = 1024  # RoI output bins per side
MAX_FIXED_OUTPUTS = 1 << 24  # padded_nms max_output, yolo_decode max_detections
MAX_GRID_SIDE = 1 << 20  # grid_anchors' cells per side
MAX_ANCHORS = 2**31 - 1  # grid_anchors' total


def check_at_most(value: int, bound: int, op: str, arg: str, what: str) -> None:
    torch._check_value(value <= bound, lambda: f"visionops.{op}: {arg} must be at most {bound} ({what}), got {value}")


def dtype_name(dtype: torch.dtype) -> str:
    """The dtype as c10 prints it ("Float", "Long")."""
    return _DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


def is_integer(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


# ----------------------------------------------------------------- csrc/core/checks.h


def check_boxes(t: Tensor, op: str, arg: str, min_dim: int, expected: str) -> None:
    torch._check(
        t.dim() >= min_dim and t.shape[-1] == 4,
        lambda: f"visionops.{op}: {arg} must have shape {expected}, got {list(t.shape)}",
    )
    torch._check(
        t.dtype.is_floating_point or is_integer(t.dtype),
        lambda: f"visionops.{op}: {arg} must be a floating point or integer tensor, got {dtype_name(t.dtype)}",
    )


def check_same_dtype_device(a: Tensor, b: Tensor, op: str, name_a: str, name_b: str) -> None:
    torch._check(
        a.dtype == b.dtype,
        lambda: f"visionops.{op}: {name_a} and {name_b} must have the same dtype, got "
        f"{dtype_name(a.dtype)} and {dtype_name(b.dtype)}",
    )
    torch._check(
        a.device == b.device,
        lambda: f"visionops.{op}: {name_a} and {name_b} must be on the same device, got {a.device} and {b.device}",
    )


def check_reduction(reduction: str, op: str) -> str:
    torch._check_value(
        reduction in _REDUCTIONS,
        lambda: f"visionops.{op}: Invalid reduction '{reduction}': must be one of 'none', 'mean', 'sum'",
    )
    return reduction


def check_grad_device(grad: Tensor, like: Tensor, op: str) -> None:
    torch._check(
        grad.device == like.device, lambda: f"visionops.{op}: grad must be on {like.device}, got {grad.device}"
    )


def check_loss_grad(grad: Tensor, loss_shape: list, reduction: str, op: str) -> None:
    """The upstream gradient of a loss: of the loss's shape for 'none', a scalar otherwise."""
    if reduction == "none":
        torch._check(
            list(grad.shape) == list(loss_shape),
            lambda: f"visionops.{op}: grad must have shape {list(loss_shape)}, got {list(grad.shape)}",
        )
    else:
        torch._check(
            grad.dim() == 0,
            lambda: f"visionops.{op}: grad must be a scalar for a reduced loss, got {list(grad.shape)}",
        )


# ----------------------------------------------------------------- csrc/core/dtypes.h


def iou_out_dtype(dtype: torch.dtype) -> torch.dtype:
    """The IoU family and IoU losses: float64 stays float64, everything else gives float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def area_out_dtype(dtype: torch.dtype) -> torch.dtype:
    """box_area: floats as iou_out_dtype; int64 stays int64, smaller integers give int32."""
    if dtype.is_floating_point:
        return iou_out_dtype(dtype)
    return torch.int64 if dtype == torch.int64 else torch.int32


# ----------------------------------------------------------------- registration helpers


def refuse_double_backward(op: str, public: str) -> None:
    """Autograd for a private backward op: differentiating it again is an error."""

    def setup_context(ctx, inputs, output):
        pass

    def backward(ctx, *grads):
        raise RuntimeError(
            f"visionops.{public}: double backward is not supported (the backward is a fused native kernel)"
        )

    torch.library.register_autograd(LIB + op, backward, setup_context=setup_context)


def dynamic_count(bound) -> torch.SymInt:
    """A data-dependent output length in a fake kernel: an unbacked size in [0, bound]."""
    ctx = torch.library.get_ctx()
    return ctx.new_dynamic_size(min=0, max=bound) if isinstance(bound, int) else ctx.new_dynamic_size()
