// CPU kernels of nms, batched_nms and padded_nms: exactly torchvision's
// greedy result, in O(N log N + N * local density) time and O(N) memory.
//
// Where each part is (its details are beside its code):
//   score order          nms/order.h: stable descending, NaN first, ties by index
//   the pair test        nms/math.h, shared with CUDA; float margins, then exact
//   greedy pass          GreedyNms below: forward suppression for segments of up
//                        to 4,096 boxes (nms/forward_simd.h), then a scan of the
//                        kept boxes (nms/scan_simd.h on AVX2 and AVX-512), then an index
//                        of them by size and centre
//   batched_nms          one greedy pass per class, classes in parallel, merged
//                        back into score order (batched_nms_by_class below)
//   padded_nms           images in parallel
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/checks.h"
#include "core/cpu_isa.h"
#include "core/dtypes.h"
#include "nms/args.h"
#include "nms/forward_simd.h"
#include "nms/math.h"
#include "nms/order.h"
#include "nms/scan_simd.h"

namespace vo {
namespace {

using nms_order::BucketSorter;
using nms_order::descending_key;
using nms_order::group_by_class;
using nms_order::radix_sort;
using nms_order::score_order;

// Box i of an [N, 4] input, with its area, in the accumulation type T.
template <typename T, typename scalar_t>
NmsBox<T> input_box(const scalar_t* bp, int64_t i) {
  const scalar_t* q = bp + 4 * i;
  return make_nms_box<T>(static_cast<T>(q[0]), static_cast<T>(q[1]), static_cast<T>(q[2]), static_cast<T>(q[3]));
}

// Until this many boxes are kept, one list of them, scanned a vector at a
// time, beats the index.
constexpr int32_t kScanKeptMax = 1024;
// Segments of up to this many boxes start by forward suppression (AVX2 or AVX-512;
// a sweep costs the segment's length per kept box).
constexpr int64_t kForwardMax = 4096;
// A candidate that would visit more cells than this in one level scans that
// level's list of kept boxes instead (only with tiny thresholds).
constexpr int64_t kMaxCellsPerQuery = 64;

// The float margins of the scans' division-free test (see any_suppresses):
// the midpoint less and more 2^-20, which settle almost every pair in float.
// They hold for midpoints of at least 2^-20 (below, the scans test exactly).
struct FloatMargins {
  float maybe, above;
};
inline bool has_float_margins(const NmsPredicate& p) { return p.midpoint >= 0x1p-20; }
inline FloatMargins float_margins(const NmsPredicate& p) {
  return {static_cast<float>(p.midpoint * (1 - 0x1p-20)), static_cast<float>(p.midpoint * (1 + 0x1p-20))};
}

// Whether one of `size` boxes, stored as fields of `cap` values each from
// f, suppresses b: kLanes boxes at a time, the lanes ORed without a branch so
// the inner loop vectorizes (compiled per instruction set: core/cpu_isa.h).
// Lanes past `size` hold NaN boxes, which suppress nothing; cap is a
// multiple of kLanes. kLanes may span several vectors: the OR across lanes
// (a chain of shuffles) then runs once per several vectors.
//
// float: the exact test compares in double, which halves the vector width.
// A float test with a margin of 2^-20 below the midpoint ("maybe above")
// rules out almost every group of lanes at once; a group with a lane that
// may suppress is redone with the margin above it ("surely above"), and
// only a group with a lane between the two margins is redone exactly. The
// margin covers the roundings of the float product (2^-24 each), so both
// settled answers are exact.
template <typename T, int64_t kLanes>
bool any_suppresses(const T* __restrict__ f, int64_t cap, int64_t size, NmsBox<T> b,
                                        NmsPredicate p) {
  // The predicate's constants as plain scalars, hoisted out of the loop.
  const double midpoint = p.midpoint, threshold = p.threshold;
  const int tie = static_cast<int>(p.tie_suppresses);
  const auto exact = [&](int64_t j) __attribute__((always_inline)) {
    const NmsBox<T> a = soa_nms_box(f, cap, j);
    T inter, uni;
    nms_inter_union(a, b, inter, uni);
    if constexpr (std::is_same_v<T, float>) {
      return nms_quotient_exceeds(inter, uni, midpoint, tie);
    } else {
      return nms_quotient_exceeds(inter, uni, threshold);
    }
  };
  if constexpr (std::is_same_v<T, float>) {
    // Every product stays a normal float (uni >= b's area), so the margins
    // hold; a product that overflows makes both tests false, as the exact
    // one is (only for t > 1, where nothing is suppressed).
    if (has_float_margins(p) && b.area >= 0x1p-80f) {
      const auto [maybe_m, above_m] = float_margins(p);
      // (always_inline: a call per lane would not vectorize)
      const auto exceeds = [&](int64_t j, float m) __attribute__((always_inline)) {
        const NmsBox<T> a = soa_nms_box(f, cap, j);
        T inter, uni;
        nms_inter_union(a, b, inter, uni);
        return static_cast<int>(inter >= m * uni);  // NaN lanes: 0
      };
      for (int64_t j0 = 0; j0 < size; j0 += kLanes) {
        int maybe = 0;
        for (int64_t j = j0; j < j0 + kLanes; ++j) maybe |= exceeds(j, maybe_m);
        if (!maybe) continue;
        int above = 0;
        for (int64_t j = j0; j < j0 + kLanes; ++j) above |= exceeds(j, above_m);
        if (above) return true;
        for (int64_t j = j0; j < j0 + kLanes; ++j)
          if (exact(j)) return true;
      }
      return false;
    }
  }
  for (int64_t j0 = 0; j0 < size; j0 += kLanes) {
    int any = 0;
    for (int64_t j = j0; j < j0 + kLanes; ++j) any |= exact(j);
    if (any) return true;
  }
  return false;
}

// Greedy NMS of one segment: each box, in score order, is kept unless a
// kept box before it suppresses it. Writes kept positions, in order, and
// returns how many (at most max_keep). The boxes come in score order (run)
// or in any order with their score keys (run_keyed).
//
// Three ways, all with the same per-pair test and result. Segments of up to
// kForwardMax boxes (a small nms, a class of a batched_nms) start by
// forward suppression on AVX2 and AVX-512 machines: each kept box strikes the later
// candidates it suppresses, the fastest way where most are struck. Then
// (or where forward suppression does not pay) each candidate scans one list
// of the kept boxes, and past kScanKeptMax kept boxes an index of them:
// the kept boxes are indexed by size and place. IoU > t >= 0 needs the
// longer sides of the two boxes to be within a factor 1/t of each other
// (IoU is at most the ratio of the widths, and of the heights), and their
// centres to be close: the intersection's width iw exceeds t times either
// width (IoU <= iw h / (w h) for the box of width w and height h), and the
// centres are at most (w1 + w2) / 2 - iw apart, so less than
// w * max(1 - t, 1 / (2 t) - 1 / 2) from the candidate's centre, w its
// width (and the same in y; at t = 0, (w1 + w2) / 2). So a box of longer
// side in [2^l, 2^(l+1)) belongs to level l, a grid of cells 2^(l+1)
// wide, in the cell of its centre; a candidate looks only at the levels
// its size allows, and there only at the cells where a suppressor's centre
// can lie. Each level's grid covers the boxes' extent and holds at most a
// few cells per box of that level (cells grow where coordinates spread
// far), so memory stays O(N).
template <typename T>
class GreedyNms {
 public:
  // The segment's boxes, in score order; keep gets their positions.
  int64_t run(const NmsBox<T>* boxes, int64_t n, const NmsPredicate& p, int64_t max_keep, int64_t* keep) {
    return greedy(boxes, nullptr, n, p, max_keep, keep);
  }

