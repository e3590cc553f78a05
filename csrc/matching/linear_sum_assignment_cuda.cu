// CUDA kernel of linear_sum_assignment over a padded batch [B, R, C]: one
// thread solves one problem with the shared solver (matching/math.h),
// reading the costs in place and keeping its duals and search state in a
// global scratch slice. The counts are read on the device (clamped to the
// padded shape) and problems that are invalid or infeasible report it in
// status: nothing synchronizes with the host.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "core/cuda_launch.h"
#include "matching/args.h"
#include "matching/math.h"

namespace vo {
namespace {

__device__ __forceinline__ int64_t read_count(const int64_t* counts, int64_t b, int64_t limit) {
  if (counts == nullptr) return limit;
  const int64_t c = counts[b];
  return c < 0 ? 0 : (c > limit ? limit : c);
}

template <typename scalar_t>
__global__ void linear_sum_assignment_kernel(const scalar_t* __restrict__ cost, int64_t B, int64_t R, int64_t C,
                                             int64_t sb, int64_t sr, int64_t sc, const int64_t* row_counts,
                                             const int64_t* col_counts, bool maximize, double* doubles,
                                             int64_t* indices, int64_t* flags, int64_t n_small, int64_t n_big,
                                             int64_t* __restrict__ assignment, int32_t* __restrict__ status) {
  VO_CUDA_1D_KERNEL_LOOP(b, B) {
    int64_t* out = assignment + b * R;
    for (int64_t r = 0; r < R; ++r) out[r] = -1;
    const int64_t nrow = read_count(row_counts, b, R), ncol = read_count(col_counts, b, C);
    status[b] = 0;
    if (nrow == 0 || ncol == 0) continue;
    const bool transposed = nrow > ncol;
    const LsapBatchCost<scalar_t> f{cost + b * sb, sr, sc, transposed, maximize};
    const int64_t ns = nrow < ncol ? nrow : ncol, nb = nrow < ncol ? ncol : nrow;
    const LsapScratch s =
        lsap_scratch(doubles + b * lsap_doubles(n_small, n_big), indices + b * lsap_indices(n_small, n_big),
                     flags + b * lsap_flags(n_small, n_big), ns, nb);
    const LsapStatus result = lsap_solve(ns, nb, f, s);
    status[b] = static_cast<int32_t>(result);
    if (result == LsapStatus::Ok) lsap_write_assignment(s.col4row, ns, transposed, out, nrow);
  }
}

std::tuple<at::Tensor, at::Tensor> linear_sum_assignment_cuda(const at::Tensor& cost,
                                                              const std::optional<at::Tensor>& row_counts,
                                                              const std::optional<at::Tensor>& col_counts,
                                                              bool maximize) {
  check_lsap_args(cost, row_counts, col_counts);
  const c10::cuda::CUDAGuard guard(cost.device());
  const int64_t B = cost.size(0), R = cost.size(1), C = cost.size(2);
  at::Tensor assignment = at::full({B, R}, -1, cost.options().dtype(at::kLong));
  at::Tensor status = at::zeros({B}, cost.options().dtype(at::kInt));
  if (B == 0 || R == 0 || C == 0) return {assignment, status};
  const int64_t n_small = std::min(R, C), n_big = std::max(R, C);
  auto long_opts = cost.options().dtype(at::kLong);
  at::Tensor doubles = at::empty({B * lsap_doubles(n_small, n_big)}, cost.options().dtype(at::kDouble));
  at::Tensor indices = at::empty({B * lsap_indices(n_small, n_big)}, long_opts);
  at::Tensor flags = at::empty({B * lsap_flags(n_small, n_big)}, long_opts);
  const at::Tensor rc = row_counts.has_value() ? row_counts->to(at::kLong).contiguous() : at::Tensor();
  const at::Tensor cc = col_counts.has_value() ? col_counts->to(at::kLong).contiguous() : at::Tensor();
  // A few threads per block: each thread is a whole serial solve.
  constexpr int kSolverThreads = 32;
  const auto blocks = static_cast<unsigned int>(std::min<int64_t>((B + kSolverThreads - 1) / kSolverThreads, 65535));
  // Integer costs as float64, as on the CPU (the values the kernel would
  // cast them to): the kernel is compiled for the four floating dtypes only.
  const at::Tensor costs = at::isFloatingType(cost.scalar_type()) ? cost : cost.to(at::kDouble);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, costs.scalar_type(), "linear_sum_assignment", [&] {
    linear_sum_assignment_kernel<scalar_t><<<blocks, kSolverThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        costs.const_data_ptr<scalar_t>(), B, R, C, costs.stride(0), costs.stride(1), costs.stride(2),
        rc.defined() ? rc.const_data_ptr<int64_t>() : nullptr, cc.defined() ? cc.const_data_ptr<int64_t>() : nullptr,
        maximize, doubles.mutable_data_ptr<double>(), indices.mutable_data_ptr<int64_t>(),
        flags.mutable_data_ptr<int64_t>(), n_small, n_big, assignment.mutable_data_ptr<int64_t>(),
        status.mutable_data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {assignment, status};
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) { m.impl("linear_sum_assignment", &vo::linear_sum_assignment_cuda); }
