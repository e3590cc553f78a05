// CPU kernel of linear_sum_assignment over a padded batch of cost matrices
// [B, R, C], each with its own row and column counts: the problems are
// independent, so they run in parallel, each with one reusable scratch per
// thread (matching/math.h has the algorithm).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <tuple>
#include <vector>

#include "core/cpu_isa.h"
#include "matching/args.h"
#include "matching/math.h"

namespace vo {
namespace {

// Problems up to this many entries are copied into a dense double matrix
// (32 MiB per thread at most; a transposed one row by row as the solver needs
// them); larger ones are read in place.
constexpr int64_t kMaxDenseCopy = int64_t(1) << 22;

// The counts as int64 on the CPU, each checked to lie in [0, limit].
std::vector<int64_t> checked_counts(const std::optional<at::Tensor>& counts, int64_t B, int64_t limit,
                                    const char* name) {
  std::vector<int64_t> out(B, limit);
  if (!counts.has_value()) return out;
  const at::Tensor c = counts->to(at::kLong).contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK_VALUE(p[b] >= 0 && p[b] <= limit, "visionops.linear_sum_assignment: ", name, "[", b,
                      "] must be in [0, ", limit, "], got ", p[b]);
    out[b] = p[b];
  }
  return out;
}

// The problem as a row-major double matrix (rows the small side: not
// transposed), read along the input's rows.
template <typename scalar_t>
void copy_dense(const scalar_t* p, int64_t nrow, int64_t ncol, int64_t sr, int64_t sc, double sign, double* out) {
  for (int64_t r = 0; r < nrow; ++r) {
    const scalar_t* row = p + r * sr;
    double* o = out + r * ncol;
    for (int64_t c = 0; c < ncol; ++c) o[c] = sign * static_cast<double>(row[c * sc]);
  }
}

// The solver on a dense copy, compiled for each vector width. Outside the
// dtype dispatch: the copy is double whatever the input, and a lambda
// passed to with_cpu_isa there would be one more copy of the solver per
// instruction set and dtype.
LsapStatus solve_dense(const double* m, int64_t ns, int64_t nb, const LsapScratch& s) {
  LsapStatus result;
  with_cpu_isa([&] { result = lsap_solve(ns, nb, LsapDenseCost{m, nb}, s); });
  return result;
}

// A transposed problem (more rows than columns: DETR's queries by targets)
// is solved over the input's columns, and a column, strided in the input, is
// read as a whole only when a search first visits its row of the problem:
// it is gathered into the dense buffer then. On random costs most rows get
// their cheapest column in the first phase and are never searched; the
// full transposed copy this replaces took as long as that whole phase.
template <typename scalar_t>
struct LsapLazyTransposedCost {
  const scalar_t* p;  // the input problem [nb, ns], columns contiguous or not
  int64_t sr, sc;
  int64_t nb;
  double sign;
  double* dense;   // [ns, nb]: row i valid once ready[i]
  int64_t* ready;  // [ns]
  double operator()(int64_t i, int64_t j) const { return dense[i * nb + j]; }
  void prepare_row(int64_t i) const {
    if (ready[i]) return;
    const scalar_t* col = p + i * sc;
    double* __restrict__ o = dense + i * nb;
    for (int64_t j = 0; j < nb; ++j) o[j] = sign * static_cast<double>(col[j * sr]);
    ready[i] = 1;
  }
};

// Lane k of (best, at) takes row r's entry c when it is better: lower, or
// higher when maximizing (strictly: the first row of the best entry stays).
template <bool kMax>
inline void keep_better(double c, int64_t r, double& best, int64_t& at) {
  const bool better = kMax ? c > best : c < best;
  best = better ? c : best;
  // better ? r : at as bit operations, as in lsap_augment's relax loop: as a
  // select, GCC kept the lanes in memory behind a branch.
  const int64_t keep = static_cast<int64_t>(better) - 1;  // 0 or all ones
  at = (r & ~keep) | (at & keep);
}

// The least entry of the input's columns [c0, c0 + W), negated when
// maximizing (the greatest, negated: no negation per entry), and the first
// row holding it, one lane per column: the input's rows are read as they
// lie (contiguous in the usual layout), where the transposed problem's rows
// would be strided. Even and odd rows go to two sets of lanes, merged at the
// end: with one, each row waited on the compare and select of the row
// before. NaN entries are skipped and reported in nan (one unordered compare
// per pair of rows); an entry that is -inf once sign-adjusted becomes the
// least and the caller reports it; a column of forbidden entries and NaN
// only gets (+inf, -1).
template <int W, bool kMax, typename scalar_t>
void column_minima(const scalar_t* p, int64_t nrow, int64_t sr, int64_t sc, int64_t c0, double* low_out,
                   int64_t* at_out, int64_t& nan) {
  constexpr int kSets = 2;  // 4 was no faster with AVX-512, and spilled with AVX2
  constexpr double kWorst = kMax ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  double best[kSets][W];
  int64_t at[kSets][W], bad[W];
  for (int k = 0; k < W; ++k) {
    for (int j = 0; j < kSets; ++j) {
      best[j][k] = kWorst;
      at[j][k] = -1;
    }
    bad[k] = 0;
  }
  const scalar_t* q = p + c0 * sc;
  int64_t r = 0;
  for (; r + kSets <= nrow; r += kSets) {
    VO_SIMD
    for (int k = 0; k < W; ++k) {
      const double even = static_cast<double>(q[r * sr + k * sc]);
      const double odd = static_cast<double>(q[(r + 1) * sr + k * sc]);
      bad[k] |= static_cast<int64_t>(__builtin_isunordered(even, odd));
      keep_better<kMax>(even, r, best[0][k], at[0][k]);
      keep_better<kMax>(odd, r + 1, best[1][k], at[1][k]);
    }
  }
  for (; r < nrow; ++r) {
    VO_SIMD
    for (int k = 0; k < W; ++k) {
      const double c = static_cast<double>(q[r * sr + k * sc]);
      bad[k] |= static_cast<int64_t>(c != c);
      keep_better<kMax>(c, r, best[0][k], at[0][k]);
    }
  }
  for (int k = 0; k < W; ++k) {
    double b = best[0][k];
    int64_t a = at[0][k];
    for (int j = 1; j < kSets; ++j) {
      const bool better = kMax ? best[j][k] > b : best[j][k] < b;
      const bool take = better || (best[j][k] == b && at[j][k] < a);
      b = take ? best[j][k] : b;
      a = take ? at[j][k] : a;
    }
    low_out[c0 + k] = kMax ? -b : b;
    at_out[c0 + k] = a;
    nan |= bad[k];
  }
}

// lsap_start for a transposed problem through column_minima: blocks of 8
// columns, the last one shifted back to end at the last column (it repeats
// some columns, with the same results) rather than reading past it.
template <bool kMax, typename scalar_t>
LsapStatus start_transposed(const scalar_t* p, int64_t nrow, int64_t ncol, int64_t sr, int64_t sc,
                            const LsapScratch& s) {
  int64_t nan = 0;
  if (ncol >= 8) {
    for (int64_t c0 = 0; c0 < ncol; c0 += 8)
      column_minima<8, kMax>(p, nrow, sr, sc, std::min(c0, ncol - 8), s.u, s.col4row, nan);
  } else if (ncol >= 4) {
    column_minima<4, kMax>(p, nrow, sr, sc, 0, s.u, s.col4row, nan);
    column_minima<4, kMax>(p, nrow, sr, sc, ncol - 4, s.u, s.col4row, nan);
  } else {
    for (int64_t c = 0; c < ncol; ++c) column_minima<1, kMax>(p, nrow, sr, sc, c, s.u, s.col4row, nan);
  }
  bool invalid = nan != 0;
  for (int64_t c = 0; c < ncol; ++c) invalid |= s.u[c] == -std::numeric_limits<double>::infinity();
  return lsap_take_cheapest(ncol, nrow, invalid, s);
}

template <typename scalar_t>
LsapStatus solve_transposed(const scalar_t* p, int64_t nrow, int64_t ncol, int64_t sr, int64_t sc, double sign,
                            const LsapScratch& s, double* dense, int64_t* ready) {
  const LsapStatus start = sign < 0 ? start_transposed<true>(p, nrow, ncol, sr, sc, s)
                                    : start_transposed<false>(p, nrow, ncol, sr, sc, s);
  if (start != LsapStatus::Ok) return start;
  for (int64_t c = 0; c < ncol; ++c) ready[c] = 0;
  return lsap_augment(ncol, nrow, LsapLazyTransposedCost<scalar_t>{p, sr, sc, nrow, sign, dense, ready}, s);
}

std::tuple<at::Tensor, at::Tensor> linear_sum_assignment_cpu(const at::Tensor& cost,
                                                             const std::optional<at::Tensor>& row_counts,
                                                             const std::optional<at::Tensor>& col_counts,
                                                             bool maximize) {
  check_lsap_args(cost, row_counts, col_counts);
  const int64_t B = cost.size(0), R = cost.size(1), C = cost.size(2);
  const std::vector<int64_t> rows = checked_counts(row_counts, B, R, "row_counts");
  const std::vector<int64_t> cols = checked_counts(col_counts, B, C, "col_counts");
  at::Tensor assignment = at::full({B, R}, -1, cost.options().dtype(at::kLong));
  at::Tensor status = at::zeros({B}, cost.options().dtype(at::kInt));
  if (B == 0 || R == 0 || C == 0) return {assignment, status};
  const int64_t n_small = std::min(R, C), n_big = std::max(R, C);
  int64_t* out = assignment.data_ptr<int64_t>();
  int32_t* st = status.data_ptr<int32_t>();
  // Integer costs as float64, the type the solver computes in (the same
  // values: each entry is cast to double as it is read), so that the kernels
  // are compiled for the four floating dtypes only: each is a copy of the
  // solver per instruction set (this file took 108 s to compile with nine
  // dtypes, 68 s with four).
  // An O(n^2) copy, for an O(n^3) solve, and only for integer costs.
  const at::Tensor costs = at::isFloatingType(cost.scalar_type()) ? cost : cost.to(at::kDouble);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, costs.scalar_type(), "linear_sum_assignment", [&] {
    const scalar_t* base = costs.const_data_ptr<scalar_t>();
    const int64_t sb = costs.stride(0), sr = costs.stride(1), sc = costs.stride(2);
    // One problem is microseconds of work: small grains only where B is large.
    at::parallel_for(0, B, 4, [&](int64_t b0, int64_t b1) {
      std::vector<double> d(lsap_doubles(n_small, n_big));
      std::vector<int64_t> idx(lsap_indices(n_small, n_big));
      std::vector<int64_t> flags(lsap_flags(n_small, n_big));
      std::vector<double> dense;
      std::vector<int64_t> ready;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t nrow = rows[b], ncol = cols[b];
        if (nrow == 0 || ncol == 0) continue;
        const bool transposed = nrow > ncol;
        const LsapBatchCost<scalar_t> f{base + b * sb, sr, sc, transposed, maximize};
        const int64_t ns = std::min(nrow, ncol), nb = std::max(nrow, ncol);
        const LsapScratch s = lsap_scratch(d.data(), idx.data(), flags.data(), ns, nb);
        LsapStatus result;
        const double sign = maximize ? -1.0 : 1.0;
        if (ns * nb > kMaxDenseCopy) {
          result = lsap_solve(ns, nb, f, s);
        } else if (transposed) {
          dense.resize(ns * nb);
          ready.resize(ns);
          with_cpu_isa(
              [&] { result = solve_transposed(base + b * sb, nrow, ncol, sr, sc, sign, s, dense.data(), ready.data()); });
        } else {
          // The solver scans rows many times: one strided, converting read
          // into contiguous doubles pays for itself.
          dense.resize(ns * nb);
          with_cpu_isa([&] { copy_dense(base + b * sb, nrow, ncol, sr, sc, sign, dense.data()); });
          result = solve_dense(dense.data(), ns, nb, s);
        }
        st[b] = static_cast<int32_t>(result);
        if (result == LsapStatus::Ok) lsap_write_assignment(s.col4row, ns, transposed, out + b * R, nrow);
      }
    });
  });
  return {assignment, status};
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) { m.impl("linear_sum_assignment", &vo::linear_sum_assignment_cpu); }
