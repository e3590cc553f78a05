"""ONNX export of visionops' ops, as torchvision's export: the dynamo
exporter (``torch.onnx.export(..., dynamo=True)``) writes the standard ONNX
operators for them.

    import visionops.onnx  # registers the translations below with the exporter
    torch.onnx.export(model, args, "model.onnx", dynamo=True)

or, without the import's side effect, pass them explicitly:

    torch.onnx.export(model, args, "model.onnx", dynamo=True,
                      custom_translation_table=visionops.onnx.translation_table())

Needs onnxscript (which the dynamo exporter needs anyway). What each op
becomes:

- ``nms`` -> NonMaxSuppression (``score_threshold`` its score_threshold
  input, ``max_output`` its max_output_boxes_per_class);
- ``batched_nms`` -> NonMaxSuppression on boxes shifted apart per class
  (each class's boxes offset by class * (largest coordinate + 1), as
  torchvision's batched_nms does when traced), so that one pass is exactly
  per-class NMS for boxes with non-negative coordinates;
- ``roi_align`` -> RoiAlign (``aligned`` picks half_pixel, else
  output_half_pixel; sampling_ratio <= 0 is RoiAlign's adaptive 0);
- ``roi_pool`` -> MaxRoiPool. Its argmax output (the backward's bookkeeping)
  is not computed in the graph: it is -1 everywhere;
- ``padded_nms`` -> one NonMaxSuppression over the batch (classes shifted
  into disjoint coordinate ranges), the kept boxes scattered into a mask,
  and TopK of their scores: the fixed [B, max_output] indices (-1 padded) and
  counts;
- ``yolo_decode`` (``'v5'``) -> Sigmoid and the grid arithmetic per scale,
  ReduceMax / ArgMax over the classes, TopK of the scores: the fixed-size
  candidates. With ``padded_nms`` this exports a whole YOLO inference
  (``visionops.models.YOLO.forward_padded``), and onnxruntime gives our
  eager outputs (tests/test_onnx.py).

ONNX's operators differ from ours at the edges: NonMaxSuppression orders
each box's corners (an inverted box is not empty there) and computes IoU
its own way, so scores tied to the last bit or IoUs equal to the threshold
may resolve differently; RoiAlign has no convention for a batch index
outside [0, N). On ordinary inputs onnxruntime gives our eager results
(tests/test_onnx.py: NMS and RoI pooling exactly, RoI Align within 1e-5).

The other ops (the IoU family, box area and conversion, box coding,
anchors, the losses, matching, paste_masks) have no translation yet: a
graph that calls them stops the exporter with a ConversionError naming the
op. Export a model's inference tail through the four ops above, or register
a translation of your own in the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional  # onnxscript reads Optional[...] annotations, not X | None

import torch

__all__ = ["register", "translation_table"]

_INT64_MAX = 0x7FFFFFFFFFFFFFFF


def _build() -> dict[Callable, Callable]:
    import onnx
    from onnxscript import FLOAT, INT64
    from onnxscript.onnx_opset import opset18 as op

    def nms_boxes_scores(boxes, scores):
        # NonMaxSuppression takes boxes [batches, N, 4] and scores [batches, classes, N].
        return op.Unsqueeze(boxes, [0]), op.Unsqueeze(scores, [0, 1])

    def kept_indices(selected):
        # selected: [M, 3] of (batch, class, box); the box column, in selection order (by score).
        return op.Reshape(op.Slice(selected, [2], [3], [1]), [-1])

    def nms_inputs(score_threshold, max_output):
        limit = op.Constant(value_ints=[_INT64_MAX if max_output is None else int(max_output)])
        threshold = op.Constant(value_floats=[-float("inf") if score_threshold is None else float(score_threshold)])
        return limit, threshold

    # Tensors unannotated, attributes with their Python types: how onnxscript
    # tells inputs from attributes.
    def nms(boxes, scores, iou_threshold: float, score_threshold: Optional[float] = None,  # noqa: UP045
            max_output: Optional[int] = None):  # noqa: UP045
        b, s = nms_boxes_scores(op.Cast(boxes, to=FLOAT.dtype), op.Cast(scores, to=FLOAT.dtype))
        limit, threshold = nms_inputs(score_threshold, max_output)
        iou = op.Constant(value_floats=[float(iou_threshold)])
        return kept_indices(op.NonMaxSuppression(b, s, limit, iou, threshold))

    def batched_nms(boxes, scores, idxs, iou_threshold: float, score_threshold: Optional[float] = None,  # noqa: UP045
                    max_output: Optional[int] = None):  # noqa: UP045
        boxes = op.Cast(boxes, to=FLOAT.dtype)
        offset = op.Add(op.ReduceMax(boxes, keepdims=0), op.Constant(value_float=1.0))
        shift = op.Mul(op.Cast(idxs, to=FLOAT.dtype), offset)
        shifted = op.Add(boxes, op.Unsqueeze(shift, [1]))
        b, s = nms_boxes_scores(shifted, op.Cast(scores, to=FLOAT.dtype))
        limit, threshold = nms_inputs(score_threshold, max_output)
        iou = op.Constant(value_floats=[float(iou_threshold)])
        return kept_indices(op.NonMaxSuppression(b, s, limit, iou, threshold))

    def roi_align(input, rois, spatial_scale: float, pooled_height: int, pooled_width: int,
                  sampling_ratio: int, aligned: bool):
        batch = op.Cast(op.Squeeze(op.Slice(rois, [0], [1], [1]), [1]), to=INT64.dtype)
        coords = op.Slice(rois, [1], [5], [1])
        return op.RoiAlign(
            input, coords, batch,
            coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
            mode="avg", output_height=int(pooled_height), output_width=int(pooled_width),
            sampling_ratio=max(int(sampling_ratio), 0), spatial_scale=float(spatial_scale),
        )

    def roi_pool(input, rois, spatial_scale: float, pooled_height: int, pooled_width: int):
        out = op.MaxRoiPool(input, rois, pooled_shape=[int(pooled_height), int(pooled_width)],
                            spatial_scale=float(spatial_scale))
        minus_one = onnx.helper.make_tensor("value", onnx.TensorProto.INT32, [1], [-1])
        return out, op.ConstantOfShape(op.Shape(out), value=minus_one)

    def padded_nms(boxes, scores, iou_threshold: float, max_output: int, idxs=None,
                   score_threshold: Optional[float] = None):  # noqa: UP045
        # One NonMaxSuppression over the batch (boxes [B, N, 4], scores
        # [B, 1, N]); classes kept apart by shifting each class's boxes into
        # its own range, [idx * span, idx * span + span) with span the
        # coordinates' extent + 1 (so negative coordinates are fine too).
        boxes = op.Cast(boxes, to=FLOAT.dtype)
        scores = op.Cast(scores, to=FLOAT.dtype)
        if idxs is not None:
            low = op.ReduceMin(boxes, keepdims=0)
            span = op.Add(op.Sub(op.ReduceMax(boxes, keepdims=0), low), op.Constant(value_float=1.0))
            shift = op.Sub(op.Mul(op.Cast(idxs, to=FLOAT.dtype), span), low)
            boxes = op.Add(boxes, op.Unsqueeze(shift, [2]))
        limit, threshold = nms_inputs(score_threshold, max_output)
        iou = op.Constant(value_floats=[float(iou_threshold)])
        selected = op.NonMaxSuppression(boxes, op.Unsqueeze(scores, [1]), limit, iou, threshold)  # [M, 3]
        # Kept boxes as a [B, N] mask, then each image's best max_output of them
        # by score (TopK lists ties by index, as our sort does), -1 past the count.
        where = op.Concat(op.Slice(selected, [0], [1], [1]), op.Slice(selected, [2], [3], [1]), axis=1)
        kept = op.ScatterND(op.ConstantOfShape(op.Shape(scores), value=onnx.helper.make_tensor(
            "value", onnx.TensorProto.FLOAT, [1], [0.0])), where, op.Expand(op.Constant(value_float=1.0),
                                                                               op.Shape(op.Slice(selected, [0], [1], [1]),
                                                                                        end=1)))
        neg_inf = op.Constant(value_float=float("-inf"))
        ranked = op.Where(op.Greater(kept, op.Constant(value_float=0.5)), scores, neg_inf)
        n = op.Shape(scores, start=1, end=2)
        k_wanted = op.Constant(value_ints=[int(max_output)])
        k = op.Min(n, k_wanted)
        values, index = op.TopK(ranked, k, axis=1, largest=1, sorted=1)
        valid = op.Not(op.Equal(values, neg_inf))
        index = op.Where(valid, index, op.Constant(value_int=-1))
        pad = op.Concat(op.Constant(value_ints=[0, 0, 0]), op.Sub(k_wanted, k), axis=0)
        index = op.Pad(index, pad, op.Constant(value_int=-1))
        counts = op.ReduceSum(op.Cast(valid, to=INT64.dtype), [1], keepdims=0)
        return index, counts

    def yolo_decode(heads, anchors, strides: list[int], version: str = "v5", score_threshold: float = 0.25,
                    max_detections: int = 300):
        if version != "v5":
            raise NotImplementedError("visionops.onnx: yolo_decode translates version 'v5' only")
        anchors = op.Cast(anchors, to=FLOAT.dtype)
        all_boxes, all_scores, all_labels = [], [], []
        for level, (head, stride) in enumerate(zip(heads, strides)):
            head = op.Cast(head, to=FLOAT.dtype)
            shape = op.Shape(head)  # [B, A * (5 + C), H, W]
            b, h, w = op.Slice(shape, [0], [1]), op.Slice(shape, [2], [3]), op.Slice(shape, [3], [4])
            anc = op.Gather(anchors, op.Constant(value_int=level), axis=0)  # [A, 2]
            a = op.Shape(anc, start=0, end=1)
            y = op.Reshape(head, op.Concat(b, a, op.Constant(value_ints=[-1]), h, w, axis=0))
            raw = op.Transpose(y, perm=[0, 1, 3, 4, 2])  # [B, A, H, W, 5 + C]
            y = op.Sigmoid(op.Slice(raw, [0], [5], [4]))
            gx = op.Cast(op.Range(op.Constant(value_int=0), op.Squeeze(w, [0]), op.Constant(value_int=1)),
                         to=FLOAT.dtype)
            gy = op.Cast(op.Range(op.Constant(value_int=0), op.Squeeze(h, [0]), op.Constant(value_int=1)),
                         to=FLOAT.dtype)
            grid_x = op.Expand(op.Unsqueeze(gx, [0]), op.Concat(h, w, axis=0))
            grid_y = op.Expand(op.Unsqueeze(gy, [1]), op.Concat(h, w, axis=0))
            grid = op.Unsqueeze(op.Concat(op.Unsqueeze(grid_x, [2]), op.Unsqueeze(grid_y, [2]), axis=2), [0, 1])
            two, half = op.Constant(value_float=2.0), op.Constant(value_float=0.5)
            xy = op.Mul(op.Add(op.Sub(op.Mul(op.Slice(y, [0], [2], [4]), two), half), grid),
                        op.Constant(value_float=float(stride)))
            wh2 = op.Mul(op.Slice(y, [2], [4], [4]), two)
            wh = op.Mul(op.Mul(wh2, wh2), op.Reshape(anc, op.Constant(value_ints=[1, -1, 1, 1, 2])))
            box = op.Concat(op.Sub(xy, op.Mul(wh, half)), op.Add(xy, op.Mul(wh, half)), axis=4)
            obj = op.Slice(y, [4], [5], [4])
            # The best class on the logits (as our kernel: the sigmoid can round
            # two different logits to one value), the first of equal ones.
            cls = op.Slice(raw, [5], [_INT64_MAX], [4])
            best = op.Sigmoid(op.ReduceMax(cls, [4], keepdims=1))
            label = op.ArgMax(cls, axis=4, keepdims=0, select_last_index=0)
            all_boxes.append(op.Reshape(box, op.Concat(b, op.Constant(value_ints=[-1, 4]), axis=0)))
            all_scores.append(op.Reshape(op.Mul(obj, best), op.Concat(b, op.Constant(value_ints=[-1]), axis=0)))
            all_labels.append(op.Reshape(label, op.Concat(b, op.Constant(value_ints=[-1]), axis=0)))
        boxes = op.Concat(*all_boxes, axis=1)
        scores = op.Concat(*all_scores, axis=1)
        labels = op.Concat(*all_labels, axis=1)
        neg_inf = op.Constant(value_float=float("-inf"))
        ranked = op.Where(op.Greater(scores, op.Constant(value_float=float(score_threshold))), scores, neg_inf)
        k_wanted = op.Constant(value_ints=[int(max_detections)])
        k = op.Min(op.Shape(scores, start=1, end=2), k_wanted)
        values, index = op.TopK(ranked, k, axis=1, largest=1, sorted=1)
        valid = op.Not(op.Equal(values, neg_inf))
        pad_amount = op.Sub(k_wanted, k)
        out_boxes = op.GatherElements(boxes, op.Expand(op.Unsqueeze(index, [2]),
                                                        op.Concat(op.Shape(index), op.Constant(value_ints=[4]),
                                                                  axis=0)), axis=1)
        out_boxes = op.Where(op.Unsqueeze(valid, [2]), out_boxes, op.Constant(value_float=0.0))
        out_scores = op.Where(valid, values, op.Constant(value_float=0.0))
        out_labels = op.Where(valid, op.GatherElements(labels, index, axis=1), op.Constant(value_int=-1))
        pad2 = op.Concat(op.Constant(value_ints=[0, 0, 0]), pad_amount, axis=0)
        pad3 = op.Concat(op.Constant(value_ints=[0, 0, 0, 0]), pad_amount, op.Constant(value_ints=[0]), axis=0)
        counts = op.ReduceSum(op.Cast(valid, to=INT64.dtype), [1], keepdims=0)
        return (op.Pad(out_boxes, pad3, op.Constant(value_float=0.0)), op.Pad(out_scores, pad2, op.Constant(value_float=0.0)),
                op.Pad(out_labels, pad2, op.Constant(value_int=-1)), counts)

    ops = torch.ops.visionops
    return {ops.nms.default: nms, ops.batched_nms.default: batched_nms, ops.roi_align.default: roi_align,
            ops.roi_pool.default: roi_pool, ops.padded_nms.default: padded_nms, ops.yolo_decode.default: yolo_decode}


def translation_table() -> dict[Callable, Callable]:
    """{visionops op overload: onnxscript translation}, for torch.onnx.export's
    ``custom_translation_table``."""
    return _build()


def register() -> None:
    """Add the translations to the exporter's default registry (what
    ``import visionops.onnx`` does), so that a plain ``torch.onnx.export(...,
    dynamo=True)`` uses them."""
    from onnxscript.function_libs.torch_lib.registration import torch_op

    for overload, fn in _build().items():
        torch_op(overload.name(), trace_only=True)(fn)


register()