  // The segment's boxes in any order, with keys whose ascending order,
  // ties by position, is their score order; keep gets their positions, in
  // score order.
  int64_t run_keyed(const NmsBox<T>* boxes, const uint32_t* key, int64_t n, const NmsPredicate& p,
                    int64_t max_keep, int64_t* keep) {
    return greedy(boxes, key, n, p, max_keep, keep);
  }

 private:
  // key: nullptr when the boxes are in score order.
  int64_t greedy(const NmsBox<T>* boxes, const uint32_t* key, int64_t n, const NmsPredicate& p, int64_t max_keep,
                 int64_t* keep) {
    if (n == 0 || max_keep == 0) return 0;
#ifdef VO_HAVE_NMS_SCAN_SIMD
    if constexpr (std::is_same_v<T, float>) {
      if (p.division_free && n <= kForwardMax && simd_available() && has_float_margins(p))
        return forward(boxes, key, n, p, max_keep, keep);
    }
#endif
    const uint32_t* perm = nullptr;
    if (key) {  // the other ways read the candidates in score order
      perm = sorter_.order(key, n);
      permuted_.resize(n);
      for (int64_t j = 0; j < n; ++j) permuted_[j] = boxes[perm[j]];
      boxes = permuted_.data();
    }
    // The index needs t >= 0 (only overlapping boxes suppress).
    const int64_t kept =
        p.division_free ? run_scan(boxes, n, p, max_keep, keep) : scan_all(boxes, n, p, max_keep, keep);
    if (perm) {
      for (int64_t k = 0; k < kept; ++k) keep[k] = perm[keep[k]];
    }
    return kept;
  }

  // run() for t >= 0 by scans of the kept boxes: a list, then the index.
  int64_t run_scan(const NmsBox<T>* boxes, int64_t n, const NmsPredicate& p, int64_t max_keep, int64_t* keep) {
    if (n == 0 || max_keep == 0) return 0;
    // Start with one list of kept boxes; move to the index once that list
    // grows long enough to make the index pay (the index's set-up is the
    // cost of small and clustered inputs, its pruning the gain on crowded ones).
    arena_.clear();
    Cell all;
    int64_t kept = 0, i = 0;
    if (!list_pass(boxes, n, i, p, max_keep, keep, kept, all, kScanKeptMax)) return kept;
    if (i == n || !build(boxes, n)) {  // finish with the list
      list_pass(boxes, n, i, p, max_keep, keep, kept, all, std::numeric_limits<int32_t>::max());
      return kept;
    }
    for (int64_t k = 0; k < kept; ++k) {
      const NmsBox<T>& b = boxes[keep[k]];
      if (nms_box_is_proper(b)) insert(b, static_cast<int32_t>(keep[k]), level_of(longer_side(b)));
    }
    const double t = p.threshold;
    // (t less 1e-4 of itself: float IoU is within 1e-6 of the real one)
    const double tw = t * (1 - 1e-4);
    reach_ = tw > 0 ? std::max(1 - tw, 0.5 / tw - 0.5) : INFINITY;
    for (; i < n; ++i) {
      const NmsBox<T>& b = boxes[i];
      if (!nms_box_is_proper(b)) {  // can neither suppress nor be suppressed
        keep[kept++] = i;
        if (kept == max_keep) break;
        continue;
      }
      // Levels of the sizes that could suppress b: longer side in (t M, M / t),
      // widened slightly against rounding.
      const double side = longer_side(b);
      const int own = level_of(side);
      const int l0 = t > 0 ? std::max(level_of(side * tw), lo_) : lo_;
      const int l1 = t > 0 ? std::min(level_of(side / tw), hi_) : hi_;
      if (!suppressed(boxes, b, p, std::clamp(own, l0, l1), l0, l1)) {
        keep[kept++] = i;
        if (kept == max_keep) break;
        insert(b, static_cast<int32_t>(i), own);
      }
    }
    return kept;
  }

