// The matching family's math, shared by the CPU and CUDA kernels: the linear
// sum assignment solver and DETR's matching cost.
//
// The linear sum assignment problem (Hungarian matching): the shortest augmenting path method of Jonker and
// Volgenant (1987) in the rectangular form of Crouse, "On implementing 2D
// rectangular assignment algorithms" (IEEE TAES 2016), the method scipy's
// linear_sum_assignment uses.
//
// A problem has nr <= nc: every row gets a column (the kernels transpose a
// taller problem through the cost functor; the CPU's copies a row of it only
// when a search first visits it). Each row first takes its cheapest column
// where that is still free (lsap_start); the rest are added one at a time:
// for each, a Dijkstra search over reduced costs c(i, j) - u(i) - v(j)
// finds the cheapest path to a free column, the duals are updated so that
// reduced costs stay non-negative, and the path is flipped. Costs are read
// and summed in double whatever the input dtype, so float32 problems get an
// optimal assignment of the float32 costs (no accumulation in float32).
//
// Ties: the next column of a search is the one of least path cost; among
// equals a free column wins (it ends the search), then the lowest index.
// Where several assignments are optimal the one found may differ from
// scipy's; the total never does.
//
// Entries: NaN and -inf are invalid (a minimization would be unbounded);
// +inf marks a forbidden pair, and a problem whose every complete assignment
// uses one is infeasible. With maximize the costs are negated first, so
// there +inf is invalid and -inf forbidden. This is scipy's contract.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "boxes/math.h"
#include "core/fast_math.h"
#include "core/macros.h"

