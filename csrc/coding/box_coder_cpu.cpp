// CPU kernels of decode_boxes (and its backward) and encode_boxes: one fused
// pass over the boxes with coding/math.h's formulas. exp and log are
// fast_math.h's, so the loops vectorize; half and bfloat16 are computed in
// float.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>

#include "coding/args.h"
#include "core/cpu_isa.h"
#include "core/macros.h"

namespace vo {
namespace {

constexpr int64_t kGrain = 16384;

// Boxes [begin, end) with C codes each. The one-class loop is separate so
// that it vectorizes over boxes.
template <typename code_t, typename box_t>
void decode_loop(const code_t* __restrict__ codes, const box_t* __restrict__ boxes, int64_t C,
                                     int64_t begin, int64_t end, CoderWeights<at::opmath_type<code_t>> w,
                                     at::opmath_type<code_t> clip, code_t* __restrict__ out) {
  using T = at::opmath_type<code_t>;
  if (C == 1) {
    for (int64_t n = begin; n < end; ++n) {
      const T r[4] = {static_cast<T>(static_cast<code_t>(boxes[4 * n])),
                      static_cast<T>(static_cast<code_t>(boxes[4 * n + 1])),
                      static_cast<T>(static_cast<code_t>(boxes[4 * n + 2])),
                      static_cast<T>(static_cast<code_t>(boxes[4 * n + 3]))};
      const T c[4] = {static_cast<T>(codes[4 * n]), static_cast<T>(codes[4 * n + 1]),
                      static_cast<T>(codes[4 * n + 2]), static_cast<T>(codes[4 * n + 3])};
      T o[4];
      decode_box(r, c, w, clip, o);
      for (int k = 0; k < 4; ++k) out[4 * n + k] = static_cast<code_t>(o[k]);
    }
    return;
  }
  for (int64_t n = begin; n < end; ++n) {
    // torchvision converts the boxes to the codes' dtype first.
    const T r[4] = {static_cast<T>(static_cast<code_t>(boxes[4 * n])),
                    static_cast<T>(static_cast<code_t>(boxes[4 * n + 1])),
                    static_cast<T>(static_cast<code_t>(boxes[4 * n + 2])),
                    static_cast<T>(static_cast<code_t>(boxes[4 * n + 3]))};
    for (int64_t j = 0; j < C; ++j) {
      const code_t* cj = codes + (n * C + j) * 4;
      const T c[4] = {static_cast<T>(cj[0]), static_cast<T>(cj[1]), static_cast<T>(cj[2]), static_cast<T>(cj[3])};
      T o[4];
      decode_box(r, c, w, clip, o);
      code_t* oj = out + (n * C + j) * 4;
      for (int k = 0; k < 4; ++k) oj[k] = static_cast<code_t>(o[k]);
    }
  }
}

at::Tensor decode_boxes_cpu(const at::Tensor& rel_codes, const at::Tensor& boxes, at::ArrayRef<double> weights,
                            double bbox_xform_clip) {
  constexpr const char* op = "decode_boxes";
  check_decode_args(rel_codes, boxes, op);
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
      const code_t* cp = codes.data_ptr<code_t>();
      const scalar_t* bp = b.data_ptr<scalar_t>();
      code_t* op_ = out.data_ptr<code_t>();
      at::parallel_for(0, N, std::max<int64_t>(1, kGrain / C), [&](int64_t begin, int64_t end) {
        with_cpu_isa([&] { decode_loop<code_t, scalar_t>(cp, bp, C, begin, end, w, static_cast<T>(bbox_xform_clip), op_); });
      });
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> decode_boxes_backward_cpu(const at::Tensor& grad, const at::Tensor& rel_codes,
                                                             const at::Tensor& boxes, at::ArrayRef<double> weights,
                                                             double bbox_xform_clip) {
  constexpr const char* op = "_decode_boxes_backward";
  check_decode_backward_args(grad, rel_codes, boxes, op);
  at::Tensor g_codes = at::empty(rel_codes.sizes(), rel_codes.options());
  at::Tensor g_boxes;
  const int64_t N = rel_codes.size(0), C = rel_codes.size(1) / 4;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, rel_codes.scalar_type(), "_decode_boxes_backward", [&] {
    using code_t = scalar_t;
    using T = at::opmath_type<code_t>;
    const auto w = check_coder_weights<T>(weights, op);
    // The reference boxes' gradient sums over their C codes, in T.
    at::Tensor gb = at::zeros({N, 4}, rel_codes.options().dtype(c10::CppTypeToScalarType<T>::value));
    if (g_codes.numel() > 0) {
      const at::Tensor codes = rel_codes.contiguous();
      const at::Tensor g = grad.contiguous();
      const at::Tensor b = boxes.to(rel_codes.scalar_type()).contiguous();
      const code_t* cp = codes.data_ptr<code_t>();
      const code_t* gp = g.data_ptr<code_t>();
      const code_t* bp = b.data_ptr<code_t>();
      code_t* gcp = g_codes.data_ptr<code_t>();
      T* gbp = gb.data_ptr<T>();
      const T clip = static_cast<T>(bbox_xform_clip);
      at::parallel_for(0, N, std::max<int64_t>(1, kGrain / C), [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
          const T r[4] = {static_cast<T>(bp[4 * n]), static_cast<T>(bp[4 * n + 1]), static_cast<T>(bp[4 * n + 2]),
                          static_cast<T>(bp[4 * n + 3])};
          T gr[4] = {T(0), T(0), T(0), T(0)};
          for (int64_t j = 0; j < C; ++j) {
            const int64_t o = (n * C + j) * 4;
            const T c[4] = {static_cast<T>(cp[o]), static_cast<T>(cp[o + 1]), static_cast<T>(cp[o + 2]),
                            static_cast<T>(cp[o + 3])};
            const T gj[4] = {static_cast<T>(gp[o]), static_cast<T>(gp[o + 1]), static_cast<T>(gp[o + 2]),
                             static_cast<T>(gp[o + 3])};
            T gc[4];
            decode_box_backward(r, c, w, clip, gj, gc, gr);
            for (int k = 0; k < 4; ++k) gcp[o + k] = static_cast<code_t>(gc[k]);
          }
          for (int k = 0; k < 4; ++k) gbp[4 * n + k] = gr[k];
        }
      });
    }
    g_boxes = gb.to(boxes.scalar_type());
  });
  return {g_codes, g_boxes};
}

template <typename scalar_t>
void encode_loop(const scalar_t* __restrict__ ref, const scalar_t* __restrict__ prop,
                                     int64_t begin, int64_t end, CoderWeights<at::opmath_type<scalar_t>> w,
                                     scalar_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  for (int64_t n = begin; n < end; ++n) {
    const T b[4] = {static_cast<T>(ref[4 * n]), static_cast<T>(ref[4 * n + 1]), static_cast<T>(ref[4 * n + 2]),
                    static_cast<T>(ref[4 * n + 3])};
    const T p[4] = {static_cast<T>(prop[4 * n]), static_cast<T>(prop[4 * n + 1]), static_cast<T>(prop[4 * n + 2]),
                    static_cast<T>(prop[4 * n + 3])};
    T o[4];
    encode_box(b, p, w, o);
    for (int k = 0; k < 4; ++k) out[4 * n + k] = static_cast<scalar_t>(o[k]);
  }
}

at::Tensor encode_boxes_cpu(const at::Tensor& reference_boxes, const at::Tensor& proposals,
                            at::ArrayRef<double> weights) {
  constexpr const char* op = "encode_boxes";
  check_encode_args(reference_boxes, proposals, op);
  at::Tensor out = at::empty(reference_boxes.sizes(), reference_boxes.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, reference_boxes.scalar_type(), "encode_boxes", [&] {
    using T = at::opmath_type<scalar_t>;
    const auto w = check_coder_weights<T>(weights, op);
    if (out.numel() == 0) return;
    const at::Tensor r = reference_boxes.contiguous();
    const at::Tensor p = proposals.contiguous();
    const scalar_t* rp = r.data_ptr<scalar_t>();
    const scalar_t* pp = p.data_ptr<scalar_t>();
    scalar_t* op_ = out.data_ptr<scalar_t>();
    at::parallel_for(0, r.size(0), kGrain,
                     [&](int64_t begin, int64_t end) {
                       with_cpu_isa([&] { encode_loop<scalar_t>(rp, pp, begin, end, w, op_); });
                     });
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("decode_boxes", &vo::decode_boxes_cpu);
  m.impl("_decode_boxes_backward", &vo::decode_boxes_backward_cpu);
  m.impl("encode_boxes", &vo::encode_boxes_cpu);
}
