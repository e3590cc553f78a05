"""RoI Align, RoI Pool and MultiScaleRoIAlign.

Same names, signatures, defaults and results as torchvision.ops 0.29 (float32
results are bitwise torchvision's on the CPU for finite inputs).

RoIs: either a ``Tensor[K, 5]`` of (batch index, x1, y1, x2, y2) or a list of
``Tensor[L, 4]`` boxes (x1, y1, x2, y2), one per image, in image coordinates;
``spatial_scale`` maps them onto the feature map.

dtypes: float32, float64, float16 and bfloat16 (accumulated in float32). The
RoIs must have the input's dtype, as in torchvision; under autocast both are
computed in float32 and the result cast back to the input's dtype.

Memory format: a channels-last input is read in place (no copy) and its
gradient comes back channels-last; the pooled output is always contiguous
``[K, C, PH, PW]``, as torchvision's.

Determinism: on the CPU the backward passes are bitwise reproducible for any
thread count (no atomics). On CUDA the default backward uses atomic adds;
under ``torch.use_deterministic_algorithms(True)`` a gather-based backward
that needs no extra memory is used instead.

Bad values:

- a batch index outside ``[0, N)`` (after truncation towards zero, as
  torchvision casts it) or NaN: the RoI pools zeros (roi_pool's argmax -1)
  and passes no gradient, on the CPU and on CUDA alike (an error on CUDA
  would cost a host sync; torchvision reads out of bounds);
- RoI coordinates that are NaN or infinite never crash: sampling points at
  non-finite positions contribute nothing (roi_align), a RoI with a NaN
  coordinate pools zeros with argmax -1 (roi_pool);
- NaN in the feature map propagates through roi_align's samples that read it;
  roi_pool, like torchvision, never picks NaN as the maximum.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.jit.annotations import BroadcastingList2
from torch.nn.modules.utils import _pair

from visionops._checks import (
    LIB,
    MAX_POOLED_SIDE,
    MAX_SAMPLING_RATIO,
    check_at_most,
    check_same_dtype_device,
    dtype_name,
    refuse_double_backward,
)

__all__ = [
    "MultiScaleRoIAlign",
    "RoIAlign",
    "RoIPool",
    "multi_scale_roi_align",
    "roi_align",
    "roi_pool",
]


def _check_roi_boxes(boxes: Tensor | list[Tensor], op: str) -> None:
    # torchvision raises AssertionError (torch._assert) for these; so do we.
    if isinstance(boxes, (list, tuple)):
        for b in boxes:
            torch._assert(
                isinstance(b, Tensor) and b.dim() == 2 and b.size(1) == 4,
                f"visionops.{op}: each tensor in a list of boxes must have shape [L, 4] (The shape of the tensor "
                "in the boxes list is not correct as List[Tensor[L, 4]])",
            )
    elif isinstance(boxes, Tensor):
        # torchvision's words in parentheses: users' code matches them.
        torch._assert(
            boxes.dim() == 2 and boxes.size(1) == 5,
            f"visionops.{op}: boxes must have shape [K, 5] (batch index, x1, y1, x2, y2) "
            "or be a list of [L, 4] tensors (The boxes tensor shape is not correct as Tensor[K, 5])",
        )
    else:
        torch._assert(False, f"visionops.{op}: boxes must be a Tensor[K, 5] or a list of Tensor[L, 4]")


def convert_boxes_to_roi_format(boxes: list[Tensor]) -> Tensor:
    """A list of per-image ``Tensor[L, 4]`` boxes as one ``Tensor[K, 5]`` of RoIs."""
    if len(boxes) == 1:
        b = boxes[0]
        return torch.cat([torch.zeros_like(b[:, :1]), b], dim=1)
    ids = torch.cat([torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)], dim=0)
    return torch.cat([ids, torch.cat(boxes, dim=0)], dim=1)


def _as_rois(boxes: Tensor | list[Tensor], op: str) -> Tensor:
    _check_roi_boxes(boxes, op)
    return boxes if isinstance(boxes, Tensor) else convert_boxes_to_roi_format(list(boxes))


def roi_align(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: BroadcastingList2[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoI Align (Mask R-CNN): average of bilinearly sampled points per bin.

    Args:
        input (Tensor[N, C, H, W]): the feature maps.
        boxes (Tensor[K, 5] or list of Tensor[L, 4]): the RoIs, see the module
            docstring.
        output_size (int or (int, int)): (PH, PW) bins per RoI.
        spatial_scale (float): factor from box to map coordinates.
        sampling_ratio (int): sampling points per bin side; ``<= 0`` means
            adaptive, ``ceil(roi_size / output_size)``.
        aligned (bool): shift the box by -0.5 pixel (Detectron2); False keeps
            the legacy behaviour that stretches RoIs to at least 1 x 1.

    Returns:
        Tensor[K, C, PH, PW]
    """
    rois = _as_rois(boxes, "roi_align")
    ph, pw = _pair(output_size)
    return torch.ops.visionops.roi_align(input, rois, spatial_scale, ph, pw, sampling_ratio, aligned)