namespace vo {

enum class LsapStatus : int32_t { Ok = 0, Invalid = 1, Infeasible = 2 };

// Scratch of one problem: nr rows, nc columns (nr <= nc).
struct LsapScratch {
  double* u;             // [nr] row duals
  double* v;             // [nc] column duals
  double* path_cost;     // [nc] shortest path cost to each column in the current search
  int64_t* path;         // [nc] row preceding each column on its shortest path
  int64_t* col4row;      // [nr] the column assigned to each row, or -1
  int64_t* row4col;      // [nc] the row assigned to each column, or -1
  // Flags as 8-byte integers, as wide as the doubles they are read with, so
  // that the search's loops vectorize.
  int64_t* row_reached;  // [nr]
  int64_t* col_reached;  // [nc]
};

VO_HOST_DEVICE_INLINE bool lsap_entry_invalid(double c) {
  return c != c || c == -std::numeric_limits<double>::infinity();
}

// The first j in [0, n) with pred(j), or n: eight candidates at a time,
// branch-free within a group (one vector compare on the CPU). The flags are
// 64-bit, as wide as the doubles and indices compared: narrower ones would
// cost the vector code a pack per group.
template <typename Pred>
VO_HOST_DEVICE_INLINE int64_t lsap_first_index(int64_t n, const Pred& pred) {
  int64_t j = 0;
  while (j + 8 <= n) {
    int64_t hit = 0;
    VO_SIMD_OR_REDUCTION(hit)
    for (int k = 0; k < 8; ++k) hit |= static_cast<int64_t>(pred(j + k));
    if (hit) break;
    j += 8;
  }
  while (j < n && !pred(j)) ++j;
  return j;
}

// Lanes [0, W) take the least of themselves and lanes [W, 2W), and their
// invalid flags the union.
template <int W>
VO_HOST_DEVICE_INLINE void lsap_halve(double* low, int64_t* bad) {
  for (int k = 0; k < W; ++k) {
    low[k] = low[k + W] < low[k] ? low[k + W] : low[k];
    bad[k] |= bad[k + W];
  }
}

// The first phase from each row's least entry, which the caller has put in
// u[i] (its dual) with its first column in col4row[i] (-1 where every entry of
// the row is forbidden): a row whose cheapest column is still free takes it.
// The duals stay feasible: every reduced cost is >= 0 and 0 on assigned
// pairs. On random costs this assigns most rows at once, and only the rows
// that collide need a shortest path search. invalid: some entry was invalid,
// which wins over infeasibility, as in scipy.
VO_HOST_DEVICE_INLINE LsapStatus lsap_take_cheapest(int64_t nr, int64_t nc, bool invalid, const LsapScratch& s) {
  for (int64_t j = 0; j < nc; ++j) {
    s.v[j] = 0.0;
    s.row4col[j] = -1;
    s.path[j] = -1;
  }
  if (invalid) return LsapStatus::Invalid;
  bool forbidden_row = false;
  for (int64_t i = 0; i < nr; ++i) {
    const int64_t best = s.col4row[i];
    forbidden_row |= best < 0;
    if (best >= 0 && s.row4col[best] < 0) {
      s.row4col[best] = i;
    } else {
      s.col4row[i] = -1;
    }
  }
  return forbidden_row ? LsapStatus::Infeasible : LsapStatus::Ok;
}

// Each row's least entry and its first column, from the cost functor (the
// CPU kernel's transposed problems get theirs from the input's layout
// instead), then lsap_take_cheapest.
template <typename Cost>
VO_HOST_DEVICE_INLINE LsapStatus lsap_start(int64_t nr, int64_t nc, const Cost& cost, const LsapScratch& s) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  bool invalid = false;
  for (int64_t i = 0; i < nr; ++i) {
    // The row's least entry and whether any is invalid, in 16 independent
    // lanes (several vector accumulators, not one chain of dependent
    // minima, whose latency bounded this loop), then combined.
    double low[16];
    int64_t bad[16];  // 64-bit, as lsap_first_index's flags
    for (int k = 0; k < 16; ++k) {
      low[k] = inf;
      bad[k] = 0;
    }
    int64_t j0 = 0;
    for (; j0 + 16 <= nc; j0 += 16) {
      VO_SIMD
      for (int k = 0; k < 16; ++k) {
        const double c = cost(i, j0 + k);
        bad[k] |= static_cast<int64_t>(lsap_entry_invalid(c));
        low[k] = c < low[k] ? c : low[k];
      }
    }
    // The last nc % 16 entries in scalars of their own, and the lanes
    // combined in halving steps of fixed widths: a lane index or a width
    // known only at run time kept the lanes in memory, where each step's
    // narrower loads of the wider stores before them stalled (store
    // forwarding fails; a sixth of the solver's time on AMD Zen 4).
    double tail_low = inf;
    int64_t tail_bad = 0;
    for (int64_t j = j0; j < nc; ++j) {
      const double c = cost(i, j);
      tail_bad |= static_cast<int64_t>(lsap_entry_invalid(c));
      tail_low = c < tail_low ? c : tail_low;
    }
    lsap_halve<8>(low, bad);
    lsap_halve<4>(low, bad);
    lsap_halve<2>(low, bad);
    lsap_halve<1>(low, bad);
    const double lowest = tail_low < low[0] ? tail_low : low[0];
    invalid |= (bad[0] | tail_bad) != 0;
    s.u[i] = lowest;
    s.col4row[i] = lowest < inf ? lsap_first_index(nc, [&](int64_t j) { return cost(i, j) == lowest; }) : -1;
  }
  return lsap_take_cheapest(nr, nc, invalid, s);
}

