"""Bad input: a clear error naming the op, the argument and what was expected,
of torchvision's exception type, with the same message from the CPU, CUDA
and fake (meta) kernels."""

from __future__ import annotations

import re

import pytest
import torch

import visionops

from .conftest import _NO_CUDA

ERROR_DEVICES = [
    "cpu",
    "meta",
    pytest.param("cuda", marks=pytest.mark.skipif(_NO_CUDA is not None, reason=f"CUDA case: {_NO_CUDA}")),
]


def boxes(*shape, dtype=torch.float32, device="cpu"):
    return torch.zeros(shape, dtype=dtype, device=device)


PAIRWISE = [
    ("box_iou", visionops.box_iou),
    ("generalized_box_iou", visionops.generalized_box_iou),
    ("distance_box_iou", visionops.distance_box_iou),
    ("complete_box_iou", visionops.complete_box_iou),
]
LOSSES = [
    ("generalized_box_iou_loss", visionops.generalized_box_iou_loss),
    ("distance_box_iou_loss", visionops.distance_box_iou_loss),
    ("complete_box_iou_loss", visionops.complete_box_iou_loss),
]


def raises(exc, message):
    return pytest.raises(exc, match="^" + re.escape(message))


@pytest.mark.parametrize("name,fn", PAIRWISE)
def test_pairwise_shapes(name, fn, error_device):
    d = error_device
    with raises(RuntimeError, f"visionops.{name}: boxes1 must have shape [..., N, 4], got [10, 5]"):
        fn(boxes(10, 5, device=d), boxes(3, 4, device=d))
    with raises(RuntimeError, f"visionops.{name}: boxes2 must have shape [..., M, 4], got [4]"):
        fn(boxes(10, 4, device=d), boxes(4, device=d))
    with raises(RuntimeError, f"visionops.{name}: boxes1 and boxes2 must have the same dtype, got Float and Double"):
        fn(boxes(2, 4, device=d), boxes(3, 4, dtype=torch.float64, device=d))
    with raises(RuntimeError, f"visionops.{name}: boxes1 must be a floating point or integer tensor, got Bool"):
        fn(boxes(2, 4, dtype=torch.bool, device=d), boxes(3, 4, dtype=torch.bool, device=d))
    with raises(
        RuntimeError,
        f"visionops.{name}: the leading (batch) dimensions of boxes1 and boxes2 must broadcast, got [2, 3, 4] and "
        "[5, 1, 4]",
    ):
        fn(boxes(2, 3, 4, device=d), boxes(5, 1, 4, device=d))


def test_box_iou_formats(error_device):
    d = error_device
    with raises(ValueError, "visionops.box_iou: fmt must be one of 'xyxy', 'xywh', 'cxcywh', got 'xyz'"):
        visionops.box_iou(boxes(2, 4, device=d), boxes(2, 4, device=d), fmt="xyz")
    with raises(NotImplementedError, "visionops.box_iou: rotated box format 'cxcywhr' for fmt is not supported"):
        visionops.box_iou(boxes(2, 5, device=d), boxes(2, 5, device=d), fmt="cxcywhr")


def test_area_and_convert(error_device):
    d = error_device
    with raises(RuntimeError, "visionops.box_area: boxes must have shape [..., 4], got [3, 2]"):
        visionops.box_area(boxes(3, 2, device=d))
    with raises(RuntimeError, "visionops.box_area: boxes must have shape [..., 4], got []"):
        visionops.box_area(boxes(device=d))
    with raises(ValueError, "visionops.box_area: fmt must be one of 'xyxy', 'xywh', 'cxcywh', got 'yxyx'"):
        visionops.box_area(boxes(3, 4, device=d), fmt="yxyx")
    with raises(ValueError, "visionops.box_convert: in_fmt must be one of 'xyxy', 'xywh', 'cxcywh', got 'bad'"):
        visionops.box_convert(boxes(3, 4, device=d), "bad", "xyxy")
    with raises(ValueError, "visionops.box_convert: out_fmt must be one of 'xyxy', 'xywh', 'cxcywh', got 'bad'"):
        visionops.box_convert(boxes(3, 4, device=d), "xyxy", "bad")
    with raises(RuntimeError, "visionops.box_convert: boxes must have shape [..., 4], got [3, 8]"):
        visionops.box_convert(boxes(3, 8, device=d), "xyxy", "xywh")