  static constexpr int kMinLevel = -64, kMaxLevel = 63;
  static constexpr int64_t kLanes = 16;  // one 16-lane vector of floats (core/simd.h)

  // Kept boxes of one cell, as a structure of arrays in the arena: field f
  // of box j at arena[offset + f * cap + j]. Capacities are multiples of
  // kLanes and the unused lanes hold NaN boxes, which suppress nothing, so
  // scans run in whole vectors.
  struct Cell {
    int64_t offset = -1;
    int32_t size = 0, cap = 0;
  };

  struct Level {
    double inv_cell = 0;  // 1 / cell width
    int64_t ncx = 0, ncy = 0;
    std::vector<Cell> cells;     // ncx * ncy
    std::vector<int32_t> boxes;  // every kept box of the level
    int64_t count = 0;           // boxes of this size in the segment
  };

  static double longer_side(const NmsBox<T>& b) {
    return std::max(static_cast<double>(b.x2) - b.x1, static_cast<double>(b.y2) - b.y1);
  }

  // floor(log2(side)), clamped, from the bits of the double (no libm call:
  // this runs for every candidate).
  static int level_of(double side) {
    uint64_t bits;
    std::memcpy(&bits, &side, sizeof(bits));
    const int e = static_cast<int>((bits >> 52) & 0x7FF) - 1023;  // side in [2^e, 2^(e+1)) when normal
    return std::clamp(e, kMinLevel, kMaxLevel);
  }

  // floor(v) for |v| < 2^62, without a libm call on baseline x86-64.
  static int64_t floor_to_int(double v) {
    const int64_t t = static_cast<int64_t>(v);
    return t - (static_cast<double>(t) > v);
  }

  // Reference order: compare with every kept box, in order of keeping.
  int64_t scan_all(const NmsBox<T>* boxes, int64_t n, const NmsPredicate& p, int64_t max_keep, int64_t* keep) {
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      bool sup = false;
      for (int64_t k = 0; k < kept && !sup; ++k) sup = nms_suppresses(boxes[keep[k]], boxes[i], p);
      if (!sup) {
        keep[kept++] = i;
        if (kept == max_keep) break;
      }
    }
    return kept;
  }

  // Sizes the grids of the levels present. False when no box is proper.
  bool build(const NmsBox<T>* boxes, int64_t n) {
    for (int l = lo_; l <= hi_; ++l) {  // keep the vectors' storage for the next segment
      Level& lv = levels_[l - kMinLevel];
      lv.boxes.clear();
      lv.count = 0;
      lv.ncx = lv.ncy = 0;
    }
    lo_ = kMaxLevel + 1;
    hi_ = kMinLevel - 1;
    double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
    for (int64_t i = 0; i < n; ++i) {
      const NmsBox<T>& b = boxes[i];
      if (!nms_box_is_proper(b)) continue;
      x0 = std::min<double>(x0, b.x1);
      y0 = std::min<double>(y0, b.y1);
      x1 = std::max<double>(x1, b.x2);
      y1 = std::max<double>(y1, b.y2);
      const int l = level_of(longer_side(b));
      ++levels_[l - kMinLevel].count;
      lo_ = std::min(lo_, l);
      hi_ = std::max(hi_, l);
    }
    if (lo_ > hi_) return false;
    origin_x_ = x0;
    origin_y_ = y0;
    for (int l = lo_; l <= hi_; ++l) {
      Level& lv = levels_[l - kMinLevel];
      if (lv.count == 0) continue;
      double cellw = std::ldexp(1.0, l + 1);
      const double budget = 8.0 * static_cast<double>(lv.count) + 64.0;
      while (((x1 - x0) / cellw + 1) * ((y1 - y0) / cellw + 1) > budget) cellw *= 2;
      lv.inv_cell = 1.0 / cellw;
      lv.ncx = static_cast<int64_t>((x1 - x0) * lv.inv_cell) + 1;
      lv.ncy = static_cast<int64_t>((y1 - y0) * lv.inv_cell) + 1;
      lv.cells.assign(static_cast<size_t>(lv.ncx * lv.ncy), Cell{});
    }
    arena_.clear();
    return true;
  }

  // Monotone and clamped, so two boxes that overlap share a cell.
  static int64_t cell(double v, double origin, double inv_cell, int64_t ncells) {
    const double c = (v - origin) * inv_cell;
    return c < 0 ? 0 : (c >= static_cast<double>(ncells) ? ncells - 1 : floor_to_int(c));
  }

