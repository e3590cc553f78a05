// CUDA kernels of decode_boxes (and its backward) and encode_boxes: one
// thread per (box, code) with coding/math.h's formulas.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <tuple>

#include "coding/args.h"
#include "core/cuda_launch.h"

namespace vo {
namespace {

template <typename code_t, typename box_t>
__global__ void decode_kernel(const code_t* __restrict__ codes, const box_t* __restrict__ boxes, int64_t N, int64_t C,
                              CoderWeights<at::opmath_type<code_t>> w, at::opmath_type<code_t> clip,
                              code_t* __restrict__ out) {
  using T = at::opmath_type<code_t>;
  VO_CUDA_1D_KERNEL_LOOP(i, N * C) {
    const int64_t n = i / C;
    T r[4], c[4], o[4];
    for (int k = 0; k < 4; ++k) {
      r[k] = static_cast<T>(static_cast<code_t>(boxes[4 * n + k]));  // torchvision casts boxes to the codes' dtype
      c[k] = static_cast<T>(codes[4 * i + k]);
    }
    decode_box(r, c, w, clip, o);
    for (int k = 0; k < 4; ++k) out[4 * i + k] = static_cast<code_t>(o[k]);
  }
}

// One thread per box, over its C codes: the box's gradient is summed in a
// fixed order, without atomics.
template <typename code_t>
__global__ void decode_backward_kernel(const code_t* __restrict__ grad, const code_t* __restrict__ codes,
                                       const code_t* __restrict__ boxes, int64_t N, int64_t C,
                                       CoderWeights<at::opmath_type<code_t>> w, at::opmath_type<code_t> clip,
                                       code_t* __restrict__ g_codes, at::opmath_type<code_t>* __restrict__ g_boxes) {
  using T = at::opmath_type<code_t>;
  VO_CUDA_1D_KERNEL_LOOP(n, N) {
    T r[4], gr[4] = {T(0), T(0), T(0), T(0)};
    for (int k = 0; k < 4; ++k) r[k] = static_cast<T>(boxes[4 * n + k]);
    for (int64_t j = 0; j < C; ++j) {
      const int64_t o = (n * C + j) * 4;
      T c[4], g[4], gc[4];
      for (int k = 0; k < 4; ++k) {
        c[k] = static_cast<T>(codes[o + k]);
        g[k] = static_cast<T>(grad[o + k]);
      }
      decode_box_backward(r, c, w, clip, g, gc, gr);
      for (int k = 0; k < 4; ++k) g_codes[o + k] = static_cast<code_t>(gc[k]);
    }
    for (int k = 0; k < 4; ++k) g_boxes[4 * n + k] = gr[k];
  }
}

template <typename scalar_t>
__global__ void encode_kernel(const scalar_t* __restrict__ ref, const scalar_t* __restrict__ prop, int64_t N,
                              CoderWeights<at::opmath_type<scalar_t>> w, scalar_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  VO_CUDA_1D_KERNEL_LOOP(n, N) {
    T b[4], p[4], o[4];
    for (int k = 0; k < 4; ++k) {
      b[k] = static_cast<T>(ref[4 * n + k]);
      p[k] = static_cast<T>(prop[4 * n + k]);
    }
    encode_box(b, p, w, o);
    for (int k = 0; k < 4; ++k) out[4 * n + k] = static_cast<scalar_t>(o[k]);
  }
}

at::Tensor decode_boxes_cuda(const at::Tensor& rel_codes, const at::Tensor& boxes, at::ArrayRef<double> weights,
                             double bbox_xform_clip) {
  constexpr const char* op = "decode_boxes";
  check_decode_args(rel_codes, boxes, op);
  const c10::cuda::CUDAGuard guard(rel_codes.device());
  at::Tensor out = at::empty(rel_codes.sizes(), rel_codes.options());
  const int64_t N = rel_codes.size(0), C = rel_codes.size(1) / 4;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, rel_codes.scalar_type(), "decode_boxes", [&] {
    using code_t = scalar_t;
    using T = at::opmath_type<code_t>;
    const auto w = check_coder_weights<T>(weights, op);
    if (out.numel() == 0) return;
    const at::Tensor codes = rel_codes.contiguous();
    const at::Tensor b = boxes.contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, boxes.scalar_type(), "decode_boxes_boxes", [&] {
      decode_kernel<code_t, scalar_t><<<cuda::blocks_for(N * C), cuda::kThreads, 0,
                                        at::cuda::getCurrentCUDAStream()>>>(
          codes.const_data_ptr<code_t>(), b.const_data_ptr<scalar_t>(), N, C, w, static_cast<T>(bbox_xform_clip),
          out.mutable_data_ptr<code_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> decode_boxes_backward_cuda(const at::Tensor& grad, const at::Tensor& rel_codes,
                                                              const at::Tensor& boxes, at::ArrayRef<double> weights,
                                                              double bbox_xform_clip) {
  constexpr const char* op = "_decode_boxes_backward";
  check_decode_backward_args(grad, rel_codes, boxes, op);
  const c10::cuda::CUDAGuard guard(rel_codes.device());
  at::Tensor g_codes = at::empty(rel_codes.sizes(), rel_codes.options());
  at::Tensor g_boxes;
  const int64_t N = rel_codes.size(0), C = rel_codes.size(1) / 4;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, rel_codes.scalar_type(), "_decode_boxes_backward", [&] {
    using code_t = scalar_t;
    using T = at::opmath_type<code_t>;
    const auto w = check_coder_weights<T>(weights, op);
    at::Tensor gb = at::zeros({N, 4}, rel_codes.options().dtype(c10::CppTypeToScalarType<T>::value));
    if (g_codes.numel() > 0) {
      const at::Tensor codes = rel_codes.contiguous();
      const at::Tensor g = grad.contiguous();
      const at::Tensor b = boxes.to(rel_codes.scalar_type()).contiguous();
      decode_backward_kernel<code_t><<<cuda::blocks_for(N), cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          g.const_data_ptr<code_t>(), codes.const_data_ptr<code_t>(), b.const_data_ptr<code_t>(), N, C, w,
          static_cast<T>(bbox_xform_clip), g_codes.mutable_data_ptr<code_t>(), gb.mutable_data_ptr<T>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    g_boxes = gb.to(boxes.scalar_type());
  });
  return {g_codes, g_boxes};
}

at::Tensor encode_boxes_cuda(const at::Tensor& reference_boxes, const at::Tensor& proposals,
                             at::ArrayRef<double> weights) {
  constexpr const char* op = "encode_boxes";
  check_encode_args(reference_boxes, proposals, op);
  const c10::cuda::CUDAGuard guard(reference_boxes.device());
  at::Tensor out = at::empty(reference_boxes.sizes(), reference_boxes.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, reference_boxes.scalar_type(), "encode_boxes", [&] {
    using T = at::opmath_type<scalar_t>;
    const auto w = check_coder_weights<T>(weights, op);
    if (out.numel() == 0) return;
    const at::Tensor r = reference_boxes.contiguous();
    const at::Tensor p = proposals.contiguous();
    const int64_t N = r.size(0);
    encode_kernel<scalar_t><<<cuda::blocks_for(N), cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        r.const_data_ptr<scalar_t>(), p.const_data_ptr<scalar_t>(), N, w, out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("decode_boxes", &vo::decode_boxes_cuda);
  m.impl("_decode_boxes_backward", &vo::decode_boxes_backward_cuda);
  m.impl("encode_boxes", &vo::encode_boxes_cuda);
}