@pytest.mark.parametrize("name,fn", LOSSES)
def test_losses(name, fn, error_device):
    d = error_device
    with raises(ValueError, f"visionops.{name}: reduction must be one of 'none', 'mean', 'sum', got 'avg'"):
        fn(boxes(3, 4, device=d), boxes(3, 4, device=d), reduction="avg")
    with raises(RuntimeError, f"visionops.{name}: boxes1 must have shape [..., 4], got [3, 3]"):
        fn(boxes(3, 3, device=d), boxes(3, 4, device=d))
    with raises(RuntimeError, f"visionops.{name}: boxes1 and boxes2 must have the same shape, got [3, 4] and [2, 4]"):
        fn(boxes(3, 4, device=d), boxes(2, 4, device=d))
    with raises(RuntimeError, f"visionops.{name}: boxes1 and boxes2 must have the same dtype, got Half and Float"):
        fn(boxes(3, 4, dtype=torch.float16, device=d), boxes(3, 4, device=d))


def test_mismatched_devices():
    # CPU against meta: the dispatcher picks one kernel, which must refuse.
    with pytest.raises(RuntimeError, match="must be on the same device, got meta and cpu|got cpu and meta"):
        visionops.box_iou(boxes(2, 4, device="meta"), boxes(2, 4))
    if _NO_CUDA is None:
        with raises(RuntimeError, "visionops.box_iou: boxes1 and boxes2 must be on the same device, got cpu and "):
            visionops.box_iou(boxes(2, 4), boxes(2, 4, device="cuda"))


@pytest.fixture(params=ERROR_DEVICES)
def error_device(request) -> str:
    return request.param


def test_nms(error_device):
    d = error_device
    scores = torch.zeros(10, device=d)
    with raises(RuntimeError, "visionops.nms: boxes must have shape [N, 4], got [10, 5]"):
        visionops.nms(boxes(10, 5, device=d), scores, 0.5)
    with raises(RuntimeError, "visionops.nms: scores must have shape [10] (one per box), got [9]"):
        visionops.nms(boxes(10, 4, device=d), torch.zeros(9, device=d), 0.5)
    with raises(RuntimeError, "visionops.nms: scores must have the same dtype as boxes, got Double and Float"):
        visionops.nms(boxes(10, 4, device=d), torch.zeros(10, dtype=torch.float64, device=d), 0.5)
    with raises(RuntimeError, "visionops.nms: boxes must be a floating point tensor, got Long"):
        visionops.nms(boxes(10, 4, dtype=torch.int64, device=d), torch.zeros(10, dtype=torch.int64, device=d), 0.5)
    with raises(ValueError, "visionops.nms: max_output must be >= 0, got -1"):
        visionops.nms(boxes(10, 4, device=d), scores, 0.5, max_output=-1)
    with raises(RuntimeError, "visionops.batched_nms: idxs must have shape [10] (one per box), got [10, 1]"):
        visionops.batched_nms(boxes(10, 4, device=d), scores, torch.zeros(10, 1, dtype=torch.int64, device=d), 0.5)
    with raises(RuntimeError, "visionops.batched_nms: idxs must be an integer tensor, got Float"):
        visionops.batched_nms(boxes(10, 4, device=d), scores, torch.zeros(10, device=d), 0.5)


def test_padded_nms(error_device):
    d = error_device
    b, s = boxes(2, 10, 4, device=d), torch.zeros(2, 10, device=d)
    with raises(RuntimeError, "visionops.padded_nms: boxes must have shape [B, N, 4], got [10, 4]"):
        visionops.padded_nms(boxes(10, 4, device=d), s, 0.5, 5)
    with raises(RuntimeError, "visionops.padded_nms: scores must have shape [2, 10] (one per box), got [2, 9]"):
        visionops.padded_nms(b, torch.zeros(2, 9, device=d), 0.5, 5)
    with raises(RuntimeError, "visionops.padded_nms: idxs must be an integer tensor, got Float"):
        visionops.padded_nms(b, s, 0.5, 5, idxs=torch.zeros(2, 10, device=d))
    with raises(ValueError, "visionops.padded_nms: max_output must be >= 0, got -3"):
        visionops.padded_nms(b, s, 0.5, -3)


