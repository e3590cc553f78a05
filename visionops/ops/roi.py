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
  torchvision casts it) or NaN raises IndexError on the CPU; on CUDA, where
  checking would cost a host sync, such a RoI pools zeros and passes no
  gradient;
- RoI coordinates that are NaN or infinite never crash: sampling points at
  non-finite positions contribute nothing (roi_align), a RoI with a NaN
  coordinate pools zeros with argmax -1 (roi_pool);
- NaN in the feature map propagates through roi_align's samples that read it;
  roi_pool, like torchvision, never picks NaN as the maximum.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair


def _check_roi_boxes(boxes: Tensor | list[Tensor], op: str) -> None:
    # torchvision raises AssertionError (torch._assert) for these; so do we.
    if isinstance(boxes, (list, tuple)):
        for b in boxes:
            torch._assert(
                isinstance(b, Tensor) and b.dim() == 2 and b.size(1) == 4,
                f"visionops.{op}: each tensor in a list of boxes must have shape [L, 4]",
            )
    elif isinstance(boxes, Tensor):
        torch._assert(
            boxes.dim() == 2 and boxes.size(1) == 5,
            f"visionops.{op}: boxes must have shape [K, 5] (batch index, x1, y1, x2, y2) "
            "or be a list of [L, 4] tensors",
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
    output_size: int | tuple[int, int] | list[int],
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
    output_size: int | tuple[int, int] | list[int],
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
    output_size: int | tuple[int, int] | list[int],
    spatial_scales: list[float],
    sampling_ratio: int,
    *,
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
        self.scales: list[float] | None = None
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
        features = [v for k, v in x.items() if k in self.featmap_names]
        if self.scales is None:
            if not image_shapes:
                raise ValueError("visionops.MultiScaleRoIAlign: image_shapes must not be empty")
            original = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
            self.scales = [_infer_scale(f, original) for f in features]
        return multi_scale_roi_align(
            features, boxes, self.output_size, self.scales, self.sampling_ratio,
            canonical_scale=self.canonical_scale, canonical_level=self.canonical_level,
        )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(featmap_names={self.featmap_names}, "
            f"output_size={self.output_size}, sampling_ratio={self.sampling_ratio})"
        )