def roi_pool(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: BroadcastingList2[int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """RoI Pool (Fast R-CNN): maximum over each bin of the RoI, rounded to pixels.

    Args:
        input (Tensor[N, C, H, W]): the feature maps.
        boxes (Tensor[K, 5] or list of Tensor[L, 4]): the RoIs.
        output_size (int or (int, int)): (PH, PW) bins per RoI.
        spatial_scale (float): factor from box to map coordinates.

    Returns:
        Tensor[K, C, PH, PW]; empty bins are 0.
    """
    rois = _as_rois(boxes, "roi_pool")
    ph, pw = _pair(output_size)
    output, _ = torch.ops.visionops.roi_pool(input, rois, spatial_scale, ph, pw)
    return output


class RoIAlign(nn.Module):
    """See :func:`roi_align`."""

    def __init__(
        self,
        output_size: int | tuple[int, int] | list[int],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = False,
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned})"
        )


class RoIPool(nn.Module):
    """See :func:`roi_pool`."""

    def __init__(self, output_size: int | tuple[int, int] | list[int], spatial_scale: float) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(output_size={self.output_size}, spatial_scale={self.spatial_scale})"


def _infer_scale(feature: Tensor, original_size: tuple[int, int]) -> float:
    # The scale is assumed to be 2 ** -k for an integer k (torchvision's rule:
    # the nearest power of two of the first dimension's ratio).
    approx = float(feature.shape[-2]) / float(original_size[0])
    return 2.0 ** float(torch.tensor(approx).log2().round())


def multi_scale_roi_align(
    features: list[Tensor],
    boxes: list[Tensor],
    output_size: BroadcastingList2[int],
    spatial_scales: list[float],
    sampling_ratio: int,
    canonical_scale: int = 224,
    canonical_level: int = 4,
) -> Tensor:
    """RoI Align of each box on the FPN level its size selects, in one native call.

    Level of a box of area A (eq. 1 of the FPN paper, as torchvision's
    LevelMapper): ``floor(canonical_level + log2(sqrt(A) / canonical_scale)
    + 1e-6)``, clamped to the levels of ``spatial_scales`` (first and last
    map). Boxes whose level is NaN (a NaN box, or one of negative area) pool
    zeros, as in torchvision.

    Args:
        features (list of Tensor[N, C, H_l, W_l]): the maps, finest first.
        boxes (list of Tensor[L_i, 4]): per-image boxes in image coordinates.
        output_size (int or (int, int)): (PH, PW).
        spatial_scales (list of float): each map's scale, 2 ** -k.
        sampling_ratio (int): as in :func:`roi_align` (aligned is False).

    Returns:
        Tensor[sum L_i, C, PH, PW], in the order of the boxes.
    """
    rois = _as_rois(boxes, "multi_scale_roi_align")
    ph, pw = _pair(output_size)
    return torch.ops.visionops.multi_scale_roi_align(
        list(features), rois, [float(s) for s in spatial_scales], ph, pw, sampling_ratio,
        canonical_scale, canonical_level, 1e-6,
    )