  // Levels from the candidate's own outwards, and in each level the cell
  // under its centre first: a suppressor, when there is one, is most often
  // there, and the search stops at the first.
  bool suppressed(const NmsBox<T>* boxes, const NmsBox<T>& b, const NmsPredicate& p, int own, int l0,
                  int l1) const {
    const int reach = std::max(own - l0, l1 - own);
    for (int d = 0; d <= reach; ++d) {
      if (own - d >= l0 && level_suppresses(boxes, b, p, own - d)) return true;
      if (d > 0 && own + d <= l1 && level_suppresses(boxes, b, p, own + d)) return true;
    }
    return false;
  }

  bool level_suppresses(const NmsBox<T>* boxes, const NmsBox<T>& b, const NmsPredicate& p, int l) const {
    const Level& lv = levels_[l - kMinLevel];
    if (lv.boxes.empty()) return false;
    // How far a suppressor's centre can be (see above; a box of level l is
    // less than 2^(l+1) wide, but the top level is open), widened by 1e-3
    // and more than the roundings of the centres.
    const double mx = (static_cast<double>(b.x1) + b.x2) * 0.5, my = (static_cast<double>(b.y1) + b.y2) * 0.5;
    const double w = static_cast<double>(b.x2) - b.x1, h = static_cast<double>(b.y2) - b.y1;
    const double most = l == kMaxLevel ? INFINITY : std::ldexp(1.0, l + 1);
    const double rx = std::min(w * reach_, 0.5 * (w + most)) * 1.001 + 1e-9 * std::abs(mx);
    const double ry = std::min(h * reach_, 0.5 * (h + most)) * 1.001 + 1e-9 * std::abs(my);
    const int64_t cx0 = cell(mx - rx, origin_x_, lv.inv_cell, lv.ncx);
    const int64_t cx1 = cell(mx + rx, origin_x_, lv.inv_cell, lv.ncx);
    const int64_t cy0 = cell(my - ry, origin_y_, lv.inv_cell, lv.ncy);
    const int64_t cy1 = cell(my + ry, origin_y_, lv.inv_cell, lv.ncy);
    if ((cx1 - cx0 + 1) * (cy1 - cy0 + 1) > kMaxCellsPerQuery) {
      for (int32_t k : lv.boxes) {
        if (nms_suppresses(boxes[k], b, p)) return true;
      }
      return false;
    }
    const int64_t ccx = cell(mx, origin_x_, lv.inv_cell, lv.ncx), ccy = cell(my, origin_y_, lv.inv_cell, lv.ncy);
    if (cell_suppresses(lv.cells[ccy * lv.ncx + ccx], b, p)) return true;
    for (int64_t cy = cy0; cy <= cy1; ++cy) {
      for (int64_t cx = cx0; cx <= cx1; ++cx) {
        if ((cx != ccx || cy != ccy) && cell_suppresses(lv.cells[cy * lv.ncx + cx], b, p)) return true;
      }
    }
    return false;
  }

#ifdef VO_HAVE_NMS_SCAN_SIMD
  // forward_nms_simd over a copy of the segment as a structure of arrays
  // (key: nullptr when the boxes are in score order); where it stops, the
  // live rest goes to run_scan in score order.
  int64_t forward(const NmsBox<float>* boxes, const uint32_t* key, int64_t n, const NmsPredicate& p,
                  int64_t max_keep, int64_t* keep) {
    const int64_t cap = (n + 15) / 16 * 16;
    fwd_.resize(static_cast<size_t>(5 * cap));
    if (key) fwd_key_.resize(static_cast<size_t>(cap));
    fwd_pos_.resize(static_cast<size_t>(cap));
    fwd_live_.assign(static_cast<size_t>(cap / 16), uint16_t(0xFFFF));
    if (n % 16) fwd_live_.back() = static_cast<uint16_t>((1u << (n % 16)) - 1);
    fwd_undecided_.resize(static_cast<size_t>(cap / 16));
    const size_t wcap = static_cast<size_t>((cap / 16 + 15) / 16 * 16);
    if (key) {
      fwd_bounds_.resize(4 * wcap);
      fwd_least_.resize(wcap);
    }
    float* f = fwd_.data();
    for (int64_t j = 0; j < n; ++j) {
      const NmsBox<float>& b = boxes[j];
      f[j] = b.x1;
      f[cap + j] = b.y1;
      f[2 * cap + j] = b.x2;
      f[3 * cap + j] = b.y2;
      f[4 * cap + j] = b.area;
      fwd_pos_[j] = static_cast<int32_t>(j);
    }
    if (key) std::copy(key, key + n, fwd_key_.data());
    for (int64_t j = n; j < cap; ++j) {  // lanes no bit marks live: any values, read as whole vectors
      for (int field = 0; field < 5; ++field) f[field * cap + j] = 0.0f;
      if (key) fwd_key_[j] = 0;
      fwd_pos_[j] = 0;
    }
    int64_t rest;
    const FloatMargins m = float_margins(p);
    int64_t kept = 0;
    with_simd([&](auto s) {
      kept = forward_nms_simd<decltype(s)>(
          f, key ? fwd_key_.data() : nullptr, fwd_pos_.data(), cap, n, m.maybe, m.above, max_keep, keep,
          fwd_live_.data(), fwd_undecided_.data(), key ? fwd_bounds_.data() : nullptr,
          key ? fwd_least_.data() : nullptr,
          [&](int64_t j, const NmsBox<float>& kept_box) { return nms_suppresses_division_free(kept_box, boxes[j], p); },
          &rest);
    });
    if (rest == 0) return kept;
    // The live rest (in position order) in score order, against the boxes
    // kept from here on.
    const uint32_t* order = key ? sorter_.order(fwd_key_.data(), rest) : nullptr;
    permuted_.resize(rest);
    rest_pos_.resize(rest);
    for (int64_t r = 0; r < rest; ++r) {
      const int32_t at = fwd_pos_[order ? order[r] : r];
      permuted_[r] = boxes[at];
      rest_pos_[r] = at;
    }
    const int64_t more = run_scan(permuted_.data(), rest, p, max_keep - kept, keep + kept);
    for (int64_t k = 0; k < more; ++k) keep[kept + k] = rest_pos_[keep[kept + k]];
    return kept + more;
  }
#endif

