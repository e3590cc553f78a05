// The public contract of visionops: every operator schema, in one place.
//
// Each op family's kernels register per device from its folder (csrc/boxes/,
// csrc/nms/, ...: <op>_cpu.cpp and <op>_cuda.cu); its fake (meta) kernels,
// autograd and Python API live in visionops/ops/<family>.py. Private ops
// (names starting with '_') are the backward passes that autograd calls.
#include <torch/library.h>

TORCH_LIBRARY(visionops, m) {
  // ---- boxes: area and format conversion (axis-aligned formats)
  m.def("box_area(Tensor boxes, str fmt=\"xyxy\") -> Tensor");
  m.def("box_convert(Tensor boxes, str in_fmt, str out_fmt) -> Tensor");

  // ---- the pairwise IoU family: [..., N, 4] x [..., M, 4] -> [..., N, M]
  m.def("box_iou(Tensor boxes1, Tensor boxes2, str fmt=\"xyxy\") -> Tensor");
  m.def("generalized_box_iou(Tensor boxes1, Tensor boxes2) -> Tensor");
  m.def("distance_box_iou(Tensor boxes1, Tensor boxes2, float eps=1e-07) -> Tensor");
  m.def("complete_box_iou(Tensor boxes1, Tensor boxes2, float eps=1e-07) -> Tensor");
  // variant: 'iou' | 'giou' | 'diou' | 'ciou'. Returns the gradients with the
  // broadcast batch shape; autograd sums them back to each input's shape.
  m.def(
      "_pairwise_box_iou_backward(Tensor grad, Tensor boxes1, Tensor boxes2, str variant, str fmt, float eps) "
      "-> (Tensor, Tensor)");

  // ---- elementwise IoU losses: [..., 4] x [..., 4] -> [...] or a scalar
  m.def("generalized_box_iou_loss(Tensor boxes1, Tensor boxes2, str reduction=\"none\", float eps=1e-07) -> Tensor");
  m.def("distance_box_iou_loss(Tensor boxes1, Tensor boxes2, str reduction=\"none\", float eps=1e-07) -> Tensor");
  m.def("complete_box_iou_loss(Tensor boxes1, Tensor boxes2, str reduction=\"none\", float eps=1e-07) -> Tensor");
  m.def(
      "_box_iou_loss_backward(Tensor grad, Tensor boxes1, Tensor boxes2, str variant, str reduction, float eps) "
      "-> (Tensor, Tensor)");

  // ---- non-maximum suppression: kept indices in decreasing score order.
  // score_threshold drops boxes whose score is not above it; max_output keeps
  // the first max_output (the greedy pass stops there).
  m.def(
      "nms(Tensor boxes, Tensor scores, float iou_threshold, *, float? score_threshold=None, "
      "int? max_output=None) -> Tensor");
  // NMS within each class of idxs, as one native call.
  m.def(
      "batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold, *, "
      "float? score_threshold=None, int? max_output=None) -> Tensor");
  // NMS of each image of a padded batch, boxes [B, N, 4], scores [B, N] and
  // optional classes idxs [B, N], with a fixed-size result: kept indices
  // [B, max_output] (into each image's N boxes, by decreasing score, padded
  // with -1) and counts [B]. No host synchronization on any device.
  m.def(
      "padded_nms(Tensor boxes, Tensor scores, float iou_threshold, int max_output, *, Tensor? idxs=None, "
      "float? score_threshold=None) -> (Tensor, Tensor)");
  // Soft-NMS: repeatedly pick the highest score (ties: lowest index) and
  // decay the others' scores by their overlap with it ('linear' or
  // 'gaussian'); boxes whose score is below score_threshold are dropped.
  // Returns the picked indices in order and their scores when picked.
  m.def(
      "soft_nms(Tensor boxes, Tensor scores, float iou_threshold=0.3, float sigma=0.5, "
      "float score_threshold=0.001, str method=\"linear\") -> (Tensor, Tensor)");

  // ---- RoI pooling. rois [K, 5]: (batch index, x1, y1, x2, y2) in image
  // space, scaled onto the map by spatial_scale. Outputs [K, C, PH, PW].
  m.def(
      "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
      "int sampling_ratio, bool aligned) -> Tensor");
  // The gradient map comes back channels-last when channels_last is set.
  m.def(
      "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, int sampling_ratio, "
      "bool aligned, bool channels_last) -> Tensor");
  // Returns the maxima and their pixels (h * W + w, int32; -1 in empty bins).
  m.def(
      "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) "
      "-> (Tensor, Tensor)");
  m.def(
      "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, bool channels_last) "
      "-> Tensor");
  // torchvision's MultiScaleRoIAlign in one call: each RoI is pooled
  // (roi_align, aligned=False) from the FPN level that eq. 1 of the FPN paper
  // assigns it, as torchvision's LevelMapper computes it.
  m.def(
      "multi_scale_roi_align(Tensor[] features, Tensor rois, float[] spatial_scales, SymInt pooled_height, "
      "SymInt pooled_width, int sampling_ratio, int canonical_scale=224, int canonical_level=4, float eps=1e-06) "
      "-> Tensor");
  m.def(
      "_multi_scale_roi_align_backward(Tensor grad, Tensor rois, float[] spatial_scales, SymInt[] heights, "
      "SymInt[] widths, SymInt batch_size, SymInt channels, int sampling_ratio, int canonical_scale, "
      "int canonical_level, float eps, bool[] channels_last) -> Tensor[]");

  // ---- box coding, as torchvision's BoxCoder: weights (wx, wy, ww, wh).
  // rel_codes [N, 4 * C] relative to boxes [N, 4] -> decoded boxes [N, 4 * C];
  // dw and dh are capped at bbox_xform_clip before exp.
  m.def("decode_boxes(Tensor rel_codes, Tensor boxes, float[] weights, float bbox_xform_clip) -> Tensor");
  m.def(
      "_decode_boxes_backward(Tensor grad, Tensor rel_codes, Tensor boxes, float[] weights, "
      "float bbox_xform_clip) -> (Tensor, Tensor)");
  // reference_boxes [N, 4] relative to proposals [N, 4] -> codes [N, 4].
  m.def("encode_boxes(Tensor reference_boxes, Tensor proposals, float[] weights) -> Tensor");

  // ---- anchors, as torchvision's AnchorGenerator: the cell anchors of every
  // level (anchors_per_level rows each, in level order) tiled over each
  // level's grid, in (level, row, column, cell anchor) order -> [sum H W A, 4].
  m.def(
      "grid_anchors(Tensor cell_anchors, int[] anchors_per_level, int[] grid_heights, int[] grid_widths, "
      "int[] stride_heights, int[] stride_widths) -> Tensor");

  // ---- RetinaNet's loss: torchvision's sigmoid_focal_loss, fused; alpha in
  // [0, 1], or -1 to turn the class weighting off.
  m.def(
      "sigmoid_focal_loss(Tensor inputs, Tensor targets, float alpha=0.25, float gamma=2, str reduction=\"none\") "
      "-> Tensor");
  // targets_grad=False: the targets' gradient is neither computed nor
  // allocated (returned empty, shape [0]); autograd asks for it only where
  // the targets require it.
  m.def(
      "_sigmoid_focal_loss_backward(Tensor grad, Tensor inputs, Tensor targets, float alpha, float gamma, "
      "str reduction, bool targets_grad=True) -> (Tensor, Tensor)");

  // ---- masks [N, H, W] -> the boxes [N, 4] (float32) of their nonzero pixels.
  m.def("masks_to_boxes(Tensor masks) -> Tensor");

  // ---- Mask R-CNN's paste step: masks [N, 1, M, M] of probabilities resized
  // into their boxes [N, 4] (x1, y1, x2, y2) of an image of height x width
  // zeros -> [N, 1, height, width], torchvision's paste_masks_in_image; with
  // a threshold, the bool masks (pasted > threshold) instead.
  m.def(
      "paste_masks(Tensor masks, Tensor boxes, int height, int width, int padding=1, float? threshold=None) "
      "-> Tensor");

  // ---- soft Dice loss over a batch: mode 'binary' (inputs [B, 1, ...]),
  // 'multiclass' (inputs [B, C, ...], targets a class map [B, ...]) or
  // 'multilabel' (targets like inputs). Returns the loss and the per-class
  // statistics [3, C] (intersection, prediction and target sums, float64)
  // that the backward reuses instead of saved activations.
  m.def(
      "dice_loss(Tensor inputs, Tensor targets, str mode=\"binary\", bool from_logits=True, float smooth=0.0, "
      "float eps=1e-07, bool squared=False, int? ignore_index=None, Tensor? weight=None, bool log_loss=False, "
      "str reduction=\"mean\") -> (Tensor, Tensor)");
  m.def(
      "_dice_loss_backward(Tensor grad, Tensor inputs, Tensor targets, Tensor stats, str mode, bool from_logits, "
      "float smooth, float eps, bool squared, int? ignore_index, Tensor? weight, bool log_loss, str reduction) "
      "-> Tensor");

  // ---- YOLO heads [B, A * (5 + C), H, W] per scale, anchors [L, A, 2] in
  // pixels: the top max_detections boxes (x1, y1, x2, y2) of each image by
  // score = sigmoid(objectness) * sigmoid(best class logit), above
  // score_threshold, with their scores and classes, padded (boxes 0, scores
  // 0, classes -1), and the counts [B]: the input of padded_nms.
  m.def(
      "yolo_decode(Tensor[] heads, Tensor anchors, int[] strides, str version=\"v5\", float score_threshold=0.25, "
      "int max_detections=300) -> (Tensor, Tensor, Tensor, Tensor)");
  // The differentiable box decoding of one scale: [B, A, H, W, 4] boxes.
  m.def("yolo_boxes(Tensor head, Tensor anchors, int stride, str version=\"v5\") -> Tensor");
  m.def("_yolo_boxes_backward(Tensor grad, Tensor head, Tensor anchors, int stride, str version) -> Tensor");

  // ---- Hungarian matching over a padded batch of cost matrices [B, R, C]:
  // problem b uses the first row_counts[b] rows and col_counts[b] columns
  // (all when None). Returns the column assigned to each row ([B, R], -1 for
  // an unassigned row) and a status per problem ([B] int32: 0 solved,
  // 1 invalid entries (NaN, or -inf when minimizing / +inf when maximizing),
  // 2 infeasible); the Python API raises ValueError on a nonzero status.
  m.def(
      "linear_sum_assignment(Tensor cost, Tensor? row_counts=None, Tensor? col_counts=None, bool maximize=False) "
      "-> (Tensor, Tensor)");

  // DETR's matching cost (class, L1 and GIoU terms; boxes cxcywh) of each
  // image's queries against its own targets only: logits [B, Q, K], boxes
  // [B, Q, 4], the targets of all images concatenated ([T], [T, 4]) with
  // target_counts[b] of them per image. Returns [B, Q, max count] (padding
  // 0), float32 (float64 for float64 inputs): the input of
  // linear_sum_assignment with col_counts = target_counts.
  m.def(
      "detr_matching_cost(Tensor logits, Tensor pred_boxes, Tensor target_labels, Tensor target_boxes, "
      "int[] target_counts, float class_weight=1.0, float bbox_weight=1.0, float giou_weight=1.0) -> Tensor");

  // ---- COCO-style evaluation (pycocotools' COCOeval evaluate + accumulate),
  // CPU. Detections and ground truths flat and grouped by image (counts
  // [I]); boxes (x, y, w, h); areas for the area ranges; classes [K] sorted
  // (other labels are not evaluated); iou_thresholds [T], recall_thresholds
  // [R], area_ranges [A, 2], max_dets [M]. For segm, masks packed by
  // pack_masks, mask_words[i] int64 words per mask of image i. Returns
  // precision [T, R, K, A, M], recall [T, K, A, M] and scores [T, R, K, A, M]
  // laid out as COCOeval.eval's arrays (-1 where a class has no ground truth).
  m.def(
      "coco_evaluate(Tensor det_boxes, Tensor det_scores, Tensor det_labels, Tensor det_areas, Tensor det_counts, "
      "Tensor gt_boxes, Tensor gt_labels, Tensor gt_crowd, Tensor gt_areas, Tensor gt_counts, Tensor classes, "
      "Tensor iou_thresholds, Tensor recall_thresholds, Tensor area_ranges, int[] max_dets, Tensor? det_masks=None, "
      "Tensor? gt_masks=None, Tensor? mask_words=None) -> (Tensor, Tensor, Tensor)");
  // Binary masks [N, H, W] -> [N, ceil(H * W / 64)] int64, pixel p (row-major)
  // in bit p % 64 of word p / 64: 1/8 of a byte mask, and intersections are
  // popcounts.
  m.def("pack_masks(Tensor masks) -> Tensor");

  // COCO's segmentation formats to packed masks (pack_masks' layout), each
  // object h * w of its image: compressed RLE strings; uncompressed RLE (run
  // lengths, run_counts[i] of them for object i); polygons (x, y pairs,
  // vertex_counts per polygon, polygons_per_object merged), rasterized as
  // pycocotools does. Returns the objects' words concatenated.
  m.def("coco_rle_decode(str[] counts, int[] heights, int[] widths) -> Tensor");
  m.def("coco_runs_decode(Tensor runs, int[] run_counts, int[] heights, int[] widths) -> Tensor");
  m.def(
      "coco_polygons_decode(Tensor xy, int[] vertex_counts, int[] polygons_per_object, int[] heights, int[] widths) "
      "-> Tensor");
}
