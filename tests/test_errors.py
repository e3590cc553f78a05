"""Bad input: a clear error naming the op, the argument and what was expected,
of torchvision's exception type, with the same message from the CPU, CUDA
and fake (meta) kernels."""

from __future__ import annotations

import re

import pytest
import torch

import visionops

from .conftest import _NO_CUDA, requires_cuda

ERROR_DEVICES = ["cpu", "meta", pytest.param("cuda", marks=requires_cuda)]


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
    with raises(ValueError, "visionops.box_iou: Unsupported format 'xyz' for fmt: must be one of "
                            "'xyxy', 'xywh', 'cxcywh'"):
        visionops.box_iou(boxes(2, 4, device=d), boxes(2, 4, device=d), fmt="xyz")
    with raises(NotImplementedError, "visionops.box_iou: rotated box format 'cxcywhr' for fmt is not supported"):
        visionops.box_iou(boxes(2, 5, device=d), boxes(2, 5, device=d), fmt="cxcywhr")


def test_area_and_convert(error_device):
    d = error_device
    with raises(RuntimeError, "visionops.box_area: boxes must have shape [..., 4], got [3, 2]"):
        visionops.box_area(boxes(3, 2, device=d))
    with raises(RuntimeError, "visionops.box_area: boxes must have shape [..., 4], got []"):
        visionops.box_area(boxes(device=d))
    with raises(ValueError, "visionops.box_area: Unsupported format 'yxyx' for fmt: must be one of "
                            "'xyxy', 'xywh', 'cxcywh'"):
        visionops.box_area(boxes(3, 4, device=d), fmt="yxyx")
    with raises(ValueError, "visionops.box_convert: Unsupported format 'bad' for in_fmt: must be one of "
                            "'xyxy', 'xywh', 'cxcywh'"):
        visionops.box_convert(boxes(3, 4, device=d), "bad", "xyxy")
    with raises(ValueError, "visionops.box_convert: Unsupported format 'bad' for out_fmt: must be one of "
                            "'xyxy', 'xywh', 'cxcywh'"):
        visionops.box_convert(boxes(3, 4, device=d), "xyxy", "bad")
    with raises(RuntimeError, "visionops.box_convert: boxes must have shape [..., 4], got [3, 8]"):
        visionops.box_convert(boxes(3, 8, device=d), "xyxy", "xywh")


@pytest.mark.parametrize("name,fn", LOSSES)
def test_losses(name, fn, error_device):
    d = error_device
    with raises(ValueError, f"visionops.{name}: Invalid reduction 'avg': must be one of 'none', 'mean', 'sum'"):
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
    with raises(RuntimeError, "visionops.detr_matching_cost: target_labels must be an int64 or int32 tensor, got Float"):
        cost(logits, pred, labels.float(), torch.zeros(3, 4, device=d), [1, 2])
    with raises(RuntimeError, "visionops.detr_matching_cost: target_labels must have shape [T] = [3], got [2]"):
        cost(logits, pred, labels[:2], torch.zeros(3, 4, device=d), [1, 2])
    with raises(RuntimeError, "visionops.detr_matching_cost: logits and pred_boxes must have the same dtype, got Float "
                              "and Double"):
        cost(logits, pred.double(), labels, torch.zeros(3, 4, device=d), [1, 2])
    with raises(RuntimeError, "visionops.detr_matching_cost: target_counts must be non-negative, got -1"):
        cost(logits, pred, labels, torch.zeros(3, 4, device=d), [4, -1])
    with raises(RuntimeError, "visionops.detr_matching_cost: target_counts must sum to the number of targets (3), "
                              "got 2"):
        cost(logits, pred, labels, torch.zeros(3, 4, device=d), [1, 1])


# ----------------------------------------------------------------- losses, coding, masks