  // The greedy pass against the one list `all`, from candidate i on, until
  // the list holds `limit` boxes or the candidates run out. False once
  // max_keep boxes are kept.
  bool list_pass(const NmsBox<T>* boxes, int64_t n, int64_t& i, const NmsPredicate& p, int64_t max_keep,
                 int64_t* keep, int64_t& kept, Cell& all, int32_t limit) {
    if (all.size >= limit) return true;
    bool more = true;
    const auto on_keep = [&](int64_t k) {
      keep[kept++] = k;
      if (kept == max_keep) return more = false;
      push(all, boxes[k]);
      return all.size < limit;
    };
#ifdef VO_HAVE_NMS_SCAN_SIMD
    if constexpr (std::is_same_v<T, float>) {
      if (simd_available() && has_float_margins(p)) {
        const FloatMargins m = float_margins(p);
        with_simd([&](auto s) {
          i = greedy_pass_simd<decltype(s)>(
              boxes, i, n, m.maybe, m.above,
              [&] { return NmsSoaView{all.size ? arena_.data() + all.offset : nullptr, all.cap, all.size}; },
              [&](int64_t k) { return cell_suppresses(all, boxes[k], p); },
              [&](const NmsSoaView& v, int64_t j, const NmsBox<float>& b) {
                return nms_suppresses_division_free(soa_nms_box(v.f, v.cap, j), b, p);
              },
              on_keep);
        });
        return more;
      }
    }
#endif
    for (; i < n;) {
      const int64_t k = i++;
      if (!cell_suppresses(all, boxes[k], p) && !on_keep(k)) break;
    }
    return more;
  }

  bool cell_suppresses(const Cell& c, const NmsBox<T>& b, const NmsPredicate& p) const {
    if (c.size == 0) return false;
#ifdef VO_HAVE_NMS_SCAN_SIMD
    if constexpr (std::is_same_v<T, float>) {
      // any_suppresses' float margins, under the same conditions.
      if (simd_available() && has_float_margins(p) && b.area >= 0x1p-80f) {
        const NmsSoaView v{arena_.data() + c.offset, c.cap, c.size};
        const FloatMargins m = float_margins(p);
        auto exact = [&](int64_t j) { return nms_suppresses_division_free(soa_nms_box(v.f, v.cap, j), b, p); };
        bool suppressed = false;
        with_simd([&](auto s) { suppressed = scan_simd<decltype(s)>(v, b, m.maybe, m.above, exact); });
        return suppressed;
      }
    }
#endif
    // Most cells of a sparse index hold a box or two: half a vector is
    // enough. Long lists go several vectors at a time (capacities are
    // kLanes times a power of two, so a multiple of the group).
    const T* f = arena_.data() + c.offset;
    bool suppressed = false;
    with_cpu_isa([&] {
      if (c.size <= kLanes / 2) {
        suppressed = any_suppresses<T, kLanes / 2>(f, c.cap, c.size, b, p);
      } else if (c.cap == kLanes) {
        suppressed = any_suppresses<T, kLanes>(f, c.cap, c.size, b, p);
      } else if (c.cap == 2 * kLanes) {
        suppressed = any_suppresses<T, 2 * kLanes>(f, c.cap, c.size, b, p);
      } else {
        suppressed = any_suppresses<T, 4 * kLanes>(f, c.cap, c.size, b, p);
      }
    });
    return suppressed;
  }

  void insert(const NmsBox<T>& b, int32_t box, int l) {
    Level& lv = levels_[l - kMinLevel];
    lv.boxes.push_back(box);
    const double mx = (static_cast<double>(b.x1) + b.x2) * 0.5, my = (static_cast<double>(b.y1) + b.y2) * 0.5;
    push(lv.cells[cell(my, origin_y_, lv.inv_cell, lv.ncy) * lv.ncx + cell(mx, origin_x_, lv.inv_cell, lv.ncx)], b);
  }

