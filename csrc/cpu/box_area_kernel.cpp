// CPU kernel of box_area: [..., 4] boxes -> [...] areas.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <string_view>
#include <type_traits>

#include "../box_dtypes.h"
#include "../checks.h"
#include "../common/box.h"

namespace vo {
namespace {

// Integers multiply in int64 (then wrap to int32 exactly as torchvision's
// int32 arithmetic does); floats in their opmath type.
template <typename scalar_t>
using area_acc_t = std::conditional_t<std::is_integral_v<scalar_t>, int64_t, at::opmath_type<scalar_t>>;

template <typename scalar_t, typename out_t>
VO_CPU_MULTIVERSION void area_loop(const scalar_t* __restrict__ b, int64_t begin, int64_t end, BoxFormat fmt,
                                   out_t* __restrict__ out) {
  using T = area_acc_t<scalar_t>;
  for (int64_t k = begin; k < end; ++k) {
    const scalar_t* p = b + 4 * k;
    out[k] = static_cast<out_t>(box_area_value(static_cast<T>(p[0]), static_cast<T>(p[1]), static_cast<T>(p[2]),
                                                 static_cast<T>(p[3]), fmt));
  }
}

template <typename in_t, typename out_t>
void run(const at::Tensor& b, BoxFormat fmt, at::Tensor& out) {
  const in_t* src = b.data_ptr<in_t>();
  out_t* dst = out.data_ptr<out_t>();
  at::parallel_for(0, b.size(0), 32768,
                   [&](int64_t begin, int64_t end) { area_loop<in_t, out_t>(src, begin, end, fmt, dst); });
}

at::Tensor box_area_cpu(const at::Tensor& boxes, std::string_view fmt) {
  constexpr const char* op = "box_area";
  const BoxFormat f = parse_box_format(fmt, op, "fmt");
  check_boxes(boxes, op, "boxes", 1, "[..., 4]");
  const auto out_dtype = area_out_dtype(boxes.scalar_type());
  const std::vector<int64_t> out_shape(boxes.sizes().begin(), boxes.sizes().end() - 1);
  at::Tensor out = at::empty(out_shape, boxes.options().dtype(out_dtype));
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
