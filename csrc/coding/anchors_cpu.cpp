// CPU kernel of grid_anchors: every level's anchors in one pass, in
// torchvision's AnchorGenerator order (level, row, column, cell anchor).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "coding/args.h"

namespace vo {
namespace {

at::Tensor grid_anchors_cpu(const at::Tensor& cell_anchors, at::IntArrayRef anchors_per_level,
                            at::IntArrayRef grid_heights, at::IntArrayRef grid_widths, at::IntArrayRef stride_heights,
                            at::IntArrayRef stride_widths) {
  const AnchorLayout layout = check_grid_anchors_args(cell_anchors, anchors_per_level, grid_heights, grid_widths,
                                                      stride_heights, stride_widths, "grid_anchors");
  at::Tensor out = at::empty({layout.total, 4}, cell_anchors.options());
  if (layout.total == 0) return out;
  const at::Tensor base = cell_anchors.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, cell_anchors.scalar_type(), "grid_anchors", [&] {
    const scalar_t* b = base.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    // One parallel region over the rows of every level.
    std::vector<int64_t> row_begin(layout.levels + 1, 0);
    for (size_t l = 0; l < layout.levels; ++l) row_begin[l + 1] = row_begin[l] + grid_heights[l];
    at::parallel_for(0, row_begin[layout.levels], 8, [&](int64_t r0, int64_t r1) {
      size_t l = 0;
      for (int64_t r = r0; r < r1; ++r) {
        while (r >= row_begin[l + 1]) ++l;
        const int64_t y = r - row_begin[l];
        const int64_t A = anchors_per_level[l], W = grid_widths[l];
        const scalar_t* bl = b + 4 * layout.cell_offset[l];
        scalar_t* p = o + 4 * (layout.out_offset[l] + y * W * A);
        const int64_t sy = y * stride_heights[l];
        for (int64_t x = 0; x < W; ++x) {
          for (int64_t a = 0; a < A; ++a) anchor_at(bl + 4 * a, x * stride_widths[l], sy, p + 4 * (x * A + a));
        }
      }
    });
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) { m.impl("grid_anchors", &vo::grid_anchors_cpu); }