def test_dice_loss(error_device):
    d = error_device
    x = torch.zeros(2, 3, 4, 4, device=d)
    classes = torch.zeros(2, 4, 4, dtype=torch.long, device=d)
    with raises(ValueError, "visionops.dice_loss: mode must be one of 'binary', 'multiclass', 'multilabel', got 'soft'"):
        visionops.dice_loss(x, classes, mode="soft")
    with raises(ValueError, "visionops.dice_loss: Invalid reduction 'max': must be one of 'none', 'mean', 'sum'"):
        visionops.dice_loss(x, classes, mode="multiclass", reduction="max")
    with raises(RuntimeError, "visionops.dice_loss: inputs must be a floating point tensor, got Long"):
        visionops.dice_loss(x.long(), classes, mode="multiclass")
    with raises(RuntimeError, "visionops.dice_loss: inputs must have shape [B, C, ...], got [3]"):
        visionops.dice_loss(torch.zeros(3, device=d), classes, mode="multiclass")
    with raises(ValueError, "visionops.dice_loss: targets must be a class map of shape [B, ...] = [2, 4, 4] for inputs "
                            "[2, 3, 4, 4], got [2, 4, 5]"):
        visionops.dice_loss(x, torch.zeros(2, 4, 5, dtype=torch.long, device=d), mode="multiclass")
    with raises(RuntimeError, "visionops.dice_loss: multiclass targets must be an integer class map, got Float"):
        visionops.dice_loss(x, classes.float(), mode="multiclass")
    with raises(ValueError, "visionops.dice_loss: binary inputs must have one channel, [B, 1, ...], got [2, 3, 4, 4]"):
        visionops.dice_loss(x, x, mode="binary")
    with raises(ValueError, "visionops.dice_loss: multilabel targets must have the shape of inputs, [2, 3, 4, 4], got "
                            "[2, 3, 4]"):
        visionops.dice_loss(x, x[..., 0], mode="multilabel")
    with raises(ValueError, "visionops.dice_loss: weight must have one value per class, [3], got [2]"):
        visionops.dice_loss(x, classes, mode="multiclass", weight=torch.ones(2, device=d))


def test_focal_loss(error_device):
    d = error_device
    x = torch.zeros(4, 5, device=d)
    with raises(ValueError, "visionops.sigmoid_focal_loss: targets must have the shape of inputs, [4, 5], got [4, 4]"):
        visionops.sigmoid_focal_loss(x, torch.zeros(4, 4, device=d))
    with raises(RuntimeError, "visionops.sigmoid_focal_loss: inputs must be a floating point tensor, got Long"):
        visionops.sigmoid_focal_loss(x.long(), x)
    with raises(RuntimeError, "visionops.sigmoid_focal_loss: targets must be a floating point tensor, got Long"):
        visionops.sigmoid_focal_loss(x, x.long())
    with raises(ValueError, "visionops.sigmoid_focal_loss: Invalid reduction 'all': must be one of 'none', 'mean', 'sum'"):
        visionops.sigmoid_focal_loss(x, x, reduction="all")
    with raises(ValueError, "visionops.sigmoid_focal_loss: Invalid alpha value: 1.5; alpha must be in [0, 1], or -1 "
                            "to turn the class weighting off"):
        visionops.sigmoid_focal_loss(x, x, alpha=1.5)


def test_box_coding(error_device):
    d = error_device
    codes, anchors = torch.zeros(3, 8, device=d), torch.zeros(3, 4, device=d)
    with raises(RuntimeError, "visionops.decode_boxes: rel_codes must have shape [N, 4 * C] (a multiple of 4 per box), "
                              "got [3, 6]"):
        visionops.decode_boxes(torch.zeros(3, 6, device=d), anchors, (1.0,) * 4)
    with raises(RuntimeError, "visionops.decode_boxes: boxes must have shape [3, 4] (one per row of rel_codes), got "
                              "[2, 4]"):
        visionops.decode_boxes(codes, anchors[:2], (1.0,) * 4)
    with raises(ValueError, "visionops.decode_boxes: weights must hold 4 values (x, y, w, h), got 3"):
        visionops.decode_boxes(codes, anchors, (1.0,) * 3)
    with raises(RuntimeError, "visionops.encode_boxes: proposals must have shape [3, 4] (one per reference box), got "
                              "[2, 4]"):
        visionops.encode_boxes(anchors, anchors[:2], (1.0,) * 4)
    with raises(RuntimeError, "visionops.encode_boxes: reference_boxes and proposals must have the same dtype, got "
                              "Float and Double"):
        visionops.encode_boxes(anchors, anchors.double(), (1.0,) * 4)


