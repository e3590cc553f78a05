// CUDA kernels of dice_loss and its backward (see losses/math.h).
// Forward: blocks of (pixel chunk, image, class) sum their pixels'
// contributions with a fixed tree in shared memory; ATen adds the partial
// sums, so the statistics are deterministic. Backward: one thread per
// element recomputes its probability; for softmax, one thread per pixel
// computes the softmax and the class sum the gradient needs once. The class-id check reads one flag back (host sync).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <optional>
#include <string_view>
#include <tuple>

#include "core/cuda_launch.h"
#include "losses/args.h"
#include "losses/dice_reduction.h"
#include "losses/math.h"

namespace vo {
namespace {

constexpr int kDiceThreads = 256;
constexpr int64_t kPixelsPerThread = 8;
constexpr int64_t kDiceChunk = kDiceThreads * kPixelsPerThread;

// The softmax of pixel s of image b: its max and the sum of exp(x - max),
// from which exp(x_c - max) / sum gives class c's probability.
template <typename in_t, typename T>
__device__ void pixel_softmax(const in_t* x, const DiceShape& sh, int64_t b, int64_t s, T& mx, T& sum) {
  const int64_t C = sh.C, S = sh.S;
  mx = -INFINITY;
  for (int64_t k = 0; k < C; ++k) {
    const T u = static_cast<T>(x[(b * C + k) * S + s]);
    mx = mx < u ? u : mx;
  }
  sum = T(0);
  for (int64_t k = 0; k < C; ++k) sum += dice_softmax_exp(static_cast<T>(x[(b * C + k) * S + s]) - mx);
}

// Probability of class c at pixel s of image b.
template <typename in_t, typename T>
__device__ T class_prob(const in_t* x, const DiceShape& sh, int64_t b, int64_t c, int64_t s, bool from_logits) {
  const int64_t C = sh.C, S = sh.S;
  const T v = static_cast<T>(x[(b * C + c) * S + s]);
  if (!from_logits) return v;
  if (sh.mode != DiceMode::Multiclass) return dice_sigmoid(v);
  T mx, sum;
  pixel_softmax<in_t, T>(x, sh, b, s, mx, sum);
  return dice_softmax_exp(v - mx) / sum;
}

// Target of class c at pixel s (an indicator for class maps) and its mask.
template <typename tgt_t, typename T>
__device__ void class_target(const tgt_t* t, const DiceShape& sh, int64_t b, int64_t c, int64_t s, bool has_ignore,
                             int64_t ignore, T& target, T& valid) {
  if (sh.mode == DiceMode::Multiclass) {
    const int64_t label = static_cast<int64_t>(t[b * sh.S + s]);
    valid = (has_ignore && label == ignore) ? T(0) : T(1);
    target = label == c ? T(1) : T(0);
  } else {
    target = static_cast<T>(t[(b * sh.C + c) * sh.S + s]);
    valid = (has_ignore && target == static_cast<T>(ignore)) ? T(0) : T(1);
  }
}

template <typename in_t, typename tgt_t>
__global__ void dice_stats_kernel(const in_t* __restrict__ x, const tgt_t* __restrict__ t, DiceShape sh,
                                  bool from_logits, bool squared, bool has_ignore, int64_t ignore,
                                  int64_t chunks, double* __restrict__ partial) {
  using T = at::opmath_type<in_t>;
  __shared__ T red[3][kDiceThreads];
  const int64_t chunk = blockIdx.x, b = blockIdx.y, c = blockIdx.z;
  T I = T(0), P = T(0), Tt = T(0);
  for (int64_t k = 0; k < kPixelsPerThread; ++k) {
    const int64_t s = chunk * kDiceChunk + k * kDiceThreads + threadIdx.x;
    if (s >= sh.S) break;
    const T p = class_prob<in_t, T>(x, sh, b, c, s, from_logits);
    T tv, valid;
    class_target<tgt_t, T>(t, sh, b, c, s, has_ignore, ignore, tv, valid);
    I += valid * p * tv;
    P += valid * (squared ? p * p : p);
    Tt += valid * (squared ? tv * tv : tv);
  }
  red[0][threadIdx.x] = I;
  red[1][threadIdx.x] = P;
  red[2][threadIdx.x] = Tt;
  for (int step = kDiceThreads / 2; step > 0; step /= 2) {
    __syncthreads();
    if (threadIdx.x < step)
      for (int r = 0; r < 3; ++r) red[r][threadIdx.x] += red[r][threadIdx.x + step];
  }
  __syncthreads();  // thread 0 wrote the three sums that threads 0 to 2 read
  if (threadIdx.x < 3) partial[((c * sh.B + b) * chunks + chunk) * 3 + threadIdx.x] = red[threadIdx.x][0];
}

// Multiclass from logits: one thread per pixel. The softmax's max and sum
// and the dot product sum_k g_k p_k are computed once per pixel, then each
// class's gradient p_c (g_c - dot): O(C) per pixel, where a thread per
// element would redo the softmax for every class it reads (O(C^2) each).
template <typename in_t, typename tgt_t>
__global__ void dice_softmax_backward_kernel(const in_t* __restrict__ x, const tgt_t* __restrict__ t, DiceShape sh,
                                             bool squared, bool has_ignore, int64_t ignore,
                                             const double* __restrict__ a, const double* __restrict__ bcoef,
                                             in_t* __restrict__ gx) {
  using T = at::opmath_type<in_t>;
  const int64_t C = sh.C, S = sh.S;
  VO_CUDA_1D_KERNEL_LOOP(i, sh.B * S) {
    const int64_t s = i % S, b = i / S;
    T mx, sum;
    pixel_softmax<in_t, T>(x, sh, b, s, mx, sum);
    T dot = T(0);
    for (int64_t k = 0; k < C; ++k) {
      const T pk = dice_softmax_exp(static_cast<T>(x[(b * C + k) * S + s]) - mx) / sum;
      T tk, vk;
      class_target<tgt_t, T>(t, sh, b, k, s, has_ignore, ignore, tk, vk);
      dot += vk * dice_pixel_grad(static_cast<T>(a[k]), static_cast<T>(bcoef[k]), tk, pk, squared) * pk;
    }
    for (int64_t c = 0; c < C; ++c) {
      const int64_t e = (b * C + c) * S + s;
      const T p = dice_softmax_exp(static_cast<T>(x[e]) - mx) / sum;
      T tv, valid;
      class_target<tgt_t, T>(t, sh, b, c, s, has_ignore, ignore, tv, valid);
      const T g = valid * dice_pixel_grad(static_cast<T>(a[c]), static_cast<T>(bcoef[c]), tv, p, squared);
      gx[e] = static_cast<in_t>(p * (g - dot));
    }
  }
}

// Binary and multilabel, or probabilities: one thread per element.
template <typename in_t, typename tgt_t>
__global__ void dice_backward_kernel(const in_t* __restrict__ x, const tgt_t* __restrict__ t, DiceShape sh,
                                     bool from_logits, bool squared, bool has_ignore, int64_t ignore,
                                     const double* __restrict__ a, const double* __restrict__ bcoef,
                                     in_t* __restrict__ gx) {
  using T = at::opmath_type<in_t>;
  const int64_t total = sh.B * sh.C * sh.S;
  VO_CUDA_1D_KERNEL_LOOP(i, total) {
    const int64_t s = i % sh.S, c = (i / sh.S) % sh.C, b = i / (sh.S * sh.C);
    const T p = class_prob<in_t, T>(x, sh, b, c, s, from_logits);
    T tv, valid;
    class_target<tgt_t, T>(t, sh, b, c, s, has_ignore, ignore, tv, valid);
    const T g = valid * dice_pixel_grad(static_cast<T>(a[c]), static_cast<T>(bcoef[c]), tv, p, squared);
    gx[i] = static_cast<in_t>(from_logits ? g * p * (T(1) - p) : g);
  }
}

// The reduced loss from the statistics [3, C]: one block, a lane of
// dice_reduction.h's loop per thread, the lanes' sums added by thread 0 in
// lane order (deterministic; for C <= kReduceThreads the CPU's bits). out:
// [C] for 'none' (each), else [1].
constexpr int kReduceThreads = 256;

__global__ void dice_reduce_kernel(const double* stats, int64_t C, const double* w, DiceParams p, bool each, bool mean,
                                   double* out) {
  __shared__ double sums[kReduceThreads], wsums[kReduceThreads];
  const int lane = static_cast<int>(threadIdx.x);
  dice_loss_lane(stats, C, w, p, lane, kReduceThreads, each ? out : nullptr, sums[lane], wsums[lane]);
  __syncthreads();
  if (lane == 0 && !each) {
    double s = 0.0, ws = 0.0;
    for (int k = 0; k < kReduceThreads; ++k) {
      s += sums[k];
      ws += wsums[k];
    }
    out[0] = mean ? s / ws : s;
  }
}

// Each class's gradient coefficients a, b [C] from the statistics and the
// upstream gradient g (dice_coefficients_lane), in one block; 'mean' first
// sums the weights as dice_reduce_kernel does.
__global__ void dice_coefficients_kernel(const double* stats, int64_t C, const double* w, const double* g,
                                         int64_t g_stride, bool mean, DiceParams p, double* a, double* b) {
  __shared__ double wsums[kReduceThreads];
  __shared__ double divisor;
  const int lane = static_cast<int>(threadIdx.x);
  wsums[lane] = dice_weight_lane(w, C, lane, kReduceThreads);
  __syncthreads();
  if (lane == 0) {
    double ws = 0.0;
    for (int k = 0; k < kReduceThreads; ++k) ws += wsums[k];
    divisor = mean ? ws : 1.0;
  }
  __syncthreads();
  dice_coefficients_lane(stats, C, w, g, g_stride, divisor, p, lane, kReduceThreads, a, b);
}

// The reduced loss, in dtype, with no host sync (dice_reduce_kernel).
at::Tensor dice_loss_from_stats(const at::Tensor& stats, const DiceParams& params,
                                const std::optional<at::Tensor>& weight, Reduction red, at::ScalarType dtype) {
  const int64_t C = stats.size(1);
  const at::Tensor st = stats.contiguous();
  const at::Tensor w = weight ? weight->to(st.options()).contiguous() : at::Tensor();
  const bool each = red == Reduction::None;
  at::Tensor out = at::empty({each ? C : 1}, st.options());
  dice_reduce_kernel<<<1, kReduceThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      st.const_data_ptr<double>(), C, w.defined() ? w.const_data_ptr<double>() : nullptr, params, each,
      red == Reduction::Mean, out.mutable_data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return (each ? out : out.reshape({})).to(dtype);
}

std::tuple<at::Tensor, at::Tensor> dice_loss_cuda(const at::Tensor& inputs, const at::Tensor& targets,
                                                  std::string_view mode, bool from_logits, double smooth, double eps,
                                                  bool squared, std::optional<int64_t> ignore_index,
                                                  const std::optional<at::Tensor>& weight, bool log_loss,
                                                  std::string_view reduction) {
  constexpr const char* op = "dice_loss";
  const Reduction red = parse_reduction(reduction, op);
  const DiceShape sh = check_dice_args(inputs, targets, mode, weight, op);
  TORCH_CHECK(sh.B <= 65535 && sh.C <= 65535, "visionops.", op, ": at most 65535 images and classes on CUDA, got ",
              shape_str(inputs));
  const c10::cuda::CUDAGuard guard(inputs.device());
  const DiceParams params{smooth, eps, squared, log_loss};
  const at::Tensor t = dice_kernel_targets(checked_targets(targets, sh, ignore_index, op), sh, inputs.scalar_type());
  at::Tensor stats = at::zeros({3, sh.C}, inputs.options().dtype(at::kDouble));
  if (inputs.numel() > 0) {
    const at::Tensor x = inputs.contiguous();
    const int64_t chunks = (sh.S + kDiceChunk - 1) / kDiceChunk;
    at::Tensor partial = at::empty({sh.C, sh.B * chunks, 3}, inputs.options().dtype(at::kDouble));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "dice_loss", [&] {
      using in_t = scalar_t;
      VO_DISPATCH_DICE_KERNEL_TARGETS(in_t, t.scalar_type(), [&] {
        const dim3 grid(static_cast<unsigned int>(chunks), static_cast<unsigned int>(sh.B),
                        static_cast<unsigned int>(sh.C));
        dice_stats_kernel<in_t, tgt_t><<<grid, kDiceThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
            x.const_data_ptr<in_t>(), t.const_data_ptr<tgt_t>(), sh, from_logits, squared,
            ignore_index.has_value(), ignore_index.value_or(0), chunks, partial.mutable_data_ptr<double>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
    stats = partial.sum(1).t().contiguous();
  }
  at::Tensor loss = dice_loss_from_stats(stats, params, weight, red, inputs.scalar_type());
  return {loss, stats};
}

at::Tensor dice_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& inputs, const at::Tensor& targets,
                                   const at::Tensor& stats, std::string_view mode, bool from_logits, double smooth,
                                   double eps, bool squared, std::optional<int64_t> ignore_index,
                                   const std::optional<at::Tensor>& weight, bool log_loss,
                                   std::string_view reduction) {
  constexpr const char* op = "_dice_loss_backward";
  const Reduction red = parse_reduction(reduction, op);
  const DiceShape sh = check_dice_backward_args(grad, inputs, targets, stats, mode, weight, red, op);
  const c10::cuda::CUDAGuard guard(inputs.device());
  const DiceParams params{smooth, eps, squared, log_loss};
  at::Tensor gx = at::empty(inputs.sizes(), inputs.options());
  if (inputs.numel() == 0) return gx;
  const at::Tensor ac = at::empty({sh.C}, stats.options()), bc = at::empty({sh.C}, stats.options());
  {
    const at::Tensor st = stats.contiguous();
    const at::Tensor w = weight ? weight->to(st.options()).contiguous() : at::Tensor();
    const at::Tensor g = grad.to(st.options()).contiguous();
    dice_coefficients_kernel<<<1, kReduceThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        st.const_data_ptr<double>(), sh.C, w.defined() ? w.const_data_ptr<double>() : nullptr,
        g.const_data_ptr<double>(), red == Reduction::None ? 1 : 0, red == Reduction::Mean, params,
        ac.mutable_data_ptr<double>(), bc.mutable_data_ptr<double>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  const at::Tensor x = inputs.contiguous();
  const at::Tensor t = dice_kernel_targets(targets.contiguous(), sh, inputs.scalar_type());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "_dice_loss_backward", [&] {
    using in_t = scalar_t;
    VO_DISPATCH_DICE_KERNEL_TARGETS(in_t, t.scalar_type(), [&] {
      const auto stream = at::cuda::getCurrentCUDAStream();
      if (from_logits && sh.mode == DiceMode::Multiclass) {
        dice_softmax_backward_kernel<in_t, tgt_t><<<cuda::blocks_for(sh.B * sh.S), cuda::kThreads, 0, stream>>>(
            x.const_data_ptr<in_t>(), t.const_data_ptr<tgt_t>(), sh, squared, ignore_index.has_value(),
            ignore_index.value_or(0), ac.const_data_ptr<double>(), bc.const_data_ptr<double>(),
            gx.mutable_data_ptr<in_t>());
      } else {
        dice_backward_kernel<in_t, tgt_t><<<cuda::blocks_for(gx.numel()), cuda::kThreads, 0, stream>>>(
            x.const_data_ptr<in_t>(), t.const_data_ptr<tgt_t>(), sh, from_logits, squared,
            ignore_index.has_value(), ignore_index.value_or(0), ac.const_data_ptr<double>(),
            bc.const_data_ptr<double>(), gx.mutable_data_ptr<in_t>());
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return gx;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("dice_loss", &vo::dice_loss_cuda);
  m.impl("_dice_loss_backward", &vo::dice_loss_backward_cuda);
}
