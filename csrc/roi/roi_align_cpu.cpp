// CPU kernels of roi_align and its backward. The geometry is
// roi/math.h's; the channels-last core is align_core_cpu.h's.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "core/huge_pages.h"
#include "roi/align_core_cpu.h"
#include "roi/args.h"
#include "roi/map_slices.h"

namespace vo {
namespace {

at::Tensor roi_align_cpu(const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                         int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  constexpr const char* op = "roi_align";
  check_roi_input(input, op);
  check_rois(rois, input, op);
  check_output_size(pooled_h, pooled_w, op);
  check_sampling_ratio(sampling_ratio, op);
  const int64_t K = rois.size(0), N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  at::Tensor out = at::empty({K, C, pooled_h, pooled_w}, input.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor r = rois.to(c10::CppTypeToScalarType<T>::value).contiguous();
    const T* roi = r.data_ptr<T>();
    if (H == 0 || W == 0) {
      out.zero_();
      return;
    }
    advise_huge_pages(out);
    const cpu::RoisByImage<T> groups(roi, cpu::all_rois(K), N);
    cpu::roi_align_forward_map<scalar_t, T>(cpu::readable_map(input), roi, groups,
                                            {spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned},
                                            out.data_ptr<scalar_t>());
    for (const int64_t k : cpu::invalid_rois(roi, K, N)) out[k].zero_();
  });
  return out;
}

at::Tensor roi_align_backward_cpu(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                  int64_t pooled_h, int64_t pooled_w, int64_t N, int64_t C, int64_t H, int64_t W,
                                  int64_t sampling_ratio, bool aligned, bool channels_last) {
  constexpr const char* op = "_roi_align_backward";
  check_rois(rois, grad, op);
  const int64_t K = rois.size(0);
  check_roi_grad(grad, K, C, pooled_h, pooled_w, op);
  check_sampling_ratio(sampling_ratio, op);
  at::Tensor grad_map = cpu::empty_map(N, C, H, W, grad.options(), channels_last);
  if (grad_map.numel() == 0) return grad_map;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "_roi_align_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    constexpr auto acc_type = c10::CppTypeToScalarType<T>::value;
    const at::Tensor r = rois.to(acc_type).contiguous();
    const T* roi = r.data_ptr<T>();
    const at::Tensor g = grad.to(acc_type).contiguous();
    const cpu::RoisByImage<T> groups(roi, cpu::all_rois(K), N);
    cpu::roi_align_backward_map<scalar_t, T>(g.data_ptr<T>(), roi, groups,
                                             {spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned}, grad_map,
                                             channels_last);
  });
  return grad_map;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("roi_align", &vo::roi_align_cpu);
  m.impl("_roi_align_backward", &vo::roi_align_backward_cpu);
}