def test_grid_anchors(error_device):
    d = error_device
    op = torch.ops.visionops.grid_anchors
    cells = torch.zeros(6, 4, device=d)
    with raises(ValueError, "visionops.grid_anchors: anchors_per_level, grid_heights, grid_widths, stride_heights and "
                            "stride_widths must have one entry per feature map, got 2, 1, 2, 2 and 2"):
        op(cells, [3, 3], [4], [4, 2], [8, 16], [8, 16])
    with raises(RuntimeError, "visionops.grid_anchors: cell_anchors must have shape [A, 4], got [6, 2]"):
        op(torch.zeros(6, 2, device=d), [3, 3], [4, 2], [4, 2], [8, 16], [8, 16])
    with raises(RuntimeError, "visionops.grid_anchors: cell_anchors must be a floating point tensor, got Long"):
        op(cells.long(), [3, 3], [4, 2], [4, 2], [8, 16], [8, 16])
    with raises(ValueError, "visionops.grid_anchors: anchor counts and grid sizes must not be negative, at level 1"):
        op(cells, [3, 3], [4, -2], [4, 2], [8, 16], [8, 16])
    with raises(ValueError, "visionops.grid_anchors: anchors_per_level sums to 5 but cell_anchors has 6 rows"):
        op(cells, [3, 2], [4, 2], [4, 2], [8, 16], [8, 16])


def test_yolo(error_device):
    d = error_device
    heads = [torch.zeros(2, 3 * 7, 4, 4, device=d), torch.zeros(2, 3 * 7, 2, 2, device=d)]
    anchors = torch.zeros(2, 3, 2, device=d)
    decode = torch.ops.visionops.yolo_decode
    with raises(ValueError, "visionops.yolo_decode: version must be 'v3' or 'v5', got 'v8'"):
        decode(heads, anchors, [8, 16], "v8")
    with raises(ValueError, "visionops.yolo_decode: heads must hold at least one scale"):
        decode([], anchors, [], "v5")
    with raises(RuntimeError, "visionops.yolo_decode: anchors must have shape [2, A, 2] (pixels, per scale), got "
                              "[1, 3, 2]"):
        decode(heads, anchors[:1], [8, 16], "v5")
    with raises(ValueError, "visionops.yolo_decode: strides must have one value per scale, got 1 for 2 scales"):
        decode(heads, anchors, [8], "v5")
    with raises(ValueError, "visionops.yolo_decode: max_detections must be >= 0, got -1"):
        decode(heads, anchors, [8, 16], "v5", 0.25, -1)
    with raises(ValueError, "visionops.yolo_decode: heads must have A * (5 + C) channels with C >= 1 for 3 anchors, "
                            "got 15"):
        decode([heads[0][:, :15]], anchors[:1], [8], "v5")
    with raises(RuntimeError, "visionops.yolo_decode: heads[0] and every head must have the same dtype, got Float and "
                              "Double"):
        decode([heads[0], heads[1].double()], anchors, [8, 16], "v5")
    with raises(ValueError, "visionops.yolo_decode: every head must have the batch size and classes of heads[0], got "
                            "[1, 21, 2, 2]"):
        decode([heads[0], heads[1][:1]], anchors, [8, 16], "v5")
    with raises(ValueError, "visionops.yolo_decode: every head must have the batch size and classes of heads[0], got "
                            "[2, 24, 2, 2]"):
        decode([heads[0], torch.zeros(2, 24, 2, 2, device=d)], anchors, [8, 16], "v5")
    boxes = torch.ops.visionops.yolo_boxes
    with raises(RuntimeError, "visionops.yolo_boxes: anchors must have shape [A, 2] (pixels), got [3, 3]"):
        boxes(heads[0], torch.zeros(3, 3, device=d), 8, "v5")
    with raises(RuntimeError, "visionops.yolo_boxes: head must have shape [B, A * (5 + C), H, W], got [21, 4, 4]"):
        boxes(heads[0][0], anchors[0], 8, "v5")


def test_masks_ops(error_device):
    d = error_device
    with raises(RuntimeError, "visionops.masks_to_boxes: masks must have shape [N, H, W], got [4, 4]"):
        visionops.masks_to_boxes(torch.zeros(4, 4, device=d))
    with raises(RuntimeError, "visionops.pack_masks: masks must have shape [N, H, W], got [4, 4]"):
        torch.ops.visionops.pack_masks(torch.zeros(4, 4, device=d))


