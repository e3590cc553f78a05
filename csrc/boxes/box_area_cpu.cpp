// CPU kernel of box_area: [..., 4] boxes -> [...] areas.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <string_view>
#include <type_traits>

#include "boxes/args.h"
#include "boxes/math.h"
#include "core/cpu_isa.h"
#include "core/dtypes.h"

namespace vo {
namespace {

template <typename scalar_t, typename out_t>
void area_loop(const scalar_t* __restrict__ b, int64_t begin, int64_t end, BoxFormat fmt,
                                   out_t* __restrict__ out) {
  using T = area_acc_t<scalar_t>;
  for (int64_t k = begin; k < end; ++k) out[k] = static_cast<out_t>(area_of_box<T>(b + 4 * k, fmt));
}

template <typename in_t, typename out_t>
void run(const at::Tensor& b, BoxFormat fmt, at::Tensor& out) {
  const in_t* src = b.data_ptr<in_t>();
  out_t* dst = out.data_ptr<out_t>();
  at::parallel_for(0, b.size(0), 32768,
                   [&](int64_t begin, int64_t end) {
                     with_cpu_isa([&] { area_loop<in_t, out_t>(src, begin, end, fmt, dst); });
                   });
}

at::Tensor box_area_cpu(const at::Tensor& boxes, std::string_view fmt) {
  constexpr const char* op = "box_area";
  const ElementwiseBoxArgs a = check_box_area_args(boxes, fmt, op);
  const BoxFormat f = a.in_fmt;
  const auto out_dtype = a.out_dtype;
  at::Tensor out = at::empty(a.out_shape, boxes.options().dtype(out_dtype));
  const int64_t K = out.numel();
  if (K == 0) return out;
  const at::Tensor b = boxes.reshape({-1, 4}).contiguous();
  VO_DISPATCH_BOX_TYPES(boxes.scalar_type(), "box_area", [&] {
    using in_t = scalar_t;
    AT_DISPATCH_SWITCH(out_dtype, "box_area_out",
                       AT_DISPATCH_CASE(at::kFloat, [&] { run<in_t, float>(b, f, out); })
                       AT_DISPATCH_CASE(at::kDouble, [&] { run<in_t, double>(b, f, out); })
                       AT_DISPATCH_CASE(at::kInt, [&] { run<in_t, int32_t>(b, f, out); })
                       AT_DISPATCH_CASE(at::kLong, [&] { run<in_t, int64_t>(b, f, out); }));
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("box_area", &vo::box_area_cpu);
}
