// CPU kernels of sigmoid_focal_loss and its backward: one fused pass with
// losses/math.h's formulas (vectorized: exp and log are fast_math.h's).
// Sums run over fixed chunks added in chunk order, so 'mean' and 'sum' are
// bitwise the same for any thread count.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "core/cpu_isa.h"
#include "core/loss_grad.h"
#include "core/macros.h"
#include "core/simd.h"
#include "losses/args.h"
#include "losses/focal_bce.h"
#include "losses/focal_simd.h"
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

// focal_chunk and focal_backward_chunk for float over S (losses/focal_simd.h),
// 16 elements at a time, the tail with the scalar functions.
//
// In tiles of kFocalTile elements, in three passes: exp(-|x|) of the tile,
// then log(1 + that), then the rest. Each element is the same sequence of
// operations as in one pass (the same bits), but one element's work is a
// long chain of dependent operations (exp, a division, log, another
// division), and the reorder window held only a block or two of them (AVX2
// takes two instructions a vector): the passes' shorter chains let it
// overlap more blocks. Zen 4, 4 x 20000 x 80 fwd+bwd: 29.4 -> 22.0 ms
// AVX-512, 36.7 -> 30.8 ms AVX2.
#ifdef VO_HAVE_SIMD16
constexpr int64_t kFocalTile = 256;

// e and log1p_small(e) of the m elements (a multiple of 16) from x.
template <typename S>
inline void focal_tile_exp_log1p(const float* __restrict__ x, int64_t m, float* __restrict__ e,
                                 float* __restrict__ l) {
  for (int64_t j = 0; j < m; j += 16) S::store(e + j, focal_exp_simd<S>(S::load(x + j)));
  for (int64_t j = 0; j < m; j += 16) S::store(l + j, focal_log1p_simd<S>(S::load(e + j)));
}

template <typename S, bool kSquare>
void focal_chunk_simd(const float* __restrict__ x, const float* __restrict__ t, int64_t n, float alpha, float gamma,
                      float* __restrict__ out) {
  alignas(64) float e[kFocalTile], l[kFocalTile];
  int64_t i = 0;
  for (int64_t m; (m = std::min(kFocalTile, (n - i) / 16 * 16)) > 0; i += m) {
    focal_tile_exp_log1p<S>(x + i, m, e, l);
    for (int64_t j = 0; j < m; j += 16) {
      const FocalTermsSimd<S> f =
          focal_terms_from_simd<S>(S::load(x + i + j), S::load(t + i + j), S::load(e + j), S::load(l + j), alpha);
      S::store(out + i + j, focal_value_simd<S, kSquare>(f, gamma));
    }
  }
  for (; i < n; ++i) out[i] = sigmoid_focal_loss_value<kSquare, float>(x[i], t[i], alpha, gamma);
}

// kTargets: gt is written; otherwise its arithmetic is dead code, left out.
template <typename S, bool kSquare, bool kTargets>
void focal_backward_chunk_simd(const float* __restrict__ x, const float* __restrict__ t, const float* __restrict__ g,
                               int64_t g_stride, float g_scale, int64_t n, float alpha, float gamma,
                               float* __restrict__ gx, float* __restrict__ gt) {
  alignas(64) float e[kFocalTile], l[kFocalTile];
  int64_t i = 0;
  const typename S::F scale = S::set1(g_scale);
  for (int64_t m; (m = std::min(kFocalTile, (n - i) / 16 * 16)) > 0; i += m) {
    focal_tile_exp_log1p<S>(x + i, m, e, l);
    for (int64_t j = 0; j < m; j += 16) {
      const typename S::F xv = S::load(x + i + j), tv = S::load(t + i + j);
      const FocalTermsSimd<S> f = focal_terms_from_simd<S>(xv, tv, S::load(e + j), S::load(l + j), alpha);
      const typename S::F gi = S::mul(g_stride == 0 ? S::set1(g[0]) : S::load(g + i + j), scale);
      typename S::F dx, dt;
      focal_backward_simd<S, kSquare>(f, xv, tv, alpha, gamma, gi, dx, dt);
      S::store(gx + i + j, dx);
      if constexpr (kTargets) S::store(gt + i + j, dt);
    }
  }
  for (; i < n; ++i) {
    float dt;
    sigmoid_focal_loss_backward<kSquare, float>(x[i], t[i], alpha, gamma, g[i * g_stride] * g_scale, gx[i], dt);
    if constexpr (kTargets) gt[i] = dt;
  }
}
#endif

