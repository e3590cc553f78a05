// CPU kernels of sigmoid_focal_loss and its backward: one fused pass with
// losses/math.h's formulas (vectorized: exp and log are fast_math.h's).
// Sums run over fixed chunks added in chunk order, so 'mean' and 'sum' are
// bitwise the same for any thread count.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <string_view>
#include <tuple>
#include <vector>

#include "core/cpu_isa.h"
#include "core/loss_grad.h"
#include "losses/args.h"
#include "losses/focal_bce.h"
#include "losses/math.h"

namespace vo {
namespace {

constexpr int64_t kChunk = 4096;

template <bool kSquare, typename scalar_t>
void focal_chunk(const scalar_t* __restrict__ x, const scalar_t* __restrict__ t, int64_t n,
                                     at::opmath_type<scalar_t> alpha, at::opmath_type<scalar_t> gamma,
                                     at::opmath_type<scalar_t>* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  for (int64_t i = 0; i < n; ++i)
    out[i] = sigmoid_focal_loss_value<kSquare, T>(static_cast<T>(x[i]), static_cast<T>(t[i]), alpha, gamma);
}

at::Tensor sigmoid_focal_loss_cpu(const at::Tensor& inputs, const at::Tensor& targets, double alpha, double gamma,
                                  std::string_view reduction) {
  constexpr const char* op = "sigmoid_focal_loss";
  const Reduction red = parse_reduction(reduction, op);
  check_focal_alpha(alpha, op);
  check_focal_args(inputs, targets, op);
  if (gamma == 0.0) return sigmoid_focal_loss_gamma_zero(inputs, targets, alpha, red);
  at::Tensor out = at::empty(red == Reduction::None ? inputs.sizes() : at::IntArrayRef{}, inputs.options());
  const int64_t K = inputs.numel();
  if (K == 0) {
    // torch's mean of nothing is NaN, its sum 0.
    return red == Reduction::None ? out : out.fill_(red == Reduction::Mean ? NAN : 0.0);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, inputs.scalar_type(), "sigmoid_focal_loss", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor x = inputs.contiguous();
    const at::Tensor t = targets.to(inputs.scalar_type()).contiguous();
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* tp = t.data_ptr<scalar_t>();
    scalar_t* o = red == Reduction::None ? out.data_ptr<scalar_t>() : nullptr;
    const int64_t chunks = (K + kChunk - 1) / kChunk;
    std::vector<double> partial(chunks, 0.0);
    at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
      T local[kChunk];
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t begin = c * kChunk, n = std::min(K, begin + kChunk) - begin;
        with_cpu_isa([&] {
          if (gamma == 2.0) {
            focal_chunk<true, scalar_t>(xp + begin, tp + begin, n, static_cast<T>(alpha), static_cast<T>(gamma), local);
          } else {
            focal_chunk<false, scalar_t>(xp + begin, tp + begin, n, static_cast<T>(alpha), static_cast<T>(gamma),
                                         local);
          }
        });
        if (o) {
          for (int64_t i = 0; i < n; ++i) o[begin + i] = static_cast<scalar_t>(local[i]);
        } else {
          double sum = 0.0;
          for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(local[i]);
          partial[c] = sum;
        }
      }
    });
    if (!o) {
      double total = 0.0;
      for (double v : partial) total += v;
      out.fill_(red == Reduction::Mean ? total / static_cast<double>(K) : total);
    }
  });
  return out;
}

template <bool kSquare, typename scalar_t>
void focal_backward_chunk(const scalar_t* __restrict__ x, const scalar_t* __restrict__ t,
                                              const scalar_t* __restrict__ g, int64_t g_stride,
                                              at::opmath_type<scalar_t> g_scale, int64_t n,
                                              at::opmath_type<scalar_t> alpha, at::opmath_type<scalar_t> gamma,
                                              scalar_t* __restrict__ gx, scalar_t* __restrict__ gt) {
  using T = at::opmath_type<scalar_t>;
  for (int64_t i = 0; i < n; ++i) {
    T dx, dt;
    sigmoid_focal_loss_backward<kSquare, T>(static_cast<T>(x[i]), static_cast<T>(t[i]), alpha, gamma,
                                            static_cast<T>(g[i * g_stride]) * g_scale, dx, dt);
    gx[i] = static_cast<scalar_t>(dx);
    gt[i] = static_cast<scalar_t>(dt);
  }
}

std::tuple<at::Tensor, at::Tensor> sigmoid_focal_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& inputs,
                                                                   const at::Tensor& targets, double alpha,
                                                                   double gamma, std::string_view reduction) {
  constexpr const char* op = "_sigmoid_focal_loss_backward";
  const Reduction red = check_focal_backward_args(grad, inputs, targets, alpha, reduction, op);
  at::Tensor gx = at::empty(inputs.sizes(), inputs.options());
  at::Tensor gt = at::empty(inputs.sizes(), inputs.options());
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
      const scalar_t *xp = x.data_ptr<scalar_t>(), *tp = t.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
      scalar_t *gxp = gx.data_ptr<scalar_t>(), *gtp = gt.data_ptr<scalar_t>();
      at::parallel_for(0, K, kChunk, [&](int64_t b, int64_t e) {
        with_cpu_isa([&] {
          if (gamma == 2.0) {
            focal_backward_chunk<true, scalar_t>(xp + b, tp + b, gp + b * g_stride, g_stride, g_scale, e - b,
                                                 static_cast<T>(alpha), static_cast<T>(gamma), gxp + b, gtp + b);
          } else {
            focal_backward_chunk<false, scalar_t>(xp + b, tp + b, gp + b * g_stride, g_stride, g_scale, e - b,
                                                  static_cast<T>(alpha), static_cast<T>(gamma), gxp + b, gtp + b);
          }
        });
      });
    });
  }
  return {gx, gt.to(targets.scalar_type())};
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("sigmoid_focal_loss", &vo::sigmoid_focal_loss_cpu);
  m.impl("_sigmoid_focal_loss_backward", &vo::sigmoid_focal_loss_backward_cpu);
}