def test_paste_masks(error_device):
    d = error_device
    masks, boxes = torch.rand(3, 1, 28, 28, device=d), torch.rand(3, 4, device=d)
    paste = visionops.paste_masks_in_image
    with raises(RuntimeError, "visionops.paste_masks: masks must have shape [N, 1, M, M], got [3, 2, 28, 28]"):
        paste(torch.rand(3, 2, 28, 28, device=d), boxes, (10, 10))
    with raises(RuntimeError, "visionops.paste_masks: boxes must have shape [3, 4] (one box per mask), got [2, 4]"):
        paste(masks, boxes[:2], (10, 10))
    with raises(RuntimeError, "visionops.paste_masks: masks must be a floating point tensor, got Long"):
        paste(masks.long(), boxes, (10, 10))
    with raises(RuntimeError, "visionops.paste_masks: boxes must be a floating point tensor, got Int"):
        paste(masks, boxes.int(), (10, 10))
    with raises(ValueError, "visionops.paste_masks: the image size must not be negative, got (-1, 10)"):
        paste(masks, boxes, (-1, 10))
    with raises(ValueError, "visionops.paste_masks: padding must be in [0, 1048576], got -1"):
        paste(masks, boxes, (10, 10), padding=-1)
    with raises(ValueError, "visionops.paste_masks: masks must not be empty, got [3, 1, 0, 28]"):
        paste(masks[:, :, :0], boxes, (10, 10))


def test_coco_ops():
    # CPU only: the COCO decoders and the evaluation core.
    with raises(ValueError, "visionops.coco_rle_decode: heights and widths must have one entry per object (1), got 2 "
                            "and 1"):
        torch.ops.visionops.coco_rle_decode(["0"], [2, 2], [2])
    with raises(ValueError, "visionops.coco_runs_decode: runs must have shape [5] (the sum of run_counts), got [4]"):
        torch.ops.visionops.coco_runs_decode(torch.zeros(4, dtype=torch.long), [2, 3], [2, 2], [2, 2])
    with raises(ValueError, "visionops.coco_runs_decode: heights and widths must be non-negative, got -2 x 2"):
        torch.ops.visionops.coco_runs_decode(torch.zeros(2, dtype=torch.long), [2], [-2], [2])
    with raises(ValueError, "visionops.coco_polygons_decode: polygons_per_object must sum to the number of polygons "
                            "(2), got 1"):
        torch.ops.visionops.coco_polygons_decode(torch.zeros(12), [3, 3], [1], [4], [4])
    with raises(ValueError, "visionops.coco_polygons_decode: xy must have shape [12] (x, y of every vertex), got [10]"):
        torch.ops.visionops.coco_polygons_decode(torch.zeros(10), [3, 3], [2], [4], [4])
    f, i = torch.zeros(3), torch.zeros(3, dtype=torch.long)
    counts = torch.tensor([3])
    args = [torch.zeros(3, 4), f, i, f, counts, torch.zeros(3, 4), i, i, f, counts, torch.tensor([0]),
            torch.tensor([0.5]), torch.tensor([0.0, 1.0]), torch.tensor([[0.0, 1e10]]), [100]]
    evaluate = torch.ops.visionops.coco_evaluate
    bad = list(args)
    bad[0] = torch.zeros(2, 4)
    with raises(RuntimeError, "visionops.coco_evaluate: det_boxes must have shape [3, 4], got [2, 4]"):
        evaluate(*bad)
    bad = list(args)
    bad[14] = []
    with raises(ValueError, "visionops.coco_evaluate: max_dets must not be empty"):
        evaluate(*bad)
    bad = list(args)
    bad[2] = torch.zeros(2, dtype=torch.long)
    with raises(RuntimeError, "visionops.coco_evaluate: det_labels must have shape [3], got [2]"):
        evaluate(*bad)
    with raises(RuntimeError, "visionops.coco_evaluate: det_masks, gt_masks and mask_words go together"):
        evaluate(*args, torch.zeros(3, 1, dtype=torch.long))
    # The fake kernel runs the same checks.
    mode = torch._subclasses.fake_tensor.FakeTensorMode()
    bad = list(args)
    bad[2] = torch.zeros(2, dtype=torch.long)
    fake = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in bad]
    with mode, raises(RuntimeError, "visionops.coco_evaluate: det_labels must have shape [3], got [2]"):
        evaluate(*fake)