// The loops above where they apply (float, AVX2 or AVX-512, the upstream
// gradient of stride 0 or 1); false otherwise.
template <typename scalar_t, typename T>
bool focal_chunk_if_simd(const scalar_t* x, const scalar_t* t, int64_t n, T alpha, T gamma, T* out) {
#ifdef VO_HAVE_SIMD16
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (!simd_available()) return false;
    with_simd([&](auto s) {
      if (gamma == 2.0f) {
        focal_chunk_simd<decltype(s), true>(x, t, n, alpha, gamma, out);
      } else {
        focal_chunk_simd<decltype(s), false>(x, t, n, alpha, gamma, out);
      }
    });
    return true;
  }
#endif
  return false;
}

template <typename scalar_t, typename T>
bool focal_backward_chunk_if_simd(const scalar_t* x, const scalar_t* t, const scalar_t* g, int64_t g_stride,
                                  T g_scale, int64_t n, T alpha, T gamma, scalar_t* gx, scalar_t* gt) {
#ifdef VO_HAVE_SIMD16
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (!simd_available() || (g_stride != 0 && g_stride != 1)) return false;
    with_simd([&](auto s) {
      using S = decltype(s);
      if (gamma == 2.0f) {
        if (gt) {
          focal_backward_chunk_simd<S, true, true>(x, t, g, g_stride, g_scale, n, alpha, gamma, gx, gt);
        } else {
          focal_backward_chunk_simd<S, true, false>(x, t, g, g_stride, g_scale, n, alpha, gamma, gx, gt);
        }
      } else if (gt) {
        focal_backward_chunk_simd<S, false, true>(x, t, g, g_stride, g_scale, n, alpha, gamma, gx, gt);
      } else {
        focal_backward_chunk_simd<S, false, false>(x, t, g, g_stride, g_scale, n, alpha, gamma, gx, gt);
      }
    });
    return true;
  }
#endif
  return false;
}

// A chunk's sum in double, in a fixed order (8 running sums, then added in
// order): the same for any thread count, and 8 independent additions a
// step where one chain of 4,096 waited on each addition's latency.
template <typename T>
double chunk_sum(const T* v, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    VO_SIMD
    for (int j = 0; j < 8; ++j) acc[j] += static_cast<double>(v[i + j]);
  }
  for (; i < n; ++i) acc[i % 8] += static_cast<double>(v[i]);
  double sum = 0.0;
  for (double a : acc) sum += a;
  return sum;
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
        if (!focal_chunk_if_simd(xp + begin, tp + begin, n, static_cast<T>(alpha), static_cast<T>(gamma), local)) {
          with_cpu_isa([&] {
            if (gamma == 2.0) {
              focal_chunk<true, scalar_t>(xp + begin, tp + begin, n, static_cast<T>(alpha), static_cast<T>(gamma),
                                          local);
            } else {
              focal_chunk<false, scalar_t>(xp + begin, tp + begin, n, static_cast<T>(alpha), static_cast<T>(gamma),
                                           local);
            }
          });
        }
        if (o) {
          for (int64_t i = 0; i < n; ++i) o[begin + i] = static_cast<scalar_t>(local[i]);
        } else {
          with_cpu_isa([&] { partial[c] = chunk_sum(local, n); });
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

template <bool kSquare, bool kTargets, typename scalar_t>
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
    if constexpr (kTargets) gt[i] = static_cast<scalar_t>(dt);
  }
}

std::tuple<at::Tensor, at::Tensor> sigmoid_focal_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& inputs,
                                                                   const at::Tensor& targets, double alpha,
                                                                   double gamma, std::string_view reduction,
                                                                   bool targets_grad) {
  constexpr const char* op = "_sigmoid_focal_loss_backward";
  const Reduction red = check_focal_backward_args(grad, inputs, targets, alpha, reduction, op);
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
      const scalar_t *xp = x.data_ptr<scalar_t>(), *tp = t.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
      scalar_t* gxp = gx.data_ptr<scalar_t>();
      scalar_t* gtp = targets_grad ? gt.data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, K, kChunk, [&](int64_t b, int64_t e) {
        scalar_t* gtb = gtp ? gtp + b : nullptr;
        if (focal_backward_chunk_if_simd(xp + b, tp + b, gp + b * g_stride, g_stride, g_scale, e - b,
                                         static_cast<T>(alpha), static_cast<T>(gamma), gxp + b, gtb)) {
          return;
        }
        const auto chunk = [&](auto square, auto targets) {
          focal_backward_chunk<decltype(square)::value, decltype(targets)::value, scalar_t>(
              xp + b, tp + b, gp + b * g_stride, g_stride, g_scale, e - b, static_cast<T>(alpha),
              static_cast<T>(gamma), gxp + b, gtb);
        };
        with_cpu_isa([&] {
          using Yes = std::true_type;
          using No = std::false_type;
          if (gamma == 2.0) {
            gtb ? chunk(Yes{}, Yes{}) : chunk(Yes{}, No{});
          } else {
            gtb ? chunk(No{}, Yes{}) : chunk(No{}, No{});
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
