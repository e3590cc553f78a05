// CUDA kernels of sigmoid_focal_loss and its backward: elementwise, with
// losses/math.h's formulas; 'mean' and 'sum' reduce the elementwise losses
// (in float for half and bfloat16) with ATen's deterministic sum.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <string_view>
#include <tuple>

#include "core/cuda_launch.h"
#include "core/loss_grad.h"
#include "losses/args.h"
#include "losses/focal_bce.h"
#include "losses/math.h"

namespace vo {
namespace {

template <typename scalar_t, typename out_t>
__global__ void focal_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ t, int64_t K,
                             at::opmath_type<scalar_t> alpha, at::opmath_type<scalar_t> gamma,
                             out_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  VO_CUDA_1D_KERNEL_LOOP(i, K) {
    const T xi = static_cast<T>(x[i]), ti = static_cast<T>(t[i]);
    out[i] = static_cast<out_t>(gamma == T(2) ? sigmoid_focal_loss_value<true, T>(xi, ti, alpha, gamma)
                                              : sigmoid_focal_loss_value<false, T>(xi, ti, alpha, gamma));
  }
}

template <typename scalar_t>
__global__ void focal_backward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ t,
                                      const scalar_t* __restrict__ g, int64_t g_stride,
                                      at::opmath_type<scalar_t> g_scale, int64_t K, at::opmath_type<scalar_t> alpha,
                                      at::opmath_type<scalar_t> gamma, scalar_t* __restrict__ gx,
                                      scalar_t* __restrict__ gt) {
  using T = at::opmath_type<scalar_t>;
  VO_CUDA_1D_KERNEL_LOOP(i, K) {
    T dx, dt;
    const T xi = static_cast<T>(x[i]), ti = static_cast<T>(t[i]), gi = static_cast<T>(g[i * g_stride]) * g_scale;
    if (gamma == T(2)) {
      sigmoid_focal_loss_backward<true, T>(xi, ti, alpha, gamma, gi, dx, dt);
    } else {
      sigmoid_focal_loss_backward<false, T>(xi, ti, alpha, gamma, gi, dx, dt);
    }
    gx[i] = static_cast<scalar_t>(dx);
    if (gt != nullptr) gt[i] = static_cast<scalar_t>(dt);  // null: the targets' gradient is not asked for
  }
}

at::Tensor sigmoid_focal_loss_cuda(const at::Tensor& inputs, const at::Tensor& targets, double alpha, double gamma,
                                   std::string_view reduction) {
  constexpr const char* op = "sigmoid_focal_loss";
  const Reduction red = parse_reduction(reduction, op);
  check_focal_alpha(alpha, op);
  check_focal_args(inputs, targets, op);
  if (gamma == 0.0) return sigmoid_focal_loss_gamma_zero(inputs, targets, alpha, red);
  const c10::cuda::CUDAGuard guard(inputs.device());
  const int64_t K = inputs.numel();
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, inputs.scalar_type(), "sigmoid_focal_loss", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor x = inputs.contiguous();
    const at::Tensor t = targets.to(inputs.scalar_type()).contiguous();
    auto stream = at::cuda::getCurrentCUDAStream();
    if (red == Reduction::None) {
      result = at::empty(inputs.sizes(), inputs.options());
      if (K == 0) return;
      focal_kernel<scalar_t, scalar_t><<<cuda::blocks_for(K), cuda::kThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(), t.const_data_ptr<scalar_t>(), K, static_cast<T>(alpha),
          static_cast<T>(gamma), result.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      return;
    }
    at::Tensor losses = at::empty({K}, inputs.options().dtype(c10::CppTypeToScalarType<T>::value));
    if (K > 0) {
      focal_kernel<scalar_t, T><<<cuda::blocks_for(K), cuda::kThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(), t.const_data_ptr<scalar_t>(), K, static_cast<T>(alpha),
          static_cast<T>(gamma), losses.mutable_data_ptr<T>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    result = (red == Reduction::Mean ? losses.mean() : losses.sum()).to(inputs.scalar_type());
  });
  return result;
}

std::tuple<at::Tensor, at::Tensor> sigmoid_focal_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& inputs,
                                                                    const at::Tensor& targets, double alpha,
                                                                    double gamma, std::string_view reduction,
                                                                    bool targets_grad) {
  constexpr const char* op = "_sigmoid_focal_loss_backward";
  const Reduction red = check_focal_backward_args(grad, inputs, targets, alpha, reduction, op);
  const c10::cuda::CUDAGuard guard(inputs.device());
  at::Tensor gx = at::empty(inputs.sizes(), inputs.options());
  at::Tensor gt = at::empty(targets_grad ? inputs.sizes() : at::IntArrayRef{0}, inputs.options());
  const int64_t K = inputs.numel();
  if (K > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, inputs.scalar_type(), "_sigmoid_focal_loss_backward",
                                    [&] {
      using T = at::opmath_type<scalar_t>;
      const at::Tensor x = inputs.contiguous();
      const at::Tensor t = targets.to(inputs.scalar_type()).contiguous();
      const LossGrad lg = loss_grad(grad, red, K, inputs.scalar_type());
      const at::Tensor& g = lg.g;
      const int64_t g_stride = lg.stride;
      const T g_scale = static_cast<T>(lg.scale);
      focal_backward_kernel<scalar_t><<<cuda::blocks_for(K), cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          x.const_data_ptr<scalar_t>(), t.const_data_ptr<scalar_t>(), g.const_data_ptr<scalar_t>(), g_stride, g_scale,
          K, static_cast<T>(alpha), static_cast<T>(gamma), gx.mutable_data_ptr<scalar_t>(),
          targets_grad ? gt.mutable_data_ptr<scalar_t>() : nullptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return {gx, gt.to(targets.scalar_type())};
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("sigmoid_focal_loss", &vo::sigmoid_focal_loss_cuda);
  m.impl("_sigmoid_focal_loss_backward", &vo::sigmoid_focal_loss_backward_cuda);
}