# ----------------------------------------------------------------- backward ops called directly


def test_backward_ops_check_grad(error_device):
    # The private backward ops are reachable as torch.ops.visionops._*: a wrong
    # gradient is an error naming the op, never an out-of-bounds read.
    d = error_device
    ops = torch.ops.visionops
    b = boxes(3, 4, device=d)
    with raises(RuntimeError, "visionops._pairwise_box_iou_backward: grad must have shape [3, 3], got [3, 2]"):
        ops._pairwise_box_iou_backward(torch.zeros(3, 2, device=d), b, b, "iou", "xyxy", 1e-7)
    with raises(RuntimeError, "visionops._box_iou_loss_backward: grad must have shape [3], got [2]"):
        ops._box_iou_loss_backward(torch.zeros(2, device=d), b, b, "giou", "none", 1e-7)
    with raises(RuntimeError, "visionops._box_iou_loss_backward: grad must be a scalar for a reduced loss, got [3]"):
        ops._box_iou_loss_backward(torch.zeros(3, device=d), b, b, "giou", "mean", 1e-7)
    with raises(RuntimeError, "visionops._decode_boxes_backward: grad must match rel_codes, got [3, 4]"):
        ops._decode_boxes_backward(torch.zeros(3, 4, device=d), torch.zeros(3, 8, device=d), b, [1.0] * 4, 4.0)
    x = torch.zeros(2, 5, device=d)
    with raises(RuntimeError, "visionops._sigmoid_focal_loss_backward: grad must have the shape of inputs, [2, 5], got "
                              "[5]"):
        ops._sigmoid_focal_loss_backward(torch.zeros(5, device=d), x, x, 0.25, 2.0, "none")
    with raises(RuntimeError, "visionops._sigmoid_focal_loss_backward: grad must be a scalar for a reduced loss, got "
                              "[1]"):
        ops._sigmoid_focal_loss_backward(torch.zeros(1, device=d), x, x, 0.25, 2.0, "sum")
    seg = torch.zeros(2, 3, 4, 4, device=d)
    classes = torch.zeros(2, 4, 4, dtype=torch.long, device=d)
    stats = torch.zeros(3, 3, dtype=torch.float64, device=d)
    dice_args = ("multiclass", True, 0.0, 1e-7, False, None, None, False)
    with raises(RuntimeError, "visionops._dice_loss_backward: stats must be a float64 tensor of shape [3, 3], got "
                              "Double [3, 2]"):
        ops._dice_loss_backward(torch.zeros((), device=d), seg, classes, stats[:, :2], *dice_args, "mean")
    with raises(RuntimeError, "visionops._dice_loss_backward: grad must have shape [3] (one loss per class), got [2]"):
        ops._dice_loss_backward(torch.zeros(2, device=d), seg, classes, stats, *dice_args, "none")
    head, anchors = torch.zeros(2, 3 * 7, 4, 4, device=d), torch.zeros(3, 2, device=d)
    with raises(RuntimeError, "visionops._yolo_boxes_backward: grad must be a Float tensor of shape [2, 3, 4, 4, 4], "
                              "got Float [2, 3, 4, 4]"):
        ops._yolo_boxes_backward(torch.zeros(2, 3, 4, 4, device=d), head, anchors, 8, "v5")
    rois = torch.zeros(4, 5, device=d)
    with raises(RuntimeError, "visionops._roi_align_backward: grad must have shape [4, 3, 2, 2], got [4, 3, 2, 3]"):
        ops._roi_align_backward(torch.zeros(4, 3, 2, 3, device=d), rois, 1.0, 2, 2, 2, 3, 8, 8, 2, True, False)
    grad = torch.zeros(4, 3, 2, 2, device=d)
    with raises(RuntimeError, "visionops._roi_pool_backward: argmax must be an int32 tensor of grad's shape "
                              "[4, 3, 2, 2], got Long [4, 3, 2, 2]"):
        ops._roi_pool_backward(grad, rois, grad.long(), 1.0, 2, 2, 2, 3, 8, 8, False)
    with raises(RuntimeError, "visionops._multi_scale_roi_align_backward: spatial_scales, heights, widths and "
                              "channels_last must have one entry per level"):
        ops._multi_scale_roi_align_backward(grad, rois, [0.5, 0.25], [8], [8, 4], 2, 3, 2, 224, 4, 1e-6,
                                            [False, False])


