// CPU kernel of linear_sum_assignment over a padded batch of cost matrices
// [B, R, C], each with its own row and column counts: the problems are
// independent, so they run in parallel, each with one reusable scratch per
// thread (matching/math.h has the algorithm).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <type_traits>
#include <vector>

#include "core/cpu_isa.h"
#include "core/simd.h"
#include "matching/args.h"
#include "matching/math.h"

namespace vo {
namespace {

// Problems up to this many entries are copied into a dense double matrix
// first (32 MiB per thread at most); larger ones are read in place.
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

// The problem as a row-major double matrix of its small side's rows, read
// along the input's rows (contiguous in the usual layout) either way.
template <typename scalar_t>
void copy_dense(const scalar_t* p, int64_t nrow, int64_t ncol, int64_t sr, int64_t sc, bool transposed, double sign,
                double* out) {
  if (transposed) {
    // Written contiguously, read down the input's columns (gathers).
    for (int64_t c = 0; c < ncol; ++c) {
      const scalar_t* col = p + c * sc;
      double* __restrict__ o = out + c * nrow;
      for (int64_t r = 0; r < nrow; ++r) o[r] = sign * static_cast<double>(col[r * sr]);
    }
    return;
  }
  for (int64_t r = 0; r < nrow; ++r) {
    const scalar_t* row = p + r * sr;
    {
      double* o = out + r * ncol;
      for (int64_t c = 0; c < ncol; ++c) o[c] = sign * static_cast<double>(row[c * sc]);
    }
  }
}

// copy_dense's transposed case for double costs with contiguous rows, the
// common one (DETR: queries by targets, the targets the small side): 4 x 4
// blocks transposed in registers (S::transpose4x4_f64), where the plain
// loop read every entry on its own and took a quarter of the solve's time.
#ifdef VO_HAVE_SIMD16
template <typename S>
void copy_transposed_f64(const double* p, int64_t nrow, int64_t ncol, int64_t sr, double sign, double* out) {
  int64_t c0 = 0;
  for (; c0 + 4 <= ncol; c0 += 4) {
    int64_t r0 = 0;
    for (; r0 + 4 <= nrow; r0 += 4) S::transpose4x4_f64(p + r0 * sr + c0, sr, out + c0 * nrow + r0, nrow, sign);
    for (; r0 < nrow; ++r0)
      for (int64_t j = 0; j < 4; ++j) out[(c0 + j) * nrow + r0] = sign * p[r0 * sr + c0 + j];
  }
  for (; c0 < ncol; ++c0)
    for (int64_t r = 0; r < nrow; ++r) out[c0 * nrow + r] = sign * p[r * sr + c0];
}
#endif

// copy_dense through copy_transposed_f64 where that applies.
template <typename scalar_t>
void copy_dense_fast(const scalar_t* p, int64_t nrow, int64_t ncol, int64_t sr, int64_t sc, bool transposed,
                     double sign, double* out) {
#ifdef VO_HAVE_SIMD16
  if constexpr (std::is_same_v<scalar_t, double>) {
    if (transposed && sc == 1 && simd_available()) {
      with_simd([&](auto s) { copy_transposed_f64<decltype(s)>(p, nrow, ncol, sr, sign, out); });
      return;
    }
  }
#endif
  with_cpu_isa([&] { copy_dense(p, nrow, ncol, sr, sc, transposed, sign, out); });
}

// The solver on a dense copy, compiled for each vector width.
LsapStatus solve_dense(const double* m, int64_t ns, int64_t nb, const LsapScratch& s) {
  return lsap_solve(ns, nb, LsapDenseCost{m, nb}, s);
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
  AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, cost.scalar_type(), "linear_sum_assignment", [&] {
    const scalar_t* base = cost.const_data_ptr<scalar_t>();
    const int64_t sb = cost.stride(0), sr = cost.stride(1), sc = cost.stride(2);
    // One problem is microseconds of work: small grains only where B is large.
    at::parallel_for(0, B, 4, [&](int64_t b0, int64_t b1) {
      std::vector<double> d(lsap_doubles(n_small, n_big));
      std::vector<int64_t> idx(lsap_indices(n_small, n_big));
      std::vector<int64_t> flags(lsap_flags(n_small, n_big));
      std::vector<double> dense;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t nrow = rows[b], ncol = cols[b];
        if (nrow == 0 || ncol == 0) continue;
        const bool transposed = nrow > ncol;
        const LsapBatchCost<scalar_t> f{base + b * sb, sr, sc, transposed, maximize};
        const int64_t ns = std::min(nrow, ncol), nb = std::max(nrow, ncol);
        const LsapScratch s = lsap_scratch(d.data(), idx.data(), flags.data(), ns, nb);
        LsapStatus result;
        if (ns * nb <= kMaxDenseCopy) {
          // The solver scans rows many times: one strided, converting read
          // into contiguous doubles pays for itself.
          dense.resize(ns * nb);
          copy_dense_fast(base + b * sb, nrow, ncol, sr, sc, transposed, maximize ? -1.0 : 1.0, dense.data());
          with_cpu_isa([&] { result = solve_dense(dense.data(), ns, nb, s); });
        } else {
          result = lsap_solve(ns, nb, f, s);
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
