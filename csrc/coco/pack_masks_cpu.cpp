// CPU kernel of pack_masks: each mask's pixels, row-major, as bits of int64
// words (pixel p in bit p % 64 of word p / 64; the last word zero-padded).
// Masks run in parallel; a nonzero (or NaN) pixel is set, as mask != 0.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "coco/args.h"

namespace vo {
namespace {

at::Tensor pack_masks_cpu(const at::Tensor& masks) {
  check_pack_masks_args(masks, "pack_masks");
  const int64_t N = masks.size(0), P = masks.size(1) * masks.size(2);
  const int64_t words = (P + 63) / 64;
  at::Tensor out = at::zeros({N, words}, masks.options().dtype(at::kLong));
  if (N == 0 || P == 0) return out;
  const at::Tensor m = masks.contiguous();
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, m.scalar_type(), "pack_masks", [&] {
    const scalar_t* mp = m.const_data_ptr<scalar_t>();
    int64_t* o = out.data_ptr<int64_t>();
    at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const scalar_t* px = mp + n * P;
        for (int64_t w = 0; w < words; ++w) {
          const int64_t p0 = w * 64, p1 = std::min(P, p0 + 64);
          uint64_t bits = 0;
          for (int64_t q = p0; q < p1; ++q) bits |= static_cast<uint64_t>(px[q] != scalar_t(0)) << (q - p0);
          o[n * words + w] = static_cast<int64_t>(bits);
        }
      }
    });
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) { m.impl("pack_masks", &vo::pack_masks_cpu); }