// The second phase: a shortest augmenting path for each row the first left
// unassigned. cost.prepare_row(i) is called before row i's entries are read
// in a search (the CPU kernel's transposed problems gather the row then).
template <typename Cost>
VO_HOST_DEVICE_INLINE LsapStatus lsap_augment(int64_t nr, int64_t nc, const Cost& cost, const LsapScratch& s) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  for (int64_t cur_row = 0; cur_row < nr; ++cur_row) {
    if (s.col4row[cur_row] >= 0) continue;
    // Dijkstra from cur_row over the columns, in reduced costs.
    for (int64_t j = 0; j < nc; ++j) {
      s.path_cost[j] = inf;
      s.col_reached[j] = 0;
    }
    for (int64_t i = 0; i < nr; ++i) s.row_reached[i] = 0;
    double min_val = 0.0;
    int64_t i = cur_row;
    int64_t sink = -1;
    while (sink < 0) {
      s.row_reached[i] = 1;
      cost.prepare_row(i);
      const double ui = s.u[i];
      // Relax every column not yet reached (branch-free and through
      // restrict pointers, so it vectorizes).
      double lowest = inf;
      {
        const double* __restrict__ v = s.v;
        const int64_t* __restrict__ reached = s.col_reached;
        double* __restrict__ path_cost = s.path_cost;
        int64_t* __restrict__ path = s.path;
        VO_SIMD_MIN_REDUCTION(lowest)
        for (int64_t j = 0; j < nc; ++j) {
          const double r = min_val + cost(i, j) - ui - v[j];
          const bool open = reached[j] == 0;
          const double old = path_cost[j];
          const bool shorter = open && r < old;
          const double now = shorter ? r : old;
          path_cost[j] = now;
          // shorter ? i : path[j] as bit operations: written as a select,
          // GCC made the store masked and skipped it through a branch on
          // "any lane shorter", which mispredicts.
          const int64_t keep = static_cast<int64_t>(shorter) - 1;  // 0 or all ones
          path[j] = (i & ~keep) | (path[j] & keep);
          const double candidate = open ? now : inf;
          lowest = candidate < lowest ? candidate : lowest;
        }
      }
      if (!(lowest < inf)) return LsapStatus::Infeasible;  // only forbidden pairs left
      min_val = lowest;
      // The next column: the first free one at the least cost (it ends the
      // search), else the first at the least cost.
      const int64_t* reached = s.col_reached;
      const double* path_cost = s.path_cost;
      const int64_t* row4col = s.row4col;
      const int64_t first_free = lsap_first_index(nc, [&](int64_t j) {
        return reached[j] == 0 && path_cost[j] == lowest && row4col[j] < 0;
      });
      const int64_t next = first_free < nc ? first_free : lsap_first_index(nc, [&](int64_t j) {
        return reached[j] == 0 && path_cost[j] == lowest;
      });
      s.col_reached[next] = 1;
      if (s.row4col[next] < 0) {
        sink = next;
      } else {
        i = s.row4col[next];
      }
    }
    // Dual update: keeps every reduced cost >= 0 and the path's at 0.
    s.u[cur_row] += min_val;
    for (int64_t r = 0; r < nr; ++r) {
      if (s.row_reached[r] && r != cur_row) s.u[r] += min_val - s.path_cost[s.col4row[r]];
    }
    for (int64_t c = 0; c < nc; ++c) {
      if (s.col_reached[c]) s.v[c] -= min_val - s.path_cost[c];
    }
    // Flip the augmenting path back from the sink to cur_row.
    int64_t j = sink;
    while (true) {
      const int64_t r = s.path[j];
      s.row4col[j] = r;
      const int64_t previous = s.col4row[r];
      s.col4row[r] = j;
      j = previous;
      if (r == cur_row) break;
    }
  }
  return LsapStatus::Ok;
}

// Solves one problem; cost(i, j) returns the (already sign-adjusted) cost of
// row i and column j as a double. On return col4row holds the assignment of
// every row; on Infeasible or Invalid it must not be used.
template <typename Cost>
VO_HOST_DEVICE_INLINE LsapStatus lsap_solve(int64_t nr, int64_t nc, const Cost& cost, const LsapScratch& s) {
  const LsapStatus start = lsap_start(nr, nc, cost, s);
  return start == LsapStatus::Ok ? lsap_augment(nr, nc, cost, s) : start;
}

// A dense row-major double matrix: the CPU kernel copies a problem into one
// (negated, converted) so that the solver's loops read contiguous doubles.
struct LsapDenseCost {
  const double* m;
  int64_t nc;
  VO_HOST_DEVICE_INLINE double operator()(int64_t i, int64_t j) const { return m[i * nc + j]; }
  VO_HOST_DEVICE_INLINE void prepare_row(int64_t) const {}
};

// The cost functor of problem b of a padded batch [B, R, C]: rows and columns
// beyond the problem's own counts are never read; transposed when the problem
// has more rows than columns; negated when maximizing.
template <typename scalar_t>
struct LsapBatchCost {
  const scalar_t* base;  // problem b's [0, 0] entry
  int64_t stride_row, stride_col;
  bool transposed;
  bool maximize;
  VO_HOST_DEVICE_INLINE double operator()(int64_t i, int64_t j) const {
    const int64_t offset = transposed ? j * stride_row + i * stride_col : i * stride_row + j * stride_col;
    const double c = static_cast<double>(base[offset]);
    return maximize ? -c : c;
  }
  VO_HOST_DEVICE_INLINE void prepare_row(int64_t) const {}
};

