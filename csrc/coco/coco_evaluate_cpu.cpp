// CPU kernel of coco_evaluate: pycocotools' COCOeval evaluate() and
// accumulate() in one native pass over flat tensors, parallel over classes.
//
// Per class: the detections and ground truths of each image (in image
// order), the detections sorted by score (stable, NaN last, as numpy's
// mergesort of -score) and cut at the largest max_dets; their overlaps once;
// then the matching at every area range and IoU threshold
// (coco/math.h). Then the class's detections of all images are
// sorted by score once (stable over (image, rank), as pycocotools
// concatenates them) and, for each area range, detection limit and
// threshold, the precision/recall curve is built and sampled at the recall
// thresholds exactly as COCOeval.accumulate does (cumulative sums in double,
// precision made monotone from the right, searchsorted 'left').
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>
#include <vector>

#include "coco/args.h"
#include "coco/math.h"

namespace vo {
namespace {

constexpr const char* kOp = "coco_evaluate";

// One side (detections or ground truths) as flat arrays, grouped by image.
struct Side {
  const double* boxes = nullptr;  // [n, 4] xywh
  const double* scores = nullptr;  // detections only
  std::vector<double> areas;  // given, or (NaN given) w * h or the pixel count
  const int64_t* labels = nullptr;
  std::vector<int64_t> image_offset;  // [I + 1]
  const int64_t* masks = nullptr;     // packed pixels, mask_words[i] words per mask of image i
  std::vector<int64_t> mask_offset;   // [n] word offset of each mask
  std::vector<int64_t> mask_area;     // [n] pixel counts
};

// A checked vector (check_coco_evaluate_args) as the kernel reads it.
at::Tensor as_vector(const at::Tensor& t, at::ScalarType type) { return t.to(type).contiguous(); }

std::vector<int64_t> offsets_of(const at::Tensor& counts, int64_t total, const char* name) {
  const at::Tensor c = counts.to(at::kLong).contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  std::vector<int64_t> off(c.numel() + 1, 0);
  for (int64_t i = 0; i < c.numel(); ++i) {
    TORCH_CHECK_VALUE(p[i] >= 0, "visionops.", kOp, ": ", name, " must be non-negative, got ", p[i], " at ", i);
    off[i + 1] = off[i] + p[i];
  }
  TORCH_CHECK_VALUE(off.back() == total, "visionops.", kOp, ": ", name, " must sum to ", total, ", got ", off.back());
  return off;
}

// Pixel count of a packed mask.
int64_t popcount_words(const int64_t* w, int64_t n) {
  int64_t c = 0;
  for (int64_t k = 0; k < n; ++k) c += __builtin_popcountll(static_cast<uint64_t>(w[k]));
  return c;
}

int64_t intersection_words(const int64_t* a, const int64_t* b, int64_t n) {
  int64_t c = 0;
  for (int64_t k = 0; k < n; ++k) c += __builtin_popcountll(static_cast<uint64_t>(a[k] & b[k]));
  return c;
}

// numpy's order for argsort(-score): larger first, NaN last.
bool score_before(double a, double b) { return a > b || (!std::isnan(a) && std::isnan(b)); }

struct Params {
  std::vector<double> iou_thresholds;     // T
  std::vector<double> recall_thresholds;  // R
  std::vector<double> area_lo, area_hi;   // A
  std::vector<int64_t> max_dets;          // M
  int64_t max_det_last;                   // detections kept per (image, class)
  bool recall_ascending;
  bool segm;
};

struct Outputs {
  double* precision;  // [T, R, K, A, M]
  double* recall;     // [T, K, A, M]
  double* scores;     // [T, R, K, A, M]
  int64_t K;
};

constexpr uint8_t kIgnored = 0, kTruePositive = 1, kFalsePositive = 2;

// A detection kept for accumulation.
struct Entry {
  double score;
  int64_t rank;  // position among its image's detections of the class, by score
};

// Everything one class needs: the ids of its detections and ground truths,
// each in image order (and in input order within an image).
struct ClassMembers {
  std::vector<int64_t> det_ids, det_image, gt_ids, gt_image;
};

void evaluate_class(int64_t k, const ClassMembers& cm, const Side& det, const Side& gt, const uint8_t* crowd,
                    const std::vector<int64_t>& mask_words, const Params& p, const Outputs& out) {
  const int64_t T = p.iou_thresholds.size(), R = p.recall_thresholds.size(), A = p.area_lo.size(),
                M = p.max_dets.size(), K = out.K;
  const int64_t AT = A * T;
  std::vector<Entry> entries;
  std::vector<uint8_t> state;  // [entry][A][T]: kIgnored, kTruePositive or kFalsePositive
  std::vector<int64_t> npig(A, 0);
  std::vector<double> ious;
  std::vector<int64_t> dets, order;
  std::vector<uint8_t> g_ign, g_crowd, taken, m_row, i_row, outside;
  constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  size_t di = 0, gi = 0;
  // Walk the images that have detections or ground truths of this class.
  while (di < cm.det_ids.size() || gi < cm.gt_ids.size()) {
    const int64_t img = std::min(di < cm.det_ids.size() ? cm.det_image[di] : kNone,
                                 gi < cm.gt_ids.size() ? cm.gt_image[gi] : kNone);
    dets.clear();
    while (di < cm.det_ids.size() && cm.det_image[di] == img) dets.push_back(cm.det_ids[di++]);
    const int64_t* g_ids = cm.gt_ids.data() + gi;
    const size_t g0 = gi;
    while (gi < cm.gt_ids.size() && cm.gt_image[gi] == img) ++gi;
    const int64_t ng = static_cast<int64_t>(gi - g0);
    std::stable_sort(dets.begin(), dets.end(),
                     [&](int64_t a, int64_t b) { return score_before(det.scores[a], det.scores[b]); });
    const int64_t nd = std::min<int64_t>(dets.size(), p.max_det_last);
    // Overlaps [nd, ng] in the ground truths' input order.
    ious.assign(nd * ng, 0.0);
    for (int64_t d = 0; d < nd; ++d) {
      const int64_t dj = dets[d];
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t gj = g_ids[g];
        double o;
        if (p.segm) {
          const int64_t words = mask_words[img];
          o = coco_mask_iou(intersection_words(det.masks + det.mask_offset[dj], gt.masks + gt.mask_offset[gj], words),
                            det.mask_area[dj], gt.mask_area[gj], crowd[gj] != 0);
        } else {
          o = coco_box_iou(det.boxes + 4 * dj, gt.boxes + 4 * gj, crowd[gj] != 0);
        }
        ious[d * ng + g] = o;
      }
    }
    const int64_t first = entries.size();
    for (int64_t d = 0; d < nd; ++d) entries.push_back({det.scores[dets[d]], d});
    state.resize(entries.size() * AT, kIgnored);
    g_ign.resize(ng);
    g_crowd.resize(ng);
    taken.resize(ng);
    m_row.resize(nd);
    i_row.resize(nd);
    outside.resize(nd);
    order.resize(ng);
    for (int64_t a = 0; a < A; ++a) {
      // Evaluation order: non-ignored ground truths first, stable.
      int64_t n_kept = 0;
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t gj = g_ids[g];
        const bool ign = crowd[gj] || gt.areas[gj] < p.area_lo[a] || gt.areas[gj] > p.area_hi[a];
        if (!ign) order[n_kept++] = g;
      }
      npig[a] += n_kept;
      int64_t pos = n_kept;
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t gj = g_ids[g];
        const bool ign = crowd[gj] || gt.areas[gj] < p.area_lo[a] || gt.areas[gj] > p.area_hi[a];
        if (ign) order[pos++] = g;
      }
      for (int64_t k2 = 0; k2 < ng; ++k2) {
        g_ign[k2] = k2 >= n_kept;
        g_crowd[k2] = crowd[g_ids[order[k2]]] != 0;
      }
      for (int64_t d = 0; d < nd; ++d) {
        const double area = det.areas[dets[d]];
        outside[d] = area < p.area_lo[a] || area > p.area_hi[a];
      }
      if (ng == 0) {  // nothing to match: false positives, or ignored outside the range
        for (int64_t d = 0; d < nd; ++d) {
          uint8_t* st = state.data() + (first + d) * AT + a * T;
          std::fill(st, st + T, outside[d] ? kIgnored : kFalsePositive);
        }
        continue;
      }
      for (int64_t t = 0; t < T; ++t) {
        std::fill(taken.begin(), taken.end(), 0);
        coco_match(ious.data(), ng, order.data(), g_ign.data(), g_crowd.data(), nd, ng, p.iou_thresholds[t],
                   taken.data(), m_row.data(), i_row.data());
        for (int64_t d = 0; d < nd; ++d) {
          const bool ign = i_row[d] || (!m_row[d] && outside[d]);
          state[(first + d) * AT + a * T + t] = ign ? kIgnored : (m_row[d] ? kTruePositive : kFalsePositive);
        }
      }
    }
  }
  // Accumulate: every detection of the class by score, ties by (image, rank).
  std::vector<int64_t> sorted(entries.size());
  std::iota(sorted.begin(), sorted.end(), 0);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](int64_t a, int64_t b) { return score_before(entries[a].score, entries[b].score); });
  const int64_t n = sorted.size();
  std::vector<int64_t> rank(n);
  std::vector<double> score(n);
  for (int64_t i = 0; i < n; ++i) {
    rank[i] = entries[sorted[i]].rank;
    score[i] = entries[sorted[i]].score;
  }
  // The curve is kept only at the true positives. Recall changes only
  // there, so the first index reaching a positive recall threshold is one;
  // and every other point's precision is at most its predecessor's, so the
  // precision made monotone from the right at a true positive is the largest
  // precision of the true positives from there on. Only a recall threshold
  // <= 0 samples index 0 itself (score: the first detection's; precision:
  // the largest of all, or 0).
  std::vector<std::vector<int64_t>> within(M);  // positions within each detection limit
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t i = 0; i < n; ++i) {
      if (rank[i] < p.max_dets[m]) within[m].push_back(i);
    }
  }
  // Limits that keep the same detections (the lists are nested, so the same
  // size means the same list) share one curve.
  std::vector<int64_t> same_as(M, -1);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t m0 = 0; m0 < m; ++m0) {
      if (same_as[m0] < 0 && within[m0].size() == within[m].size()) {
        same_as[m] = m0;
        break;
      }
    }
  }
  // The states in score order, one row of n per (area range, threshold):
  // each curve below then reads its row in order, where reading the states
  // through `sorted` took a scattered byte per detection for every row.
  std::vector<uint8_t> by_score(AT * n);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* st = state.data() + sorted[i] * AT;
    for (int64_t at = 0; at < AT; ++at) by_score[at * n + i] = st[at];
  }
  // Counts as integers: the running sums were a chain of dependent double
  // additions, one per detection; the same whole numbers, exact either way,
  // become doubles only at the true positives.
  std::vector<int64_t> fp_at(n + 1), tp_pos(n + 1);
  std::vector<double> cs(n + 1), cr(n + 1), cp(n + 1);
  for (int64_t a = 0; a < A; ++a) {
    if (npig[a] == 0) continue;  // stays -1, as in pycocotools
    const double n_pos = static_cast<double>(npig[a]);
    for (int64_t t = 0; t < T; ++t) {
      const uint8_t* column = by_score.data() + (a * T + t) * n;
      for (int64_t m = 0; m < M; ++m) {
        const std::vector<int64_t>& pos = within[m];
        if (same_as[m] >= 0) {  // the same detections as a smaller limit: the same curve
          const int64_t m0 = same_as[m];
          out.recall[((t * K + k) * A + a) * M + m] = out.recall[((t * K + k) * A + a) * M + m0];
          for (int64_t r = 0; r < R; ++r) {
            const int64_t o = (((t * R + r) * K + k) * A + a) * M;
            out.precision[o + m] = out.precision[o + m0];
            out.scores[o + m] = out.scores[o + m0];
          }
          continue;
        }
        const int64_t nd = pos.size();
        // The j-th true positive has j + 1 true positives up to it, so only
        // the false positives before it and its position are kept.
        // Branch-free: every position writes slot c; a true positive keeps it.
        // A limit that keeps every detection reads the column in order.
        int64_t c = 0;
        auto compact = [&](auto position) {
          int64_t fp = 0;
          for (int64_t q = 0; q < nd; ++q) {
            const int64_t i = position(q);
            const uint8_t st = column[i];
            fp += st == kFalsePositive;
            fp_at[c] = fp;
            tp_pos[c] = i;
            c += st == kTruePositive;
          }
        };
        if (nd == n) {
          compact([](int64_t q) { return q; });
        } else {
          compact([&](int64_t q) { return pos[q]; });
        }
        for (int64_t j = 0; j < c; ++j) {
          const double tpj = static_cast<double>(j + 1), fpj = static_cast<double>(fp_at[j]);
          cr[j] = tpj / n_pos;
          cp[j] = tpj / (fpj + tpj + std::numeric_limits<double>::epsilon());  // np.spacing(1)
          cs[j] = score[tp_pos[j]];
        }
        // rc[-1], or 0 without detections
        out.recall[((t * K + k) * A + a) * M + m] = static_cast<double>(c) / n_pos;
        for (int64_t j = c - 1; j > 0; --j) {
          if (cp[j] > cp[j - 1]) cp[j - 1] = cp[j];
        }
        const double first_score = nd ? score[pos[0]] : 0.0;
        int64_t j = 0;
        for (int64_t r = 0; r < R; ++r) {
          const double thr = p.recall_thresholds[r];
          const int64_t o = (((t * R + r) * K + k) * A + a) * M + m;
          double q = 0, ss = 0;
          if (nd > 0 && thr <= 0) {
            q = c > 0 ? std::max(0.0, cp[0]) : 0.0;
            ss = first_score;
          } else if (nd > 0) {
            // Ascending thresholds (COCO's) move one cursor; others search.
            if (p.recall_ascending) {
              while (j < c && cr[j] < thr) ++j;
            } else {
              j = std::lower_bound(cr.begin(), cr.begin() + c, thr) - cr.begin();
            }
            if (j < c) {
              q = cp[j];
              ss = cs[j];
            }
          }
          out.precision[o] = q;
          out.scores[o] = ss;
        }
      }
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> coco_evaluate_cpu(
    const at::Tensor& det_boxes, const at::Tensor& det_scores, const at::Tensor& det_labels,
    const at::Tensor& det_areas, const at::Tensor& det_counts, const at::Tensor& gt_boxes, const at::Tensor& gt_labels,
    const at::Tensor& gt_crowd, const at::Tensor& gt_areas, const at::Tensor& gt_counts, const at::Tensor& classes,
    const at::Tensor& iou_thresholds, const at::Tensor& recall_thresholds, const at::Tensor& area_ranges,
    c10::IntArrayRef max_dets, const std::optional<at::Tensor>& det_masks, const std::optional<at::Tensor>& gt_masks,
    const std::optional<at::Tensor>& mask_words) {
  check_coco_evaluate_args(det_boxes, det_scores, det_labels, det_areas, det_counts, gt_boxes, gt_labels, gt_crowd,
                           gt_areas, gt_counts, area_ranges, max_dets, det_masks, gt_masks, mask_words, kOp);
  const int64_t D = det_scores.numel(), G = gt_labels.numel(), I = det_counts.numel();
  const bool segm = det_masks.has_value();
  Side det, gt;
  const at::Tensor db = det_boxes.to(at::kDouble).contiguous(), gb = gt_boxes.to(at::kDouble).contiguous();
  const at::Tensor ds = as_vector(det_scores, at::kDouble);
  const at::Tensor dl = as_vector(det_labels, at::kLong);
  const at::Tensor da = as_vector(det_areas, at::kDouble);
  const at::Tensor gl = as_vector(gt_labels, at::kLong);
  const at::Tensor gc = as_vector(gt_crowd, at::kByte);
  const at::Tensor ga = as_vector(gt_areas, at::kDouble);
  const at::Tensor cls = classes.to(at::kLong).contiguous();
  det.boxes = db.data_ptr<double>();
  det.scores = ds.data_ptr<double>();
  det.labels = dl.data_ptr<int64_t>();
  det.image_offset = offsets_of(det_counts, D, "det_counts");
  gt.boxes = gb.data_ptr<double>();
  gt.labels = gl.data_ptr<int64_t>();
  gt.image_offset = offsets_of(gt_counts, G, "gt_counts");
  const uint8_t* crowd = gc.data_ptr<uint8_t>();

  Params p;
  const at::Tensor it = iou_thresholds.to(at::kDouble).contiguous(), rt = recall_thresholds.to(at::kDouble).contiguous(),
                   ar = area_ranges.to(at::kDouble).contiguous();
  p.iou_thresholds.assign(it.data_ptr<double>(), it.data_ptr<double>() + it.numel());
  p.recall_thresholds.assign(rt.data_ptr<double>(), rt.data_ptr<double>() + rt.numel());
  for (int64_t a = 0; a < ar.size(0); ++a) {
    p.area_lo.push_back(ar.data_ptr<double>()[2 * a]);
    p.area_hi.push_back(ar.data_ptr<double>()[2 * a + 1]);
  }
  p.recall_ascending = std::is_sorted(p.recall_thresholds.begin(), p.recall_thresholds.end());
  p.max_dets.assign(max_dets.begin(), max_dets.end());
  p.max_det_last = *std::max_element(p.max_dets.begin(), p.max_dets.end());
  p.segm = segm;

  std::vector<int64_t> words;
  at::Tensor dm, gm;
  if (segm) {
    const at::Tensor mw = as_vector(*mask_words, at::kLong);
    words.assign(mw.data_ptr<int64_t>(), mw.data_ptr<int64_t>() + I);
    dm = det_masks->to(at::kLong).contiguous();
    gm = gt_masks->to(at::kLong).contiguous();
    for (auto [side, masks, name] : {std::tuple<Side*, const at::Tensor*, const char*>{&det, &dm, "det_masks"},
                                     std::tuple<Side*, const at::Tensor*, const char*>{&gt, &gm, "gt_masks"}}) {
      const int64_t n = side->image_offset.back();
      side->mask_offset.resize(n);
      side->mask_area.resize(n);
      int64_t off = 0;
      for (int64_t i = 0; i < I; ++i) {
        for (int64_t j = side->image_offset[i]; j < side->image_offset[i + 1]; ++j) {
          side->mask_offset[j] = off;
          off += words[i];
        }
      }
      TORCH_CHECK_VALUE(masks->numel() == off, "visionops.", kOp, ": ", name, " must hold ", off,
                        " words (mask_words per mask of each image), got ", masks->numel());
      side->masks = masks->data_ptr<int64_t>();
      for (int64_t i = 0; i < I; ++i) {
        for (int64_t j = side->image_offset[i]; j < side->image_offset[i + 1]; ++j) {
          side->mask_area[j] = popcount_words(side->masks + side->mask_offset[j], words[i]);
        }
      }
    }
  }

  // Areas: NaN stands for the box's w * h (as pycocotools' loadRes sets it)
  // or the mask's pixel count.
  for (auto [side, given, n] : {std::tuple<Side*, const double*, int64_t>{&det, da.data_ptr<double>(), D},
                                std::tuple<Side*, const double*, int64_t>{&gt, ga.data_ptr<double>(), G}}) {
    side->areas.resize(n);
    for (int64_t j = 0; j < n; ++j) {
      const double* b = side->boxes + 4 * j;
      side->areas[j] = !std::isnan(given[j]) ? given[j]
                       : segm                ? static_cast<double>(side->mask_area[j])
                                             : b[2] * b[3];
    }
  }

  // Group by class (classes sorted; a label outside them is not evaluated).
  const int64_t K = cls.numel();
  const int64_t* cp = cls.data_ptr<int64_t>();
  auto class_of = [&](int64_t label) -> int64_t {
    const int64_t* it2 = std::lower_bound(cp, cp + K, label);
    return (it2 != cp + K && *it2 == label) ? it2 - cp : -1;
  };
  std::vector<ClassMembers> members(K);
  for (int64_t i = 0; i < I; ++i) {
    for (int64_t j = det.image_offset[i]; j < det.image_offset[i + 1]; ++j) {
      const int64_t c = class_of(det.labels[j]);
      if (c < 0) continue;
      members[c].det_ids.push_back(j);
      members[c].det_image.push_back(i);
    }
    for (int64_t j = gt.image_offset[i]; j < gt.image_offset[i + 1]; ++j) {
      const int64_t c = class_of(gt.labels[j]);
      if (c < 0) continue;
      members[c].gt_ids.push_back(j);
      members[c].gt_image.push_back(i);
    }
  }

  const int64_t T = p.iou_thresholds.size(), R = p.recall_thresholds.size(), A = p.area_lo.size(),
                M = p.max_dets.size();
  auto opts = at::TensorOptions().dtype(at::kDouble);
  at::Tensor precision = at::full({T, R, K, A, M}, -1.0, opts);
  at::Tensor recall = at::full({T, K, A, M}, -1.0, opts);
  at::Tensor scores = at::full({T, R, K, A, M}, -1.0, opts);
  const Outputs out{precision.data_ptr<double>(), recall.data_ptr<double>(), scores.data_ptr<double>(), K};
  at::parallel_for(0, K, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) evaluate_class(k, members[k], det, gt, crowd, words, p, out);
  });
  return {precision, recall, scores};
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) { m.impl("coco_evaluate", &vo::coco_evaluate_cpu); }
