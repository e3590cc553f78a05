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
  is not computed in the graph: it is -1 everywhere.

ONNX's operators differ from ours at the edges: NonMaxSuppression orders
each box's corners (an inverted box is not empty there) and computes IoU
its own way, so scores tied to the last bit or IoUs equal to the threshold
may resolve differently; RoiAlign has no convention for a batch index
outside [0, N). On ordinary inputs onnxruntime gives our eager results
(tests/test_onnx.py: NMS and RoI pooling exactly, RoI Align within 1e-5).

The other ops (the IoU family, box area and conversion, box coding,
anchors, YOLO decoding, the losses, matching, paste_masks) have no translation yet: a
graph that calls them stops the exporter with a ConversionError naming the
op. Export a model's inference tail through the four ops above, or register
a translation of your own in the same way.
"""

from __future__ import annotations

from collections.abc import Callable

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
    def nms(boxes, scores, iou_threshold: float, score_threshold: float | None = None,
            max_output: int | None = None):
        b, s = nms_boxes_scores(op.Cast(boxes, to=FLOAT.dtype), op.Cast(scores, to=FLOAT.dtype))
        limit, threshold = nms_inputs(score_threshold, max_output)
        iou = op.Constant(value_floats=[float(iou_threshold)])
        return kept_indices(op.NonMaxSuppression(b, s, limit, iou, threshold))

    def batched_nms(boxes, scores, idxs, iou_threshold: float, score_threshold: float | None = None,
                    max_output: int | None = None):
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

    ops = torch.ops.visionops
    return {ops.nms.default: nms, ops.batched_nms.default: batched_nms, ops.roi_align.default: roi_align,
            ops.roi_pool.default: roi_pool}


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
