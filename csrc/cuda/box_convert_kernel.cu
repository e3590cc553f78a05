// CUDA kernel of box_convert; the formulas are common/box.h's.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <string_view>
#include <type_traits>

#include "../box_dtypes.h"
#include "../checks.h"
#include "../common/box.h"
#include "launch.h"

namespace vo {
namespace {

template <typename scalar_t, typename out_t>
using convert_acc_t = std::conditional_t<std::is_integral_v<out_t>, int64_t, box_acc_t<scalar_t>>;

template <typename in_t, typename out_t>
__global__ void box_convert_kernel(const in_t* __restrict__ b, int64_t K, BoxFormat in_fmt, BoxFormat out_fmt,
                                   out_t* __restrict__ out) {
  using T = convert_acc_t<in_t, out_t>;
  VO_CUDA_1D_KERNEL_LOOP(k, K) {
    const in_t* p = b + 4 * k;
    const Box4<T> r = box_convert_value(
        Box4<T>{static_cast<T>(p[0]), static_cast<T>(p[1]), static_cast<T>(p[2]), static_cast<T>(p[3])}, in_fmt,
        out_fmt);
    out_t* o = out + 4 * k;
    o[0] = static_cast<out_t>(r.x1);
    o[1] = static_cast<out_t>(r.y1);
    o[2] = static_cast<out_t>(r.x2);
    o[3] = static_cast<out_t>(r.y2);
  }
}

at::Tensor box_convert_cuda(const at::Tensor& boxes, std::string_view in_fmt, std::string_view out_fmt) {
  constexpr const char* op = "box_convert";
  const BoxFormat fi = parse_box_format(in_fmt, op, "in_fmt");
  const BoxFormat fo = parse_box_format(out_fmt, op, "out_fmt");
  check_boxes(boxes, op, "boxes", 1, "[..., 4]");
  const c10::cuda::CUDAGuard guard(boxes.device());
  const auto out_dtype = convert_out_dtype(boxes.scalar_type(), fi, fo);
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