class MultiScaleRoIAlign(nn.Module):
    """torchvision's MultiScaleRoIAlign (FPN pooling), computed in one native call.

    Args:
        featmap_names (list of str): the feature maps of the input dict to use.
        output_size (int or (int, int)): (PH, PW).
        sampling_ratio (int): as in :func:`roi_align`.
        canonical_scale (int): box side that maps to ``canonical_level``.
        canonical_level (int): FPN level of a ``canonical_scale`` box.

    The scales are inferred from the maps' and images' sizes on the first call
    and kept, as torchvision does.
    """

    # TorchScript: scales is set on the first call.
    __annotations__ = {"scales": list[float] | None}

    def __init__(
        self,
        featmap_names: list[str],
        output_size: int | tuple[int, ...] | list[int],
        sampling_ratio: int,
        *,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.featmap_names = featmap_names
        self.sampling_ratio = sampling_ratio
        self.output_size = tuple(output_size)
        self.scales = None
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        """
        Args:
            x (dict of str to Tensor[N, C, H_l, W_l]): the feature maps.
            boxes (list of Tensor[L_i, 4]): per-image boxes (x1, y1, x2, y2) in
                image coordinates.
            image_shapes (list of (height, width)): the images' sizes before
                the backbone, to infer each map's scale.

        Returns:
            Tensor[sum L_i, C, PH, PW]
        """
        # Loops rather than comprehensions with conditions: TorchScript has none.
        features: list[Tensor] = []
        for k, v in x.items():
            if k in self.featmap_names:
                features.append(v)
        scales = self.scales
        if scales is None:
            if len(image_shapes) == 0:
                raise ValueError("visionops.MultiScaleRoIAlign: images list should not be empty (image_shapes)")
            height, width = 0, 0
            for s in image_shapes:
                height, width = max(height, s[0]), max(width, s[1])
            scales = [_infer_scale(f, (height, width)) for f in features]
            self.scales = scales
        return multi_scale_roi_align(
            features, boxes, self.output_size, scales, self.sampling_ratio,
            canonical_scale=self.canonical_scale, canonical_level=self.canonical_level,
        )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(featmap_names={self.featmap_names}, "
            f"output_size={self.output_size}, sampling_ratio={self.sampling_ratio})"
        )


# ================================================================= dispatcher registrations
# Fake kernels run csrc/roi/args.h's checks with the same messages.


def check_roi_input(t: Tensor, op: str, arg: str = "input") -> None:
    torch._check(t.dim() == 4, lambda: f"visionops.{op}: {arg} must be a 4-D tensor [N, C, H, W], got {list(t.shape)}")
    torch._check(
        t.dtype.is_floating_point,
        lambda: f"visionops.{op}: {arg} must be a floating point tensor, got {dtype_name(t.dtype)}",
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
    check_at_most(max(pooled_h, pooled_w), MAX_POOLED_SIDE, op, "output_size", "bins per side")


def check_sampling_ratio(sampling_ratio: int, op: str) -> None:
    check_at_most(sampling_ratio, MAX_SAMPLING_RATIO, op, "sampling_ratio",
                  "sampling points per bin side; 0 or less picks about one per pixel")


def check_roi_grad(grad: Tensor, k: int, c: int, pooled_h: int, pooled_w: int, op: str) -> None:
    torch._check(
        list(grad.shape) == [k, c, pooled_h, pooled_w],
        lambda: f"visionops.{op}: grad must have shape [{k}, {c}, {pooled_h}, {pooled_w}], got {list(grad.shape)}",
    )


def _is_channels_last(t: Tensor) -> bool:
    # A map that is both (C == 1, or H == W == 1) counts as channels-first.
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def _empty_map(like: Tensor, n: int, c: int, h: int, w: int, channels_last: bool) -> Tensor:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((n, c, h, w), dtype=like.dtype, device=like.device, memory_format=fmt)


@torch.library.register_fake(LIB + "roi_align")
def _roi_align_fake(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    check_roi_input(input, "roi_align")
    check_rois(rois, input, "roi_align")
    check_output_size(pooled_height, pooled_width, "roi_align")
    check_sampling_ratio(sampling_ratio, "roi_align")
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


@torch.library.register_fake(LIB + "_roi_align_backward")
def _roi_align_backward_fake(grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height,
                             width, sampling_ratio, aligned, channels_last):
    check_rois(rois, grad, "_roi_align_backward")
    check_roi_grad(grad, rois.shape[0], channels, pooled_height, pooled_width, "_roi_align_backward")
    check_sampling_ratio(sampling_ratio, "_roi_align_backward")
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


torch.library.register_autograd(LIB + "roi_align", _roi_align_backward, setup_context=_roi_align_setup)


@torch.library.register_fake(LIB + "roi_pool")
def _roi_pool_fake(input, rois, spatial_scale, pooled_height, pooled_width):
    check_roi_input(input, "roi_pool")
    check_rois(rois, input, "roi_pool")
    check_output_size(pooled_height, pooled_width, "roi_pool")
    shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.int32)


@torch.library.register_fake(LIB + "_roi_pool_backward")
def _roi_pool_backward_fake(grad, rois, argmax, spatial_scale, pooled_height, pooled_width, batch_size, channels,
                            height, width, channels_last):
    op = "_roi_pool_backward"
    check_rois(rois, grad, op)
    check_roi_grad(grad, rois.shape[0], channels, pooled_height, pooled_width, op)
    torch._check(
        argmax.shape == grad.shape and argmax.dtype == torch.int32,
        lambda: f"visionops.{op}: argmax must be an int32 tensor of grad's shape {list(grad.shape)}, got "
        f"{dtype_name(argmax.dtype)} {list(argmax.shape)}",
    )
    torch._check(
        argmax.device == grad.device, lambda: f"visionops.{op}: argmax must be on {grad.device}, got {argmax.device}"
    )
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


torch.library.register_autograd(LIB + "roi_pool", _roi_pool_backward, setup_context=_roi_pool_setup)


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


@torch.library.register_fake(LIB + "multi_scale_roi_align")
def _multi_scale_roi_align_fake(features, rois, spatial_scales, pooled_height, pooled_width, sampling_ratio,
                                canonical_scale=224, canonical_level=4, eps=1e-6):
    check_multi_scale_args(features, rois, spatial_scales, pooled_height, pooled_width, canonical_scale,
                           "multi_scale_roi_align")
    check_sampling_ratio(sampling_ratio, "multi_scale_roi_align")
    return features[0].new_empty((rois.shape[0], features[0].shape[1], pooled_height, pooled_width))


@torch.library.register_fake(LIB + "_multi_scale_roi_align_backward")
def _multi_scale_roi_align_backward_fake(grad, rois, spatial_scales, heights, widths, batch_size, channels,
                                         sampling_ratio, canonical_scale, canonical_level, eps, channels_last):
    op = "_multi_scale_roi_align_backward"
    n = len(spatial_scales)
    torch._check(
        n > 0 and len(heights) == n and len(widths) == n and len(channels_last) == n,
        lambda: f"visionops.{op}: spatial_scales, heights, widths and channels_last must have one entry per level",
    )
    check_rois(rois, grad, op)
    torch._check(grad.dim() == 4, lambda: f"visionops.{op}: grad must be 4-D, got {list(grad.shape)}")
    check_roi_grad(grad, rois.shape[0], channels, grad.shape[2], grad.shape[3], op)
    check_sampling_ratio(sampling_ratio, op)
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
    LIB + "multi_scale_roi_align", _multi_scale_backward, setup_context=_multi_scale_setup
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


refuse_double_backward("_roi_align_backward", "roi_align")
refuse_double_backward("_roi_pool_backward", "roi_pool")
refuse_double_backward("_multi_scale_roi_align_backward", "multi_scale_roi_align")