// Writes problem b's assignment as one column per original row (or -1).
VO_HOST_DEVICE_INLINE void lsap_write_assignment(const int64_t* col4row, int64_t n_small, bool transposed,
                                                 int64_t* out_row, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) out_row[r] = -1;
  for (int64_t k = 0; k < n_small; ++k) {
    if (transposed) {
      out_row[col4row[k]] = k;  // transposed row k is original column k
    } else {
      out_row[k] = col4row[k];
    }
  }
}

// Scratch sizes of one problem of at most n_small rows and n_big columns.
constexpr int64_t lsap_doubles(int64_t n_small, int64_t n_big) { return n_small + 2 * n_big; }
constexpr int64_t lsap_indices(int64_t n_small, int64_t n_big) { return n_small + 2 * n_big; }
constexpr int64_t lsap_flags(int64_t n_small, int64_t n_big) { return n_small + n_big; }

VO_HOST_DEVICE_INLINE LsapScratch lsap_scratch(double* d, int64_t* idx, int64_t* flags, int64_t n_small,
                                               int64_t n_big) {
  LsapScratch s;
  s.u = d;
  s.v = d + n_small;
  s.path_cost = d + n_small + n_big;
  s.col4row = idx;
  s.row4col = idx + n_small;
  s.path = idx + n_small + n_big;
  s.row_reached = flags;
  s.col_reached = flags + n_small;
  return s;
}

// ---------------------------------------------------------------- DETR matching cost

// The matching cost of DETR (Carion et al. 2020, "End-to-End Object Detection
// with Transformers", section 3.1) between one query and one target, shared
// by the CPU and CUDA kernels:
//
//   class_weight * (-p(target class)) + bbox_weight * L1(boxes, cxcywh)
//     + giou_weight * (-GIoU(boxes))
//
// where p is the query's softmax probability. The softmax denominator is
// computed once per query (SoftmaxStats) and the box records once per box.

template <typename T>
struct MatchingWeights {
  T class_weight, bbox_weight, giou_weight;
};

// max and sum(exp(l - max)) of a query's logits, in the accumulation type.
template <typename T>
struct SoftmaxStats {
  T max, sum;
};

template <typename scalar_t, typename T>
VO_HOST_DEVICE_INLINE SoftmaxStats<T> softmax_stats(const scalar_t* logits, int64_t K) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t k = 0; k < K; ++k) m = max(m, static_cast<T>(logits[k]));
  T s = T(0);
  for (int64_t k = 0; k < K; ++k) s += exp_(static_cast<T>(logits[k]) - m);
  return {m, s};
}

// The logit of class `label` in a row of K logits. A label outside [0, K)
// gives NaN, on the CPU as on CUDA (where checking would cost a host sync):
// the NaN cost makes linear_sum_assignment (and HungarianMatcher) report the
// problem as invalid.
template <typename scalar_t, typename T>
VO_HOST_DEVICE_INLINE T class_logit(const scalar_t* row, int64_t label, int64_t K) {
  return label >= 0 && label < K ? static_cast<T>(row[label]) : std::numeric_limits<T>::quiet_NaN();
}

template <typename T>
VO_HOST_DEVICE_INLINE T matching_cost(T logit, SoftmaxStats<T> stats, const Box4<T>& pred,
                                      const BoxRecord<T>& pred_record, const Box4<T>& target,
                                      const BoxRecord<T>& target_record, MatchingWeights<T> w) {
  const T prob = exp_(logit - stats.max) / stats.sum;
  const T l1 = (std::abs(pred.x1 - target.x1) + std::abs(pred.y1 - target.y1)) +
               (std::abs(pred.x2 - target.x2) + std::abs(pred.y2 - target.y2));
  const T giou = pairwise_iou<IouVariant::GIoU>(pred_record, target_record, T(0));
  return w.bbox_weight * l1 - w.class_weight * prob - w.giou_weight * giou;
}

}  // namespace vo
