// CUDA kernel of box_area; the formula is boxes/math.h's.
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
__global__ void box_area_kernel(const in_t* __restrict__ b, int64_t K, BoxFormat fmt, out_t* __restrict__ out) {
  using T = area_acc_t<in_t>;
  VO_CUDA_1D_KERNEL_LOOP(k, K) { out[k] = static_cast<out_t>(area_of_box<T>(b + 4 * k, fmt)); }
}

template <typename in_t, typename out_t>
void launch(const at::Tensor& b, BoxFormat fmt, at::Tensor& out) {
  const int64_t K = b.size(0);
  box_area_kernel<in_t, out_t><<<cuda::blocks_for(K), cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      b.data_ptr<in_t>(), K, fmt, out.data_ptr<out_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor box_area_cuda(const at::Tensor& boxes, std::string_view fmt) {
  constexpr const char* op = "box_area";
  const ElementwiseBoxArgs a = check_box_area_args(boxes, fmt, op);
  const BoxFormat f = a.in_fmt;
  const auto out_dtype = a.out_dtype;
  const c10::cuda::CUDAGuard guard(boxes.device());
  at::Tensor out = at::empty(a.out_shape, boxes.options().dtype(out_dtype));
  if (out.numel() == 0) return out;
  const at::Tensor b = boxes.reshape({-1, 4}).contiguous();
  VO_DISPATCH_BOX_TYPES(boxes.scalar_type(), "box_area", [&] {
    using in_t = scalar_t;
    AT_DISPATCH_SWITCH(out_dtype, "box_area_out",
                       AT_DISPATCH_CASE(at::kFloat, [&] { launch<in_t, float>(b, f, out); })
                       AT_DISPATCH_CASE(at::kDouble, [&] { launch<in_t, double>(b, f, out); })
                       AT_DISPATCH_CASE(at::kInt, [&] { launch<in_t, int32_t>(b, f, out); })
                       AT_DISPATCH_CASE(at::kLong, [&] { launch<in_t, int64_t>(b, f, out); }));
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("box_area", &vo::box_area_cuda);
}