def test_roi_ops(error_device):
    d = error_device
    x, rois = torch.zeros(2, 3, 8, 8, device=d), torch.zeros(4, 5, device=d)
    for name in ("roi_align", "roi_pool"):
        op = getattr(torch.ops.visionops, name)
        extra = (2, True) if name == "roi_align" else ()
        with raises(RuntimeError, f"visionops.{name}: input must be a 4-D tensor [N, C, H, W], got [3, 8, 8]"):
            op(torch.zeros(3, 8, 8, device=d), rois, 1.0, 2, 2, *extra)
        with raises(RuntimeError, f"visionops.{name}: rois must have shape [K, 5], got [4, 4]"):
            op(x, torch.zeros(4, 4, device=d), 1.0, 2, 2, *extra)
        with raises(RuntimeError, f"visionops.{name}: input and rois must have the same dtype, got Float and Double"):
            op(x, rois.double(), 1.0, 2, 2, *extra)
        with raises(RuntimeError, f"visionops.{name}: input must be a floating point tensor, got Long"):
            op(x.long(), rois.long(), 1.0, 2, 2, *extra)
        with raises(ValueError, f"visionops.{name}: output_size must not be negative, got (-1, 2)"):
            op(x, rois, 1.0, -1, 2, *extra)
    # The Python API raises torchvision's AssertionError for the wrong RoI shape.
    with raises(AssertionError, "visionops.roi_align: boxes must have shape [K, 5]"):
        visionops.roi_align(x, torch.zeros(4, 4, device=d), 2)
    with raises(AssertionError, "visionops.roi_pool: each tensor in a list of boxes must have shape [L, 4]"):
        visionops.roi_pool(x, [torch.zeros(4, 5, device=d)], 2)
    feats = [x, torch.zeros(2, 3, 4, 4, device=d)]
    with raises(RuntimeError, "visionops.multi_scale_roi_align: rois must have shape [K, 5], got [4, 4]"):
        torch.ops.visionops.multi_scale_roi_align(feats, torch.zeros(4, 4, device=d), [0.5, 0.25], 2, 2, 2)
    with raises(RuntimeError, "visionops.multi_scale_roi_align: features must be a 4-D tensor [N, C, H, W], got [3]"):
        torch.ops.visionops.multi_scale_roi_align([torch.zeros(3, device=d)], rois, [0.5], 2, 2, 2)


def test_matching_ops(error_device):
    d = error_device
    lsa = torch.ops.visionops.linear_sum_assignment
    with raises(ValueError, "visionops.linear_sum_assignment: cost must have shape [B, R, C], got [3, 4]"):
        lsa(torch.zeros(3, 4, device=d))
    with raises(ValueError, "visionops.linear_sum_assignment: row_counts must have shape [B] = [2], got [3]"):
        lsa(torch.zeros(2, 3, 4, device=d), torch.zeros(3, dtype=torch.long, device=d))
    with raises(RuntimeError, "visionops.linear_sum_assignment: col_counts must be an int64 or int32 tensor, got Float"):
        lsa(torch.zeros(2, 3, 4, device=d), None, torch.zeros(2, device=d))
    cost = torch.ops.visionops.detr_matching_cost
    logits, pred = torch.zeros(2, 5, 4, device=d), torch.zeros(2, 5, 4, device=d)
    labels = torch.zeros(3, dtype=torch.long, device=d)
    with raises(RuntimeError, "visionops.detr_matching_cost: pred_boxes must have shape [B, Q, 4] = [2, 5, 4], got "
                              "[2, 4, 4]"):
        cost(logits, pred[:, :4], labels, torch.zeros(3, 4, device=d), [1, 2])
    with raises(RuntimeError, "visionops.detr_matching_cost: target_boxes must have shape [T, 4], got [3, 3]"):
        cost(logits, pred, labels, torch.zeros(3, 3, device=d), [1, 2])
    with raises(RuntimeError, "visionops.detr_matching_cost: target_counts must have one count per image (2), got 3"):
        cost(logits, pred, labels, torch.zeros(3, 4, device=d), [1, 1, 1])
