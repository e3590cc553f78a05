// CUDA kernels of the IoU losses: one thread per pair, formulas from
// boxes/math.h. 'mean' and 'sum' reduce the per-pair losses with ATen's
// (deterministic) sum in float64, as the CPU kernel accumulates.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <string_view>
#include <tuple>
#include <vector>

#include "boxes/args.h"
#include "boxes/math.h"
#include "core/cuda_launch.h"
#include "core/dtypes.h"
#include "core/loss_grad.h"

namespace vo {
namespace {

template <IouVariant V, typename scalar_t, typename out_t>
__global__ void loss_kernel(const scalar_t* __restrict__ p, const scalar_t* __restrict__ t, int64_t K, double eps,
                            out_t* __restrict__ out) {
  using T = box_acc_t<scalar_t>;
  const T teps = static_cast<T>(eps);
  VO_CUDA_1D_KERNEL_LOOP(k, K) {
    out[k] = static_cast<out_t>(box_iou_loss<V>(load_box<T>(p + 4 * k), load_box<T>(t + 4 * k), teps));
  }
}

template <IouVariant V>
at::Tensor loss_forward(const at::Tensor& boxes1, const at::Tensor& boxes2, std::string_view reduction,
                        double eps, const char* op) {
  const Reduction red = parse_reduction(reduction, op);
  const LossShapes s = loss_shapes(boxes1, boxes2, op);
  const c10::cuda::CUDAGuard guard(boxes1.device());
  const auto out_dtype = iou_out_dtype(boxes1.scalar_type());
  at::Tensor per_pair = at::empty(s.out_shape, boxes1.options().dtype(out_dtype));
  const int64_t K = s.K;
  if (K > 0) {
    VO_DISPATCH_BOX_TYPES(boxes1.scalar_type(), "box_iou_loss", [&] {
      using in_t = scalar_t;
      AT_DISPATCH_FLOATING_TYPES(out_dtype, "loss_out", [&] {
        loss_kernel<V, in_t, scalar_t><<<cuda::blocks_for(K), cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
            s.boxes1.data_ptr<in_t>(), s.boxes2.data_ptr<in_t>(), K, eps, per_pair.data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  if (red == Reduction::None) return per_pair;
  if (K == 0) return at::zeros({}, per_pair.options());
  at::Tensor total = per_pair.sum(at::kDouble);
  if (red == Reduction::Mean) total = total / static_cast<double>(K);
  return total.to(out_dtype);
}

at::Tensor generalized_box_iou_loss_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2,
                                         std::string_view reduction, double eps) {
  return loss_forward<IouVariant::GIoU>(boxes1, boxes2, reduction, eps, "generalized_box_iou_loss");
}

at::Tensor distance_box_iou_loss_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2, std::string_view reduction,
                                      double eps) {
  return loss_forward<IouVariant::DIoU>(boxes1, boxes2, reduction, eps, "distance_box_iou_loss");
}

at::Tensor complete_box_iou_loss_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2, std::string_view reduction,
                                      double eps) {
  return loss_forward<IouVariant::CIoU>(boxes1, boxes2, reduction, eps, "complete_box_iou_loss");
}

// ---------------------------------------------------------------- backward

template <IouVariant V, typename scalar_t>
__global__ void loss_backward_kernel(const scalar_t* __restrict__ p, const scalar_t* __restrict__ t,
                                     const box_acc_t<scalar_t>* __restrict__ g, int64_t g_stride,
                                     box_acc_t<scalar_t> g_scale, int64_t K, double eps, scalar_t* __restrict__ gp,
                                     scalar_t* __restrict__ gt) {
  using T = box_acc_t<scalar_t>;
  VO_CUDA_1D_KERNEL_LOOP(k, K) {
    box_iou_loss_backward_pair<V>(p, t, k, static_cast<T>(eps), g[k * g_stride] * g_scale, gp, gt);
  }
}

template <IouVariant V>
void loss_backward_impl(const LossShapes& s, const at::Tensor& grad, Reduction red, double eps, at::Tensor& gp,
                        at::Tensor& gt) {
  const int64_t K = s.K;
  VO_DISPATCH_FLOAT_BOX_TYPES(s.boxes1.scalar_type(), "box_iou_loss_backward", [&] {
    using T = box_acc_t<scalar_t>;
    const LossGrad g = loss_grad(grad, red, K, c10::CppTypeToScalarType<T>::value);
    loss_backward_kernel<V, scalar_t><<<cuda::blocks_for(K), cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        s.boxes1.data_ptr<scalar_t>(), s.boxes2.data_ptr<scalar_t>(), g.g.data_ptr<T>(), g.stride, static_cast<T>(g.scale), K, eps,
        gp.data_ptr<scalar_t>(), gt.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

std::tuple<at::Tensor, at::Tensor> box_iou_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& boxes1,
                                                              const at::Tensor& boxes2, std::string_view variant,
                                                              std::string_view reduction, double eps) {
  constexpr const char* op = "_box_iou_loss_backward";
  const IouVariant v = parse_iou_variant(variant, op);
  const Reduction red = parse_reduction(reduction, op);
  const LossShapes s = check_loss_backward_args(grad, boxes1, boxes2, v, red, op);
  const c10::cuda::CUDAGuard guard(boxes1.device());
  at::Tensor gp = at::empty({s.K, 4}, boxes1.options());
  at::Tensor gt = at::empty({s.K, 4}, boxes2.options());
  if (s.K > 0) {
    with_iou_variant(v, [&](auto variant) {
      // Plain IoU is no loss here (check_loss_backward_args refuses it).
      if constexpr (decltype(variant)::value != IouVariant::IoU) {
        loss_backward_impl<decltype(variant)::value>(s, grad, red, eps, gp, gt);
      }
    });
  }
  return {gp.view(boxes1.sizes()), gt.view(boxes2.sizes())};
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("generalized_box_iou_loss", &vo::generalized_box_iou_loss_cuda);
  m.impl("distance_box_iou_loss", &vo::distance_box_iou_loss_cuda);
  m.impl("complete_box_iou_loss", &vo::complete_box_iou_loss_cuda);
  m.impl("_box_iou_loss_backward", &vo::box_iou_loss_backward_cuda);
}
