// grid_anchors: argument checks and output layout, shared by the CPU and CUDA
// kernels (the fake kernel in visionops/_registrations.py mirrors them), and
// the one formula, shared too.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <vector>

#include "checks.h"
#include "macros.h"

namespace vo {

struct AnchorLayout {
  size_t levels = 0;
  int64_t total = 0;                 // anchors of every level
  std::vector<int64_t> cell_offset;  // first cell anchor of each level
  std::vector<int64_t> out_offset;   // first output anchor of each level
};

// Anchor a of a cell at shift (sx, sy): the cell anchor moved by the shift.
// torchvision adds an integer shift to the (rounded) cell anchor in the
// anchors' dtype; so do we.
template <typename T>
VO_HOST_DEVICE_INLINE void anchor_at(const T* cell, int64_t sx, int64_t sy, T* out) {
  out[0] = static_cast<T>(static_cast<T>(sx) + cell[0]);
  out[1] = static_cast<T>(static_cast<T>(sy) + cell[1]);
  out[2] = static_cast<T>(static_cast<T>(sx) + cell[2]);
  out[3] = static_cast<T>(static_cast<T>(sy) + cell[3]);
}

inline AnchorLayout check_grid_anchors_args(const at::Tensor& cell_anchors, at::IntArrayRef anchors_per_level,
                                            at::IntArrayRef grid_heights, at::IntArrayRef grid_widths,
                                            at::IntArrayRef stride_heights, at::IntArrayRef stride_widths,
                                            const char* op) {
  const size_t L = anchors_per_level.size();
  TORCH_CHECK_VALUE(grid_heights.size() == L && grid_widths.size() == L && stride_heights.size() == L &&
                        stride_widths.size() == L,
                    "visionops.", op,
                    ": anchors_per_level, grid_heights, grid_widths, stride_heights and stride_widths must have one "
                    "entry per feature map, got ",
                    L, ", ", grid_heights.size(), ", ", grid_widths.size(), ", ", stride_heights.size(), " and ",
                    stride_widths.size());
  TORCH_CHECK(cell_anchors.dim() == 2 && cell_anchors.size(1) == 4, "visionops.", op,
              ": cell_anchors must have shape [A, 4], got ", shape_str(cell_anchors));
  TORCH_CHECK(at::isFloatingType(cell_anchors.scalar_type()), "visionops.", op,
              ": cell_anchors must be a floating point tensor, got ", cell_anchors.scalar_type());
  AnchorLayout layout;
  layout.levels = L;
  int64_t cells = 0;
  for (size_t l = 0; l < L; ++l) {
    TORCH_CHECK_VALUE(anchors_per_level[l] >= 0 && grid_heights[l] >= 0 && grid_widths[l] >= 0, "visionops.", op,
                      ": anchor counts and grid sizes must not be negative, at level ", l);
    layout.cell_offset.push_back(cells);
    layout.out_offset.push_back(layout.total);
    cells += anchors_per_level[l];
    layout.total += grid_heights[l] * grid_widths[l] * anchors_per_level[l];
  }
  TORCH_CHECK_VALUE(cells == cell_anchors.size(0), "visionops.", op, ": anchors_per_level sums to ", cells,
                    " but cell_anchors has ", cell_anchors.size(0), " rows");
  return layout;
}

}  // namespace vo