  void push(Cell& c, const NmsBox<T>& b) {
    if (c.size == c.cap) {  // move to a region twice as large at the arena's end
      const int32_t cap = c.cap ? 2 * c.cap : static_cast<int32_t>(kLanes);
      const int64_t offset = static_cast<int64_t>(arena_.size());
      arena_.resize(arena_.size() + 5 * static_cast<size_t>(cap), std::numeric_limits<T>::quiet_NaN());
      for (int k = 0; k < 5; ++k) {
        for (int32_t j = 0; j < c.size; ++j) arena_[offset + k * cap + j] = arena_[c.offset + k * c.cap + j];
      }
      c.offset = offset;
      c.cap = cap;
    }
    T* f = arena_.data() + c.offset;
    const int32_t j = c.size++;
    f[j] = b.x1;
    f[c.cap + j] = b.y1;
    f[2 * c.cap + j] = b.x2;
    f[3 * c.cap + j] = b.y2;
    f[4 * c.cap + j] = b.area;
  }

  std::vector<float> fwd_;          // forward(): the segment's fields
  std::vector<uint32_t> fwd_key_;   // their keys
  std::vector<int32_t> fwd_pos_;    // their positions
  std::vector<uint16_t> fwd_live_;  // and live bits
  std::vector<uint32_t> fwd_undecided_;  // forward_nms_simd's scratch
  std::vector<float> fwd_bounds_;        // and its words' bounds
  std::vector<uint32_t> fwd_least_;      // and least keys
  std::vector<NmsBox<T>> permuted_;  // greedy(), forward(): the candidates in score order
  BucketSorter sorter_;              // and their order
  std::vector<int64_t> rest_pos_;    // forward(): their positions
  double origin_x_ = 0, origin_y_ = 0;
  double reach_ = 0;  // run_scan(): a suppressor's centre is less than reach_ times the width away
  int lo_ = kMaxLevel + 1, hi_ = kMinLevel - 1;
  Level levels_[kMaxLevel - kMinLevel + 1];
  std::vector<T> arena_;
};

// batched_nms deals boxes into per-class buckets when the classes average
// at least this many boxes (below, a global sort and a gather are faster;
// above, forward suppression in input order saves both).
constexpr int64_t kMinClassBucket = 32;

// The input in kWays contiguous parts walked side by side: f(way, i) for
// i = way * part + step. Counting or dealing runs of one class (a
// detector's copies of one object) then updates kWays counters in turn,
// not one counter in a chain of stores and reloads.
constexpr int64_t kWays = 4;
template <typename F>
inline void interleaved(int64_t n, F f) {
  const int64_t part = (n + kWays - 1) / kWays;
  for (int64_t step = 0; step < part; ++step) {
    for (int64_t way = 0; way < kWays; ++way) {
      const int64_t i = way * part + step;
      if (i < n) f(way, i);
    }
  }
}

// batched_nms for float, half and bfloat16 scores with class ids in a
// compact range: the boxes are dealt into per-class buckets in one pass in
// input order (box, score key and index together: no gather from all over
// the input), each class runs on its own thread (forward suppression
// needs no sort; the other ways sort the class in cache), and the kept
// boxes are merged by one radix sort of their keys (taken in input order,
// so tied scores keep index order). Nothing when the path does not apply
// (float64 scores, scattered class ids, small classes).
template <typename scalar_t>
std::optional<at::Tensor> batched_nms_by_class(const at::Tensor& b, const at::Tensor& s, const int64_t* classes,
                                               const NmsPredicate& pred, std::optional<double> score_threshold,
                                               std::optional<int64_t> max_output) {
  using T = box_acc_t<scalar_t>;
  if constexpr (!std::is_same_v<at::opmath_type<scalar_t>, float>) {
    return std::nullopt;
  } else {
    const int64_t n = b.size(0);
    const scalar_t* sp = s.data_ptr<scalar_t>();
    const scalar_t* bp = b.data_ptr<scalar_t>();
    const auto passes = [&](int64_t i) {
      return nms_order::passes_score_threshold(static_cast<float>(sp[i]), score_threshold);
    };
    int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min(), m = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (!passes(i)) continue;
      lo = std::min(lo, classes[i]);
      hi = std::max(hi, classes[i]);
      ++m;
    }
    if (m == 0) return at::empty({0}, b.options().dtype(at::kLong));
    const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
    if (!nms_order::class_range_is_compact(range, m)) return std::nullopt;
    // Boxes per class in each way; every way's first position in a class.
    const int64_t classes_n = static_cast<int64_t>(range) + 1;
    std::vector<int64_t> cursor(kWays * classes_n, 0);
    interleaved(n, [&](int64_t way, int64_t i) {
      if (passes(i)) ++cursor[way * classes_n + (classes[i] - lo)];
    });
    std::vector<int64_t> count(classes_n + 1, 0), seg;
    for (int64_t c = 0; c < classes_n; ++c) {
      for (int64_t way = 0; way < kWays; ++way) count[c + 1] += cursor[way * classes_n + c];
    }
    nms_order::class_starts(count, range, seg);
    seg.push_back(m);
    // Small classes: the per-class fixed costs outweigh the sort and the
    // gather they save; one global sort does better.
    if (m < kMinClassBucket * (static_cast<int64_t>(seg.size()) - 1)) return std::nullopt;
    for (int64_t c = 0; c < classes_n; ++c) {
      int64_t at = count[c];
      for (int64_t way = 0; way < kWays; ++way) {
        const int64_t here = cursor[way * classes_n + c];
        cursor[way * classes_n + c] = at;
        at += here;
      }
    }
    // (Uninitialized: every element is written below.)
    const std::unique_ptr<uint32_t[]> key(new uint32_t[m]);
    const std::unique_ptr<int64_t[]> src(new int64_t[m]);
    const std::unique_ptr<NmsBox<T>[]> box(new NmsBox<T>[m]);
    interleaved(n, [&](int64_t way, int64_t i) {
      if (!passes(i)) return;
      const int64_t p = cursor[way * classes_n + (classes[i] - lo)]++;
      key[p] = descending_key(static_cast<float>(sp[i]));
      src[p] = i;
      box[p] = input_box<T>(bp, i);
    });

    const int64_t max_keep = max_output ? *max_output : m;
    const int64_t nseg = static_cast<int64_t>(seg.size()) - 1;
    // Each class's kept positions in its own range of keep_pos; marked by
    // input index after the threads join (marks from two threads at once
    // would share cache lines: the classes are interleaved in the input).
    const std::unique_ptr<int64_t[]> keep_pos(new int64_t[m]);
    std::vector<int64_t> kept_n(nseg);
    at::parallel_for(0, nseg, 1, [&](int64_t c0, int64_t c1) {
      GreedyNms<T> greedy;  // scratch reused across this thread's classes
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t s0 = seg[c];
        kept_n[c] = greedy.run_keyed(box.get() + s0, key.get() + s0, seg[c + 1] - s0, pred, max_keep,
                                     keep_pos.get() + s0);
      }
    });
    std::vector<uint8_t> kept(n, 0);  // by input index
    for (int64_t c = 0; c < nseg; ++c) {
      for (int64_t j = seg[c]; j < seg[c] + kept_n[c]; ++j) kept[src[seg[c] + keep_pos[j]]] = 1;
    }

