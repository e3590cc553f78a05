// CPU kernels of decode_boxes (and its backward) and encode_boxes: one fused
// pass over the boxes with coding/math.h's formulas. exp and log are
// fast_math.h's, so the loops vectorize; half and bfloat16 are computed in
// float.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <array>
#include <tuple>
#include <type_traits>

#include "coding/args.h"
#include "core/cpu_isa.h"
#include "core/fast_math_simd.h"
#include "core/macros.h"
#include "core/simd.h"

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

#ifdef VO_HAVE_SIMD16
// decode_box on float codes and boxes, 16 at a time over S (core/simd.h):
// the records (4 floats a box) become one vector per field by in-register
// transposes, and exp_ is fast_math_simd.h's copy of it. The compiler does
// not vectorize the plain loop well on this layout (it gathered fields with
// shuffles per operation): half the speed on AVX2. Codes n * C + j, j in
// [0, C), are relative to box n; with C > 1 the 16 codes of one box share
// its fields, broadcast. Results are decode_box's, bit for bit.
template <typename S>
struct DecodeRef {
  typename S::F width, height, cx, cy;
};

template <typename S>
inline DecodeRef<S> decode_ref(typename S::F x1, typename S::F y1, typename S::F x2, typename S::F y2) {
  const typename S::F half = S::set1(0.5f);
  DecodeRef<S> r;
  r.width = S::sub(x2, x1);
  r.height = S::sub(y2, y1);
  r.cx = S::add(x1, S::mul(half, r.width));
  r.cy = S::add(y1, S::mul(half, r.height));
  return r;
}

template <typename S>
inline void decode16(const float* codes, const DecodeRef<S>& r, const CoderWeights<float>& w, float clip,
                     float* out) {
  using F = typename S::F;
  F c0 = S::load(codes), c1 = S::load(codes + 16), c2 = S::load(codes + 32), c3 = S::load(codes + 48);
  S::to_fields(c0, c1, c2, c3);
  const F dx = S::div(c0, S::set1(w.wx));
  const F dy = S::div(c1, S::set1(w.wy));
  // dw > clip ? clip : dw (NaN stays)
  const F dw = S::min(S::set1(clip), S::div(c2, S::set1(w.ww)));
  const F dh = S::min(S::set1(clip), S::div(c3, S::set1(w.wh)));
  const F half = S::set1(0.5f);
  const F pcx = S::add(S::mul(dx, r.width), r.cx);
  const F pcy = S::add(S::mul(dy, r.height), r.cy);
  const F half_w = S::mul(half, S::mul(exp_simd<S>(dw), r.width));
  const F half_h = S::mul(half, S::mul(exp_simd<S>(dh), r.height));
  F o0 = S::sub(pcx, half_w), o1 = S::sub(pcy, half_h), o2 = S::add(pcx, half_w), o3 = S::add(pcy, half_h);
  S::to_records(o0, o1, o2, o3);
  S::store(out, o0);
  S::store(out + 16, o1);
  S::store(out + 32, o2);
  S::store(out + 48, o3);
}

template <typename S>
void decode_loop_simd(const float* __restrict__ codes, const float* __restrict__ boxes, int64_t C, int64_t begin,
                      int64_t end, CoderWeights<float> w, float clip, float* __restrict__ out) {
  const auto one = [&](int64_t row, int64_t n) {  // a code decoded alone (the tails)
    const float r[4] = {boxes[4 * n], boxes[4 * n + 1], boxes[4 * n + 2], boxes[4 * n + 3]};
    const float c[4] = {codes[4 * row], codes[4 * row + 1], codes[4 * row + 2], codes[4 * row + 3]};
    decode_box(r, c, w, clip, out + 4 * row);
  };
  if (C == 1) {
    int64_t n = begin;
    for (; n + 16 <= end; n += 16) {
      const float* b = boxes + 4 * n;
      typename S::F x1 = S::load(b), y1 = S::load(b + 16), x2 = S::load(b + 32), y2 = S::load(b + 48);
      S::to_fields(x1, y1, x2, y2);
      decode16<S>(codes + 4 * n, decode_ref<S>(x1, y1, x2, y2), w, clip, out + 4 * n);
    }
    for (; n < end; ++n) one(n, n);
    return;
  }
  const auto ref_of = [&](int64_t n) {  // box n's fields, broadcast
    const float* b = boxes + 4 * n;
    return decode_ref<S>(S::set1(b[0]), S::set1(b[1]), S::set1(b[2]), S::set1(b[3]));
  };
  if (C < 16) {
    for (int64_t n = begin; n < end; ++n)
      for (int64_t j = 0; j < C; ++j) one(n * C + j, n);
    return;
  }
  // C >= 16: the codes of rows [begin, end) as one run, 16 at a time, so no
  // row leaves a partial vector to decode one code at a time (11 of the 91
  // codes of a row with 91 classes did). A group spans at most two rows:
  // codes below `split` take row n's fields, the others row n + 1's. Which
  // code a lane holds is S's choice (to_fields), so each lane's code number
  // comes from the same transpose of records that hold their own number.
  alignas(64) static constexpr std::array<float, 64> kRecord = [] {
    std::array<float, 64> a{};
    for (int i = 0; i < 64; ++i) a[i] = static_cast<float>(i / 4);
    return a;
  }();
  typename S::F lane = S::load(kRecord.data()), f1 = S::load(kRecord.data() + 16),
                f2 = S::load(kRecord.data() + 32), f3 = S::load(kRecord.data() + 48);
  S::to_fields(lane, f1, f2, f3);
  if (begin >= end) return;  // ref_of(begin) reads box begin
  int64_t q = begin * C, n = begin;
  DecodeRef<S> r = ref_of(n);
  for (; q + 16 <= end * C; q += 16) {
    const int64_t split = (n + 1) * C - q;  // lanes [0, split) in row n; split >= 1
    if (split >= 16) {
      decode16<S>(codes + 4 * q, r, w, clip, out + 4 * q);
      if (split == 16 && ++n < end) r = ref_of(n);
      continue;
    }
    const DecodeRef<S> next = ref_of(n + 1);
    const typename S::F cut = S::set1(static_cast<float>(split));
    DecodeRef<S> mixed;
    mixed.width = S::select_lt(lane, cut, r.width, next.width);
    mixed.height = S::select_lt(lane, cut, r.height, next.height);
    mixed.cx = S::select_lt(lane, cut, r.cx, next.cx);
    mixed.cy = S::select_lt(lane, cut, r.cy, next.cy);
    decode16<S>(codes + 4 * q, mixed, w, clip, out + 4 * q);
    r = next;
    ++n;
  }
  for (; q < end * C; ++q) one(q, q / C);
}