def test_backward_ops_check_devices():
    # grad (or argmax, or stats) on another device than the op's inputs.
    ops = torch.ops.visionops
    meta = "meta"
    b = boxes(3, 4)
    on_other = "must be on cpu, got meta|must be on meta, got cpu"
    with pytest.raises(RuntimeError, match=f"visionops._pairwise_box_iou_backward: grad ({on_other})"):
        ops._pairwise_box_iou_backward(torch.zeros(3, 3, device=meta), b, b, "iou", "xyxy", 1e-7)
    with pytest.raises(RuntimeError, match=f"visionops._box_iou_loss_backward: grad ({on_other})"):
        ops._box_iou_loss_backward(torch.zeros(3, device=meta), b, b, "giou", "none", 1e-7)
    with pytest.raises(RuntimeError, match=f"visionops._decode_boxes_backward: grad ({on_other})"):
        ops._decode_boxes_backward(torch.zeros(3, 8, device=meta), torch.zeros(3, 8), b, [1.0] * 4, 4.0)
    x = torch.zeros(2, 5)
    with pytest.raises(RuntimeError, match=f"visionops._sigmoid_focal_loss_backward: grad ({on_other})"):
        ops._sigmoid_focal_loss_backward(torch.zeros(2, 5, device=meta), x, x, 0.25, 2.0, "none")
    head, anchors = torch.zeros(2, 3 * 7, 4, 4), torch.zeros(3, 2)
    with pytest.raises(RuntimeError, match=f"visionops._yolo_boxes_backward: grad ({on_other})"):
        ops._yolo_boxes_backward(torch.zeros(2, 3, 4, 4, 4, device=meta), head, anchors, 8, "v5")
    rois, grad = torch.zeros(4, 5), torch.zeros(4, 3, 2, 2)
    with pytest.raises(RuntimeError, match=f"visionops._roi_pool_backward: argmax ({on_other})"):
        ops._roi_pool_backward(grad, rois, torch.zeros(4, 3, 2, 2, dtype=torch.int32, device=meta), 1.0, 2, 2, 2, 3,
                               8, 8, False)
    seg, classes = torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(RuntimeError, match=f"visionops._dice_loss_backward: stats ({on_other})"):
        ops._dice_loss_backward(torch.zeros(()), seg, classes, torch.zeros(3, 3, dtype=torch.float64, device=meta),
                                "multiclass", True, 0.0, 1e-7, False, None, None, False, "mean")
    cost = torch.zeros(2, 3, 4)
    with pytest.raises(RuntimeError, match="visionops.linear_sum_assignment: row_counts and cost must be on the same "
                                           "device, got (meta and cpu|cpu and meta)"):
        ops.linear_sum_assignment(cost, torch.zeros(2, dtype=torch.long, device=meta))


