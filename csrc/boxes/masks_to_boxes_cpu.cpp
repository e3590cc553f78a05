// CPU kernel of masks_to_boxes: the tight box (x1, y1, x2, y2) of each mask's
// nonzero pixels, in float32 as torchvision returns it. Each row's first and
// last nonzero columns come from branch-free min/max loops that vectorize;
// masks run in parallel. An empty mask gives (0, 0, 0, 0) (torchvision
// raises; detectron2 returns zeros).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "boxes/args.h"
#include "core/cpu_isa.h"
#include "core/macros.h"

namespace vo {
namespace {

template <typename scalar_t>
void row_extent(const scalar_t* __restrict__ row, int64_t W, int64_t& lo, int64_t& hi) {
  int64_t l = W, h = -1;
  for (int64_t w = 0; w < W; ++w) {
    const bool nz = row[w] != scalar_t(0);  // NaN counts as set, as mask != 0 does
    l = std::min(l, nz ? w : W);
    h = std::max(h, nz ? w : int64_t(-1));
  }
  lo = l;
  hi = h;
}

at::Tensor masks_to_boxes_cpu(const at::Tensor& masks) {
  constexpr const char* op = "masks_to_boxes";
  check_masks_to_boxes_args(masks, op);
  const int64_t N = masks.size(0), H = masks.size(1), W = masks.size(2);
  at::Tensor out = at::zeros({N, 4}, masks.options().dtype(at::kFloat));
  if (N == 0 || H == 0 || W == 0) return out;
  const at::Tensor m = masks.contiguous();
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, m.scalar_type(), "masks_to_boxes", [&] {
    const scalar_t* mp = m.data_ptr<scalar_t>();
    float* o = out.data_ptr<float>();
    at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        int64_t x1 = W, x2 = -1, y1 = H, y2 = -1;
        for (int64_t y = 0; y < H; ++y) {
          int64_t lo, hi;
          with_cpu_isa([&] { row_extent<scalar_t>(mp + (n * H + y) * W, W, lo, hi); });
          if (hi < 0) continue;
          x1 = std::min(x1, lo);
          x2 = std::max(x2, hi);
          y1 = std::min(y1, y);
          y2 = y;
        }
        if (x2 < 0) continue;  // empty: zeros
        o[4 * n] = static_cast<float>(x1);
        o[4 * n + 1] = static_cast<float>(y1);
        o[4 * n + 2] = static_cast<float>(x2);
        o[4 * n + 3] = static_cast<float>(y2);
      }
    });
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) { m.impl("masks_to_boxes", &vo::masks_to_boxes_cpu); }