    // Kept boxes in descending score, ties by index, across classes: their
    // indices in input order (no branch: which boxes are kept is random),
    // then their keys, sorted.
    std::vector<int64_t> out_idx(n + 1);
    int64_t w = 0;
    for (int64_t i = 0; i < n; ++i) {
      out_idx[w] = i;
      w += kept[i];
    }
    out_idx.resize(w);
    std::vector<uint32_t> kept_keys(w);
    for (int64_t k = 0; k < w; ++k) kept_keys[k] = descending_key(static_cast<float>(sp[out_idx[k]]));
    radix_sort(kept_keys, out_idx);
    const int64_t count_out = std::min<int64_t>(w, max_keep);
    at::Tensor out = at::empty({count_out}, b.options().dtype(at::kLong));
    std::copy(out_idx.begin(), out_idx.begin() + count_out, out.data_ptr<int64_t>());
    return out;
  }
}

// nms of up to kForwardMax float, half or bfloat16 boxes where forward
// suppression runs (AVX2 or AVX-512, t > 0): the boxes stay in input order with
// their score keys, and forward suppression takes them in score order by
// itself; no sort and no gather, which are most of the work at this size.
// Nothing where it does not apply.
template <typename scalar_t>
std::optional<at::Tensor> nms_small_unsorted(const at::Tensor& b, const at::Tensor& s, const NmsPredicate& pred,
                                             std::optional<double> score_threshold,
                                             std::optional<int64_t> max_output) {
#ifdef VO_HAVE_NMS_SCAN_SIMD
  if constexpr (std::is_same_v<at::opmath_type<scalar_t>, float>) {
    const int64_t n = b.size(0);
    if (n > kForwardMax || !pred.division_free || !has_float_margins(pred) || !simd_available()) return std::nullopt;
    const scalar_t* sp = s.data_ptr<scalar_t>();
    const scalar_t* bp = b.data_ptr<scalar_t>();
    std::vector<uint32_t> key(n);
    std::vector<int64_t> src(n), keep_pos(n);
    std::vector<NmsBox<float>> box(n);
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float score = static_cast<float>(sp[i]);
      if (!nms_order::passes_score_threshold(score, score_threshold)) continue;
      key[m] = descending_key(score);
      src[m] = i;
      box[m++] = input_box<float>(bp, i);
    }
    GreedyNms<float> greedy;
    const int64_t kept = greedy.run_keyed(box.data(), key.data(), m, pred, max_output ? *max_output : m,
                                          keep_pos.data());
    at::Tensor out = at::empty({kept}, b.options().dtype(at::kLong));
    int64_t* o = out.data_ptr<int64_t>();
    for (int64_t k = 0; k < kept; ++k) o[k] = src[keep_pos[k]];
    return out;
  }
#endif
  return std::nullopt;
}

