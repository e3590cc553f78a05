// CPU kernel of box_convert between the axis-aligned formats.
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

template <typename in_t, typename out_t>
void convert_loop(const in_t* __restrict__ b, int64_t begin, int64_t end, BoxFormat in_fmt,
                                      BoxFormat out_fmt, out_t* __restrict__ out) {
  using T = convert_acc_t<in_t, out_t>;
  for (int64_t k = begin; k < end; ++k) convert_box<T>(b + 4 * k, in_fmt, out_fmt, out + 4 * k);
}

at::Tensor box_convert_cpu(const at::Tensor& boxes, std::string_view in_fmt, std::string_view out_fmt) {
  constexpr const char* op = "box_convert";
  const ElementwiseBoxArgs a = check_box_convert_args(boxes, in_fmt, out_fmt, op);
  const BoxFormat fi = a.in_fmt, fo = a.out_fmt;
  const auto out_dtype = a.out_dtype;
  at::Tensor out = at::empty(boxes.sizes(), boxes.options().dtype(out_dtype));
  if (out.numel() == 0) return out;
  const at::Tensor b = boxes.reshape({-1, 4}).contiguous();
  const int64_t K = b.size(0);
  VO_DISPATCH_BOX_TYPES(boxes.scalar_type(), "box_convert", [&] {
    using in_t = scalar_t;
    VO_DISPATCH_BOX_TYPES(out_dtype, "box_convert_out", [&] {
      using out_t = scalar_t;
      if constexpr (std::is_same_v<in_t, out_t> || std::is_same_v<out_t, float>) {
        const in_t* src = b.data_ptr<in_t>();
        out_t* dst = out.data_ptr<out_t>();
        at::parallel_for(0, K, 16384, [&](int64_t begin, int64_t end) {
          with_cpu_isa([&] { convert_loop<in_t, out_t>(src, begin, end, fi, fo, dst); });
        });
      } else {
        TORCH_INTERNAL_ASSERT(false, "box_convert: unexpected output dtype");
      }
    });
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("box_convert", &vo::box_convert_cpu);
}
