// Arguments of the coco family (coco_evaluate, pack_masks and the decoders of
// COCO's segmentation formats): the checks of shapes, devices and size lists,
// which visionops/ops/coco.py's fake kernels repeat with the same messages.
// Checks of values inside tensors (counts that must sum to a total, run
// lengths, RLE strings) stay where the CPU kernels read those values.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>

#include "core/checks.h"

namespace vo {

// ---- coco_evaluate

// A per-detection or per-ground-truth vector of n entries, on the CPU.
inline void check_coco_vector(const at::Tensor& t, int64_t n, const char* name, const char* op) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == n, "visionops.", op, ": ", name, " must have shape [", n, "], got ",
              shape_str(t));
  TORCH_CHECK(t.device().is_cpu(), "visionops.", op, ": ", name, " must be on the CPU, got ", t.device());
}

// D detections (det_scores' length), G ground truths (gt_labels'), I images
// (det_counts'), A area ranges, and at least one detection limit, all >= 0.
inline void check_coco_evaluate_args(const at::Tensor& det_boxes, const at::Tensor& det_scores,
                                     const at::Tensor& det_labels, const at::Tensor& det_areas,
                                     const at::Tensor& det_counts, const at::Tensor& gt_boxes,
                                     const at::Tensor& gt_labels, const at::Tensor& gt_crowd,
                                     const at::Tensor& gt_areas, const at::Tensor& gt_counts,
                                     const at::Tensor& area_ranges, c10::IntArrayRef max_dets,
                                     const std::optional<at::Tensor>& det_masks,
                                     const std::optional<at::Tensor>& gt_masks,
                                     const std::optional<at::Tensor>& mask_words, const char* op) {
  const int64_t D = det_scores.numel(), G = gt_labels.numel(), I = det_counts.numel();
  TORCH_CHECK(det_boxes.dim() == 2 && det_boxes.size(0) == D && det_boxes.size(1) == 4, "visionops.", op,
              ": det_boxes must have shape [", D, ", 4], got ", shape_str(det_boxes));
  TORCH_CHECK(gt_boxes.dim() == 2 && gt_boxes.size(0) == G && gt_boxes.size(1) == 4, "visionops.", op,
              ": gt_boxes must have shape [", G, ", 4], got ", shape_str(gt_boxes));
  TORCH_CHECK(gt_counts.numel() == I, "visionops.", op, ": det_counts and gt_counts must have one entry per image, got ",
              I, " and ", gt_counts.numel());
  TORCH_CHECK(area_ranges.dim() == 2 && area_ranges.size(1) == 2, "visionops.", op,
              ": area_ranges must have shape [A, 2], got ", shape_str(area_ranges));
  TORCH_CHECK_VALUE(!max_dets.empty(), "visionops.", op, ": max_dets must not be empty");
  for (const int64_t m : max_dets) {
    TORCH_CHECK_VALUE(m >= 0, "visionops.", op, ": max_dets must be non-negative, got ", m);
  }
  const bool segm = det_masks.has_value();
  TORCH_CHECK(segm == gt_masks.has_value() && segm == mask_words.has_value(), "visionops.", op,
              ": det_masks, gt_masks and mask_words go together");
  check_coco_vector(det_scores, D, "det_scores", op);
  check_coco_vector(det_labels, D, "det_labels", op);
  check_coco_vector(det_areas, D, "det_areas", op);
  check_coco_vector(gt_labels, G, "gt_labels", op);
  check_coco_vector(gt_crowd, G, "gt_crowd", op);
  check_coco_vector(gt_areas, G, "gt_areas", op);
  if (segm) check_coco_vector(*mask_words, I, "mask_words", op);
}

// ---- packed masks

inline void check_pack_masks_args(const at::Tensor& masks, const char* op) {
  TORCH_CHECK(masks.dim() == 3, "visionops.", op, ": masks must have shape [N, H, W], got ", shape_str(masks));
}

// One (height, width) per object, none negative.
inline void check_mask_sizes(c10::IntArrayRef heights, c10::IntArrayRef widths, int64_t n, const char* op) {
  TORCH_CHECK_VALUE(static_cast<int64_t>(heights.size()) == n && static_cast<int64_t>(widths.size()) == n,
                    "visionops.", op, ": heights and widths must have one entry per object (", n, "), got ",
                    heights.size(), " and ", widths.size());
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK_VALUE(heights[i] >= 0 && widths[i] >= 0, "visionops.", op,
                      ": heights and widths must be non-negative, got ", heights[i], " x ", widths[i]);
  }
}

// runs holds every object's run lengths back to back: run_counts[i] for object i.
inline void check_runs_decode_args(const at::Tensor& runs, c10::IntArrayRef run_counts, c10::IntArrayRef heights,
                                   c10::IntArrayRef widths, const char* op) {
  check_mask_sizes(heights, widths, static_cast<int64_t>(run_counts.size()), op);
  int64_t total = 0;
  for (const int64_t c : run_counts) {
    TORCH_CHECK_VALUE(c >= 0, "visionops.", op, ": run_counts must be non-negative, got ", c);
    total += c;
  }
  TORCH_CHECK_VALUE(runs.dim() == 1 && runs.numel() == total, "visionops.", op, ": runs must have shape [", total,
                    "] (the sum of run_counts), got ", shape_str(runs));
}

// xy holds the (x, y) of every vertex of every polygon, vertex_counts[p] for
// polygon p, polygons_per_object[i] polygons for object i.
inline void check_polygons_decode_args(const at::Tensor& xy, c10::IntArrayRef vertex_counts,
                                       c10::IntArrayRef polygons_per_object, c10::IntArrayRef heights,
                                       c10::IntArrayRef widths, const char* op) {
  check_mask_sizes(heights, widths, static_cast<int64_t>(polygons_per_object.size()), op);
  int64_t total_vertices = 0, total_polygons = 0;
  for (const int64_t k : vertex_counts) {
    TORCH_CHECK_VALUE(k >= 0, "visionops.", op, ": vertex_counts must be non-negative, got ", k);
    total_vertices += k;
  }
  for (const int64_t p : polygons_per_object) {
    TORCH_CHECK_VALUE(p >= 0, "visionops.", op, ": polygons_per_object must be non-negative, got ", p);
    total_polygons += p;
  }
  TORCH_CHECK_VALUE(total_polygons == static_cast<int64_t>(vertex_counts.size()), "visionops.", op,
                    ": polygons_per_object must sum to the number of polygons (", vertex_counts.size(), "), got ",
                    total_polygons);
  TORCH_CHECK_VALUE(xy.dim() == 1 && xy.numel() == 2 * total_vertices, "visionops.", op, ": xy must have shape [",
                    2 * total_vertices, "] (x, y of every vertex), got ", shape_str(xy));
}

}  // namespace vo