// encode_box on float boxes, 16 at a time, as decode_loop_simd (log_ is
// fast_math_simd.h's copy).
template <typename S>
void encode_loop_simd(const float* __restrict__ ref, const float* __restrict__ prop, int64_t begin, int64_t end,
                      CoderWeights<float> w, float* __restrict__ out) {
  using F = typename S::F;
  int64_t n = begin;
  const F half = S::set1(0.5f);
  for (; n + 16 <= end; n += 16) {
    F b0 = S::load(ref + 4 * n), b1 = S::load(ref + 4 * n + 16), b2 = S::load(ref + 4 * n + 32),
      b3 = S::load(ref + 4 * n + 48);
    F p0 = S::load(prop + 4 * n), p1 = S::load(prop + 4 * n + 16), p2 = S::load(prop + 4 * n + 32),
      p3 = S::load(prop + 4 * n + 48);
    S::to_fields(b0, b1, b2, b3);
    S::to_fields(p0, p1, p2, p3);
    const F ex_w = S::sub(p2, p0), ex_h = S::sub(p3, p1);
    const F ex_cx = S::add(p0, S::mul(half, ex_w)), ex_cy = S::add(p1, S::mul(half, ex_h));
    const F gt_w = S::sub(b2, b0), gt_h = S::sub(b3, b1);
    const F gt_cx = S::add(b0, S::mul(half, gt_w)), gt_cy = S::add(b1, S::mul(half, gt_h));
    F o0 = S::div(S::mul(S::set1(w.wx), S::sub(gt_cx, ex_cx)), ex_w);
    F o1 = S::div(S::mul(S::set1(w.wy), S::sub(gt_cy, ex_cy)), ex_h);
    F o2 = S::mul(S::set1(w.ww), log_simd<S>(S::div(gt_w, ex_w)));
    F o3 = S::mul(S::set1(w.wh), log_simd<S>(S::div(gt_h, ex_h)));
    S::to_records(o0, o1, o2, o3);
    S::store(out + 4 * n, o0);
    S::store(out + 4 * n + 16, o1);
    S::store(out + 4 * n + 32, o2);
    S::store(out + 4 * n + 48, o3);
  }
  for (; n < end; ++n) encode_box(ref + 4 * n, prop + 4 * n, w, out + 4 * n);
}
#endif

// The loops over S for float codes and boxes where the CPU has AVX2 or
// AVX-512; false where they do not apply (the caller runs the plain loop).
template <typename code_t, typename box_t, typename T>
bool decode_loop_if_simd(const code_t* codes, const box_t* boxes, int64_t C, int64_t begin, int64_t end,
                         CoderWeights<T> w, double clip, code_t* out) {
#ifdef VO_HAVE_SIMD16
  if constexpr (std::is_same_v<code_t, float> && std::is_same_v<box_t, float>) {
    if (!simd_available()) return false;
    const float c = static_cast<float>(clip);
    with_simd([&](auto s) { decode_loop_simd<decltype(s)>(codes, boxes, C, begin, end, w, c, out); });
    return true;
  }
#endif
  return false;
}

template <typename scalar_t, typename T>
bool encode_loop_if_simd(const scalar_t* ref, const scalar_t* prop, int64_t begin, int64_t end, CoderWeights<T> w,
                         scalar_t* out) {
#ifdef VO_HAVE_SIMD16
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (!simd_available()) return false;
    with_simd([&](auto s) { encode_loop_simd<decltype(s)>(ref, prop, begin, end, w, out); });
    return true;
  }
#endif
  return false;
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
        if (decode_loop_if_simd(cp, bp, C, begin, end, w, bbox_xform_clip, op_)) return;
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
                       if (encode_loop_if_simd(rp, pp, begin, end, w, op_)) return;
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
