// CUDA kernel of grid_anchors: one thread per output anchor; the levels'
// layout travels as kernel arguments. No host synchronization.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "coding/args.h"
#include "core/cuda_launch.h"

namespace vo {
namespace {

constexpr int kMaxAnchorLevels = 16;

struct LevelGrid {
  int64_t count;
  int64_t out_offset[kMaxAnchorLevels + 1];
  int64_t cell_offset[kMaxAnchorLevels];
  int64_t A[kMaxAnchorLevels], W[kMaxAnchorLevels], sh[kMaxAnchorLevels], sw[kMaxAnchorLevels];
};

template <typename scalar_t>
__global__ void grid_anchors_kernel(const scalar_t* __restrict__ cell, LevelGrid g, int64_t total,
                                    scalar_t* __restrict__ out) {
  VO_CUDA_1D_KERNEL_LOOP(i, total) {
    int l = 0;
    while (l + 1 < g.count && i >= g.out_offset[l + 1]) ++l;
    const int64_t j = i - g.out_offset[l];
    const int64_t a = j % g.A[l], xy = j / g.A[l];
    const int64_t x = xy % g.W[l], y = xy / g.W[l];
    anchor_at(cell + 4 * (g.cell_offset[l] + a), x * g.sw[l], y * g.sh[l], out + 4 * i);
  }
}

at::Tensor grid_anchors_cuda(const at::Tensor& cell_anchors, at::IntArrayRef anchors_per_level,
                             at::IntArrayRef grid_heights, at::IntArrayRef grid_widths, at::IntArrayRef stride_heights,
                             at::IntArrayRef stride_widths) {
  constexpr const char* op = "grid_anchors";
  const AnchorLayout layout = check_grid_anchors_args(cell_anchors, anchors_per_level, grid_heights, grid_widths,
                                                      stride_heights, stride_widths, op);
  TORCH_CHECK(layout.levels <= kMaxAnchorLevels, "visionops.", op, ": at most ", kMaxAnchorLevels,
              " feature maps are supported on CUDA, got ", layout.levels);
  const c10::cuda::CUDAGuard guard(cell_anchors.device());
  at::Tensor out = at::empty({layout.total, 4}, cell_anchors.options());
  if (layout.total == 0) return out;
  LevelGrid g{};
  g.count = static_cast<int64_t>(layout.levels);
  for (size_t l = 0; l < layout.levels; ++l) {
    g.out_offset[l] = layout.out_offset[l];
    g.cell_offset[l] = layout.cell_offset[l];
    g.A[l] = anchors_per_level[l];
    g.W[l] = grid_widths[l];
    g.sh[l] = stride_heights[l];
    g.sw[l] = stride_widths[l];
  }
  g.out_offset[layout.levels] = layout.total;
  const at::Tensor base = cell_anchors.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, cell_anchors.scalar_type(), "grid_anchors", [&] {
    grid_anchors_kernel<scalar_t><<<cuda::blocks_for(layout.total), cuda::kThreads, 0,
                                    at::cuda::getCurrentCUDAStream()>>>(base.const_data_ptr<scalar_t>(), g,
                                                                        layout.total, out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) { m.impl("grid_anchors", &vo::grid_anchors_cuda); }
