// CUDA kernel of box_convert; the formulas are boxes/math.h's.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <string_view>
#include <type_traits>

#include "boxes/args.h"
#include "boxes/math.h"
#include "core/cuda_launch.h"
#include "core/dtypes.h"

namespace vo {
namespace {

template <typename in_t, typename out_t>
__global__ void box_convert_kernel(const in_t* __restrict__ b, int64_t K, BoxFormat in_fmt, BoxFormat out_fmt,
                                   out_t* __restrict__ out) {
  using T = convert_acc_t<in_t, out_t>;
  VO_CUDA_1D_KERNEL_LOOP(k, K) { convert_box<T>(b + 4 * k, in_fmt, out_fmt, out + 4 * k); }
}

at::Tensor box_convert_cuda(const at::Tensor& boxes, std::string_view in_fmt, std::string_view out_fmt) {
  constexpr const char* op = "box_convert";
  const ElementwiseBoxArgs a = check_box_convert_args(boxes, in_fmt, out_fmt, op);
  const BoxFormat fi = a.in_fmt, fo = a.out_fmt;
  const auto out_dtype = a.out_dtype;
  const c10::cuda::CUDAGuard guard(boxes.device());
  at::Tensor out = at::empty(boxes.sizes(), boxes.options().dtype(out_dtype));
  if (out.numel() == 0) return out;
  const at::Tensor b = boxes.reshape({-1, 4}).contiguous();
  const int64_t K = b.size(0);
  VO_DISPATCH_BOX_TYPES(boxes.scalar_type(), "box_convert", [&] {
    using in_t = scalar_t;
    if (out_dtype == boxes.scalar_type()) {
      box_convert_kernel<in_t, in_t><<<cuda::blocks_for(K), cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          b.data_ptr<in_t>(), K, fi, fo, out.data_ptr<in_t>());
    } else {
      TORCH_INTERNAL_ASSERT(out_dtype == at::kFloat, "box_convert: unexpected output dtype");
      box_convert_kernel<in_t, float><<<cuda::blocks_for(K), cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          b.data_ptr<in_t>(), K, fi, fo, out.data_ptr<float>());
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("box_convert", &vo::box_convert_cuda);
}