// The NMS of every class segment, merged back into score order.
template <typename scalar_t>
at::Tensor nms_impl(const at::Tensor& boxes, const at::Tensor& scores, const int64_t* classes, double iou_threshold,
                    std::optional<double> score_threshold, std::optional<int64_t> max_output) {
  using T = box_acc_t<scalar_t>;
  const int64_t n = boxes.size(0);
  const at::Tensor b = boxes.contiguous();
  const at::Tensor s = scores.contiguous();
  const NmsPredicate pred = make_nms_predicate(iou_threshold);
  if (classes) {
    if (auto out = batched_nms_by_class<scalar_t>(b, s, classes, pred, score_threshold, max_output)) return *out;
  } else if (auto out = nms_small_unsorted<scalar_t>(b, s, pred, score_threshold, max_output)) {
    return *out;
  }
  const std::vector<int64_t> order = score_order(s.data_ptr<scalar_t>(), n, score_threshold);
  const int64_t m = static_cast<int64_t>(order.size());
  const int64_t max_keep = max_output ? *max_output : m;

  // rank_of[p]: the score rank of the box at sorted position p. Without
  // classes the sorted positions are the ranks; with classes they are
  // regrouped by class, each class still in score order.
  std::vector<int64_t> rank_of, seg;
  if (classes) {
    group_by_class(order, classes, rank_of, seg);
  } else {
    rank_of.resize(m);
    for (int64_t k = 0; k < m; ++k) rank_of[k] = k;
    seg = {0, m};
  }
  const int64_t nseg = static_cast<int64_t>(seg.size()) - 1;

  // Boxes gathered in sorted order, so each greedy pass reads contiguously.
  // (A gather from all over the input: the loads are issued ahead.)
  std::vector<NmsBox<T>> sorted(m);
  const scalar_t* bp = b.data_ptr<scalar_t>();
  at::parallel_for(0, m, 4096, [&](int64_t lo, int64_t hi) {
    constexpr int64_t kAhead = 16;
    for (int64_t k = lo; k < hi; ++k) {
      if (k + kAhead < hi) __builtin_prefetch(bp + 4 * order[rank_of[k + kAhead]]);
      sorted[k] = input_box<T>(bp, order[rank_of[k]]);
    }
  });

  // Each segment's kept positions in its own range of keep_pos, marked by
  // rank after the threads join (see batched_nms_by_class).
  std::vector<int64_t> keep_pos(m), kept_n(nseg);
  at::parallel_for(0, nseg, 1, [&](int64_t lo, int64_t hi) {
    GreedyNms<T> greedy;  // scratch reused across this thread's segments
    for (int64_t c = lo; c < hi; ++c) {
      const int64_t s0 = seg[c];
      kept_n[c] = greedy.run(sorted.data() + s0, seg[c + 1] - s0, pred, max_keep, keep_pos.data() + s0);
    }
  });
  std::vector<uint8_t> kept_rank(m, 0);
  for (int64_t c = 0; c < nseg; ++c) {
    for (int64_t k = seg[c]; k < seg[c] + kept_n[c]; ++k) kept_rank[rank_of[seg[c] + keep_pos[k]]] = 1;
  }

  // Kept boxes in descending score, ties by index, across classes.
  std::vector<int64_t> out_idx;
  for (int64_t r = 0; r < m && static_cast<int64_t>(out_idx.size()) < max_keep; ++r) {
    if (kept_rank[r]) out_idx.push_back(order[r]);
  }
  at::Tensor out = at::empty({static_cast<int64_t>(out_idx.size())}, boxes.options().dtype(at::kLong));
  std::copy(out_idx.begin(), out_idx.end(), out.data_ptr<int64_t>());
  return out;
}

at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
                   std::optional<double> score_threshold, std::optional<int64_t> max_output) {
  check_nms_args(boxes, scores, nullptr, max_output, "nms");
  at::Tensor out;
  VO_DISPATCH_FLOAT_BOX_TYPES(boxes.scalar_type(), "nms", [&] {
    out = nms_impl<scalar_t>(boxes, scores, nullptr, iou_threshold, score_threshold, max_output);
  });
  return out;
}

at::Tensor batched_nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                           double iou_threshold, std::optional<double> score_threshold,
                           std::optional<int64_t> max_output) {
  check_nms_args(boxes, scores, &idxs, max_output, "batched_nms");
  const at::Tensor classes = idxs.to(at::kLong).contiguous();
  at::Tensor out;
  VO_DISPATCH_FLOAT_BOX_TYPES(boxes.scalar_type(), "batched_nms", [&] {
    out = nms_impl<scalar_t>(boxes, scores, classes.data_ptr<int64_t>(), iou_threshold, score_threshold,
                             max_output);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> padded_nms_cpu(const at::Tensor& boxes, const at::Tensor& scores,
                                                  double iou_threshold, int64_t max_output,
                                                  const std::optional<at::Tensor>& idxs,
                                                  std::optional<double> score_threshold) {
  check_padded_nms_args(boxes, scores, idxs ? &*idxs : nullptr, max_output);
  const int64_t B = boxes.size(0);
  at::Tensor keep = at::full({B, max_output}, -1, boxes.options().dtype(at::kLong));
  at::Tensor counts = at::zeros({B}, boxes.options().dtype(at::kLong));
  const at::Tensor classes = idxs ? idxs->to(at::kLong).contiguous() : at::Tensor();
  // Images in parallel; each image's own NMS then runs on its thread.
  at::parallel_for(0, B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      at::Tensor kept;
      VO_DISPATCH_FLOAT_BOX_TYPES(boxes.scalar_type(), "padded_nms", [&] {
        kept = nms_impl<scalar_t>(boxes[b], scores[b], idxs ? classes[b].data_ptr<int64_t>() : nullptr,
                                  iou_threshold, score_threshold, max_output);
      });
      keep[b].narrow(0, 0, kept.size(0)).copy_(kept);
      counts[b].fill_(kept.size(0));
    }
  });
  return {keep, counts};
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("nms", &vo::nms_cpu);
  m.impl("batched_nms", &vo::batched_nms_cpu);
  m.impl("padded_nms", &vo::padded_nms_cpu);
}
