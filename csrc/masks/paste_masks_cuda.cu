// CUDA kernel of paste_masks: one thread per output pixel in a grid-stride
// loop. A thread expands its mask's box (a few flops, the box is in cache for
// the whole image row), and outside the box writes 0; inside it reads four
// pixels of the padded mask, interpolated as on the CPU with the same
// functions of masks/math.h. The integer boxes come from a first small kernel
// so the pixel kernel is dispatched on the mask dtype only. No host sync.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <optional>

#include "core/cuda_launch.h"
#include "masks/args.h"
#include "masks/math.h"

namespace vo {
namespace {

template <typename B>
__global__ void paste_boxes_kernel(const B* __restrict__ boxes, int64_t n, at::opmath_type<B> scale,
                                   PasteBox* __restrict__ out) {
  VO_CUDA_1D_KERNEL_LOOP(i, n) { out[i] = expand_paste_box<B, at::opmath_type<B>>(boxes + 4 * i, scale); }
}

template <typename scalar_t, typename out_t>
__global__ void paste_masks_kernel(const scalar_t* __restrict__ masks, const PasteBox* __restrict__ boxes,
                                   int64_t mh, int64_t mw, int64_t padding, int64_t H, int64_t W, int64_t total,
                                   at::opmath_type<scalar_t> threshold, out_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  VO_CUDA_1D_KERNEL_LOOP(i, total) {
    const int64_t x = i % W, y = (i / W) % H, n = i / (W * H);
    const PasteBox b = boxes[n];
    const bool inside = x >= paste_span_begin(b.x1) && x < paste_span_end(b.x2, W) &&
                        y >= paste_span_begin(b.y1) && y < paste_span_end(b.y2, H);
    acc_t v = acc_t(0);
    if (inside) {
      const LinearTap<acc_t> tx = linear_tap<scalar_t, acc_t>(x - b.x1, mw + 2 * padding, b.w);
      const LinearTap<acc_t> ty = linear_tap<scalar_t, acc_t>(y - b.y1, mh + 2 * padding, b.h);
      const scalar_t* m = masks + n * mh * mw;
      const acc_t r0 = lerp_pair(padded_mask_value<scalar_t, acc_t>(m, ty.i0, tx.i0, mh, mw, padding), tx.l0,
                                 padded_mask_value<scalar_t, acc_t>(m, ty.i0, tx.i1, mh, mw, padding), tx.l1);
      const acc_t r1 = lerp_pair(padded_mask_value<scalar_t, acc_t>(m, ty.i1, tx.i0, mh, mw, padding), tx.l0,
                                 padded_mask_value<scalar_t, acc_t>(m, ty.i1, tx.i1, mh, mw, padding), tx.l1);
      v = lerp_pair(r0, ty.l0, r1, ty.l1);
    }
    out[i] = paste_output<scalar_t, out_t>(v, threshold);
  }
}

at::Tensor paste_masks_cuda(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width,
                            int64_t padding, std::optional<double> threshold) {
  constexpr const char* op = "paste_masks";
  const std::vector<int64_t> shape = check_paste_masks_args(masks, boxes, height, width, padding, op);
  const c10::cuda::CUDAGuard guard(masks.device());
  at::Tensor out = at::empty(shape, threshold ? masks.options().dtype(at::kBool) : masks.options());
  const int64_t N = shape[0];
  if (out.numel() == 0) return out;
  const int64_t mh = masks.size(2), mw = masks.size(3);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  // PasteBox is 6 int64: the integer boxes live in an int64 tensor.
  static_assert(sizeof(PasteBox) == 6 * sizeof(int64_t), "PasteBox layout");
  at::Tensor pb = at::empty({N, 6}, boxes.options().dtype(at::kLong));
  PasteBox* pbp = reinterpret_cast<PasteBox*>(pb.mutable_data_ptr<int64_t>());
  const at::Tensor b = boxes.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, b.scalar_type(), "paste_masks", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t scale = static_cast<acc_t>(static_cast<double>(mw + 2 * padding) / mw);
    paste_boxes_kernel<scalar_t><<<cuda::blocks_for(N), cuda::kThreads, 0, stream>>>(b.const_data_ptr<scalar_t>(), N,
                                                                                      scale, pbp);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  const at::Tensor m = masks.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, m.scalar_type(), "paste_masks", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t t = static_cast<acc_t>(static_cast<scalar_t>(threshold.value_or(0.0)));
    const unsigned int blocks = cuda::blocks_for(out.numel());
    if (threshold) {
      paste_masks_kernel<scalar_t, bool><<<blocks, cuda::kThreads, 0, stream>>>(
          m.const_data_ptr<scalar_t>(), pbp, mh, mw, padding, height, width, out.numel(), t,
          out.mutable_data_ptr<bool>());
    } else {
      paste_masks_kernel<scalar_t, scalar_t><<<blocks, cuda::kThreads, 0, stream>>>(
          m.const_data_ptr<scalar_t>(), pbp, mh, mw, padding, height, width, out.numel(), t,
          out.mutable_data_ptr<scalar_t>());
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) { m.impl("paste_masks", &vo::paste_masks_cuda); }