def test_arguments_that_size_the_work_are_bounded(error_device):
    # Values that would run for hours (roi_align with sampling_ratio=2**20
    # samples 2**40 points per bin) or ask for terabytes raise ValueError at
    # once, naming the bound, on every device; the bounds themselves pass.
    d = error_device
    x = torch.zeros(1, 2, 8, 8, device=d)
    rois = torch.tensor([[0.0, 1, 1, 6, 6]], device=d)
    sr = "sampling points per bin side; 0 or less picks about one per pixel"
    with raises(ValueError, f"visionops.roi_align: sampling_ratio must be at most 128 ({sr}), got 1048576"):
        visionops.roi_align(x, rois, 7, 1.0, 2**20)
    with raises(ValueError, "visionops.roi_align: output_size must be at most 1024 (bins per side), got 1025"):
        visionops.roi_align(x, rois, (1025, 1), 1.0, 2)
    with raises(ValueError, "visionops.roi_pool: output_size must be at most 1024 (bins per side), got 4096"):
        visionops.roi_pool(x, rois, (2, 4096), 1.0)
    grad = torch.zeros(1, 2, 7, 7, device=d)
    with raises(ValueError, f"visionops._roi_align_backward: sampling_ratio must be at most 128 ({sr}), got 129"):
        torch.ops.visionops._roi_align_backward(grad, rois, 1.0, 7, 7, 1, 2, 8, 8, 129, False, False)
    with raises(ValueError, f"visionops.multi_scale_roi_align: sampling_ratio must be at most 128 ({sr}), got 200"):
        torch.ops.visionops.multi_scale_roi_align([x], rois, [1.0], 7, 7, 200)
    with raises(ValueError, "visionops.multi_scale_roi_align: output_size must be at most 1024 (bins per side), "
                            "got 2000"):
        torch.ops.visionops.multi_scale_roi_align([x], rois, [1.0], 2000, 7, 2)
    with raises(ValueError, f"visionops._multi_scale_roi_align_backward: sampling_ratio must be at most 128 ({sr}), "
                            "got 1000"):
        torch.ops.visionops._multi_scale_roi_align_backward(grad, rois, [1.0], [8], [8], 1, 2, 1000, 224, 4, 1e-6,
                                                            [False])
    assert visionops.roi_align(x, rois, 2, 1.0, 128).shape == (1, 2, 2, 2)
    assert visionops.roi_pool(x, rois, (1024, 1), 1.0).shape == (1, 2, 1024, 1)
    b = torch.zeros(2, 5, 4, device=d)
    s = torch.zeros(2, 5, device=d)
    with raises(ValueError, "visionops.padded_nms: max_output must be at most 16777216 (the fixed output size per "
                            "image), got 16777217"):
        visionops.padded_nms(b, s, 0.5, 2**24 + 1)
    heads = [torch.zeros(1, 3 * 7, 4, 4, device=d)]
    anchors = torch.ones(1, 3, 2, device=d)
    with raises(ValueError, "visionops.yolo_decode: max_detections must be at most 16777216 (the fixed output size "
                            "per image), got 1099511627776"):
        torch.ops.visionops.yolo_decode(heads, anchors, [8], "v5", 0.25, 2**40)
    cells = torch.zeros(3, 4, device=d)
    grid = torch.ops.visionops.grid_anchors
    with raises(ValueError, "visionops.grid_anchors: a grid side must be at most 1048576 (feature map cells per "
                            "side), got 1048577"):
        grid(cells, [3], [2**20 + 1], [1], [8], [8])
    with raises(ValueError, "visionops.grid_anchors: anchors_per_level must be at most 3 (the rows of cell_anchors), "
                            "got 4"):
        grid(cells, [4, -1], [2, 2], [2, 2], [8, 8], [8, 8])
    with raises(ValueError, "visionops.grid_anchors: a grid's cells must be at most 2147483647 (H * W), got "
                            "1099511627776"):
        grid(cells, [3], [2**20], [2**20], [8], [8])
    with raises(ValueError, "visionops.grid_anchors: the number of anchors must be at most 2147483647 (sum of H * W "
                            "* A over the levels), got 3221225472"):
        grid(cells, [3], [2**15], [2**15], [8], [8])


def test_torchvision_words_that_users_match():
    # Where torchvision's message has words that code matches, ours has them too.
    b = torch.tensor([[0.0, 0, 2, 2]])
    with pytest.raises(ValueError, match="Unsupported format 'bad'"):
        visionops.box_iou(b, b, fmt="bad")
    with pytest.raises(ValueError, match="Unsupported"):
        visionops.box_convert(b, "xyxy", "bad")
    with pytest.raises(ValueError, match="Unsupported"):
        visionops.box_area(b, fmt="bad")
    with pytest.raises(ValueError, match="Invalid"):
        visionops.sigmoid_focal_loss(b, b, reduction="avg")
    with pytest.raises(ValueError, match="Invalid alpha value"):
        visionops.sigmoid_focal_loss(b, b, alpha=2)
    with pytest.raises(ValueError, match="images list should not be empty"):
        visionops.MultiScaleRoIAlign(["a"], 2, 2)({"a": torch.zeros(1, 2, 8, 8)}, [b], [])
    with pytest.raises(AssertionError, match="The boxes tensor shape is not correct as Tensor\\[K, 5\\]"):
        visionops.roi_align(torch.zeros(1, 2, 8, 8), torch.zeros(3, 4), 2)
    with pytest.raises(AssertionError, match="The shape of the tensor in the boxes list is not correct"):
        visionops.roi_pool(torch.zeros(1, 2, 8, 8), [torch.zeros(3, 5)], 2)
