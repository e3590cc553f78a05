// COCO-style detection evaluation: the per-pair overlap and the greedy
// matching of pycocotools' COCOeval (evaluateImg), written so that every
// number equals pycocotools' (same double arithmetic, same comparisons, same
// tie rules). No ATen: plain doubles and indices.
//
// Conventions of COCOeval kept here, because the results depend on them:
// - boxes are (x, y, w, h) in double; IoU with a crowd ground truth divides
//   the intersection by the detection's area only;
// - a detection matches the unmatched ground truth of highest IoU >= the
//   threshold (capped at 1 - 1e-10), scanning non-ignored ground truths
//   first; a later ground truth of equal IoU wins (the test is "<", not
//   "<="); crowd ground truths can match any number of detections; once a
//   detection has a non-ignored match it never moves to an ignored one;
// - NaN overlaps are not "< threshold", so they match, as in pycocotools.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/macros.h"

namespace vo {

// pycocotools' bbIou for one (detection, ground truth) pair, xywh boxes.
VO_HOST_DEVICE_INLINE double coco_box_iou(const double* d, const double* g, bool crowd) {
  const double ga = g[2] * g[3];
  const double da = d[2] * d[3];
  const double w = std::fmin(d[2] + d[0], g[2] + g[0]) - std::fmax(d[0], g[0]);
  if (w <= 0) return 0.0;
  const double h = std::fmin(d[3] + d[1], g[3] + g[1]) - std::fmax(d[1], g[1]);
  if (h <= 0) return 0.0;
  const double i = w * h;
  const double u = crowd ? da : da + ga - i;
  return i / u;
}

// pycocotools' mask IoU from pixel counts: no common pixel gives 0 (so two
// empty masks give 0, not 0/0).
VO_HOST_DEVICE_INLINE double coco_mask_iou(int64_t inter, int64_t det_area, int64_t gt_area, bool crowd) {
  if (inter == 0) return 0.0;
  const double u = crowd ? static_cast<double>(det_area) : static_cast<double>(det_area + gt_area - inter);
  return static_cast<double>(inter) / u;
}

// The matching of one image and class at one IoU threshold.
//   ious[d * iou_stride + gt_order[k]]: overlap of detection d (by score)
//     with the k-th ground truth in evaluation order (non-ignored first);
//   gt_ignored[k], gt_crowd[k]: flags in evaluation order;
//   gt_taken[k]: scratch, all 0 on entry;
//   det_matched[d], det_ignored[d]: results (ignored = matched to an ignored
//     ground truth; the area rule for unmatched detections is the caller's).
VO_HOST_DEVICE_INLINE void coco_match(const double* ious, int64_t iou_stride, const int64_t* gt_order,
                                      const uint8_t* gt_ignored, const uint8_t* gt_crowd, int64_t n_det,
                                      int64_t n_gt, double threshold, uint8_t* gt_taken, uint8_t* det_matched,
                                      uint8_t* det_ignored) {
  const double cap = 1 - 1e-10;
  const double start = threshold < cap ? threshold : cap;  // Python's min([t, 1 - 1e-10])
  for (int64_t d = 0; d < n_det; ++d) {
    double best = start;
    int64_t m = -1;
    const double* row = ious + d * iou_stride;
    for (int64_t k = 0; k < n_gt; ++k) {
      if (gt_taken[k] && !gt_crowd[k]) continue;
      if (m > -1 && !gt_ignored[m] && gt_ignored[k]) break;
      const double o = row[gt_order[k]];
      if (o < best) continue;
      best = o;
      m = k;
    }
    det_matched[d] = m > -1;
    det_ignored[d] = m > -1 && gt_ignored[m];
    if (m > -1) gt_taken[m] = 1;
  }
}

}  // namespace vo
