// Box geometry shared by the CPU and CUDA kernels: area, format conversion,
// the pairwise IoU family and the elementwise IoU losses, forward and backward.
//
// No ATen here: plain scalars, so the same formula runs in an AVX loop on the
// CPU and in a CUDA thread. T is the accumulation type (float for half and
// bfloat16 inputs, double for float64 and integer inputs).
//
// Every forward formula follows the order of operations of torchvision 0.29's
// Python code, so that a float32 result on the CPU is bitwise torchvision's.
// Every backward follows torch autograd's conventions for the same formula:
// a tie in min/max splits the gradient evenly, clamp(min=0) passes it only
// where the value is strictly positive, and CIoU's alpha is a constant.
//
// NaN: a NaN coordinate makes that box's area NaN, and the area enters every
// result, so every IoU, GIoU, DIoU, CIoU and loss touching the box is NaN (as
// in torchvision). Gradients of NaN boxes are NaN or 0, unspecified.
// Zero-area pairs: IoU is 0/0 = NaN when the union is 0, as in torchvision.
#pragma once

#include <cmath>

#include "core/macros.h"

namespace vo {

enum class BoxFormat : int { XYXY = 0, XYWH = 1, CXCYWH = 2 };

enum class IouVariant : int { IoU = 0, GIoU = 1, DIoU = 2, CIoU = 3 };

// 4 / pi^2, the weight of CIoU's aspect-ratio term.
constexpr double kCiouAspectWeight = 0.40528473456935108578;

// torchvision's complete_box_iou_loss computes its DIoU part with the default
// eps whatever eps it is given; we keep that.
constexpr double kDiouLossEps = 1e-7;

template <typename T>
struct Box4 {
  T x1, y1, x2, y2;
};

// What the pairwise formulas need of one box, computed once per box instead of
// once per pair: the corners, the area, the centre and atan(w / h).
template <typename T>
struct BoxRecord {
  T x1, y1, x2, y2, area, cx, cy, aspect;
};

// Records held as a structure of arrays: field k of record j at f[k][j], so
// a loop over j reads contiguous memory (vector loads on the CPU, coalesced
// loads on the GPU).
constexpr int kRecordFields = 8;

template <typename T>
struct RecordArrays {
  const T* __restrict__ f[kRecordFields];

  // The arrays of a [8, count] buffer, starting at record `offset`.
  static VO_HOST_DEVICE_INLINE RecordArrays over(const T* base, int64_t count, int64_t offset) {
    RecordArrays r;
    for (int k = 0; k < kRecordFields; ++k) r.f[k] = base + k * count + offset;
    return r;
  }

  VO_HOST_DEVICE_INLINE BoxRecord<T> load(int64_t j) const {
    return {f[0][j], f[1][j], f[2][j], f[3][j], f[4][j], f[5][j], f[6][j], f[7][j]};
  }
};

// Writes a record as field k at base[k * count + i].
template <typename T>
VO_HOST_DEVICE_INLINE void store_record(const BoxRecord<T>& r, T* base, int64_t count, int64_t i) {
  base[0 * count + i] = r.x1;
  base[1 * count + i] = r.y1;
  base[2 * count + i] = r.x2;
  base[3 * count + i] = r.y2;
  base[4 * count + i] = r.area;
  base[5 * count + i] = r.cx;
  base[6 * count + i] = r.cy;
  base[7 * count + i] = r.aspect;
}

// atan in float, branch-free so that CPU loops vectorize (a libm call would
// stop them), and the same polynomial on the GPU so both agree. Range
// reduction to |z| <= tan(pi/8) and the degree-4 polynomial in z^2 are those
// of Cephes' atanf (S. L. Moshier); at most 2.7 ulp from the exact atan
// (tests/test_cpp_math checks it). inf gives +-pi/2, NaN gives NaN.
VO_HOST_DEVICE_INLINE float atan_(float x) {
  const float a = x < 0.0f ? -x : x;
  const bool big = a > 2.414213562373095f;   // tan(3 pi / 8)
  const bool mid = a > 0.4142135623730950f;  // tan(pi / 8)
  const float z = big ? -1.0f / a : (mid ? (a - 1.0f) / (a + 1.0f) : a);
  const float base = big ? 1.5707963267948966f : (mid ? 0.7853981633974483f : 0.0f);
  const float z2 = z * z;
  const float p = ((8.05374449538e-2f * z2 - 1.38776856032e-1f) * z2 + 1.99777106478e-1f) * z2 - 3.33329491539e-1f;
  const float r = base + (z + z * z2 * p);
  return x < 0.0f ? -r : r;
}

// In double the libm atan (correctly rounded or within an ulp on host and
// device alike); double inputs are rare enough not to need vectorizing.
VO_HOST_DEVICE_INLINE double atan_(double x) {
#if defined(__CUDA_ARCH__)
  return ::atan(x);
#else
  return std::atan(x);
#endif
}

// ---------------------------------------------------------------- area, convert

template <typename T>
VO_HOST_DEVICE_INLINE T box_area_value(T a, T b, T c, T d, BoxFormat fmt) {
  // xyxy: (x2 - x1) * (y2 - y1); xywh and cxcywh store the size directly.
  return fmt == BoxFormat::XYXY ? (c - a) * (d - b) : c * d;
}

template <typename T>
VO_HOST_DEVICE_INLINE Box4<T> box_to_xyxy(Box4<T> b, BoxFormat fmt) {
  switch (fmt) {
    case BoxFormat::XYWH:
      return {b.x1, b.y1, b.x1 + b.x2, b.y1 + b.y2};
    case BoxFormat::CXCYWH:
      return {b.x1 - T(0.5) * b.x2, b.y1 - T(0.5) * b.y2, b.x1 + T(0.5) * b.x2, b.y1 + T(0.5) * b.y2};
    default:
      return b;
  }
}

template <typename T>
VO_HOST_DEVICE_INLINE Box4<T> box_from_xyxy(Box4<T> b, BoxFormat fmt) {
  switch (fmt) {
    case BoxFormat::XYWH:
      return {b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1};
    case BoxFormat::CXCYWH:
      return {(b.x1 + b.x2) / T(2), (b.y1 + b.y2) / T(2), b.x2 - b.x1, b.y2 - b.y1};
    default:
      return b;
  }
}

// Any conversion goes through xyxy, as torchvision's does (xywh -> cxcywh is
// xywh -> xyxy -> cxcywh), so the rounding is the same.
template <typename T>
VO_HOST_DEVICE_INLINE Box4<T> box_convert_value(Box4<T> b, BoxFormat in_fmt, BoxFormat out_fmt) {
  if (in_fmt == out_fmt) return b;  // torchvision returns a copy
  return box_from_xyxy(box_to_xyxy(b, in_fmt), out_fmt);
}

// A box of a [K, 4] array of in_t (at p) read in T, and a box written back
// as out_t (at o): the elementwise kernels' loads and stores.
template <typename T, typename in_t>
VO_HOST_DEVICE_INLINE Box4<T> load_box(const in_t* p) {
  return {static_cast<T>(p[0]), static_cast<T>(p[1]), static_cast<T>(p[2]), static_cast<T>(p[3])};
}

template <typename out_t, typename T>
VO_HOST_DEVICE_INLINE void store_box(const Box4<T>& b, out_t* o) {
  o[0] = static_cast<out_t>(b.x1);
  o[1] = static_cast<out_t>(b.y1);
  o[2] = static_cast<out_t>(b.x2);
  o[3] = static_cast<out_t>(b.y2);
}

// One box of an [K, 4] input converted and written as out_t, computed in T:
// the element of the box_convert kernels.
template <typename T, typename in_t, typename out_t>
VO_HOST_DEVICE_INLINE void convert_box(const in_t* p, BoxFormat in_fmt, BoxFormat out_fmt, out_t* o) {
  store_box(box_convert_value(load_box<T>(p), in_fmt, out_fmt), o);
}

// The area of one box of an [K, 4] input, computed in T: the element of the
// box_area kernels.
template <typename T, typename in_t>
VO_HOST_DEVICE_INLINE T area_of_box(const in_t* p, BoxFormat fmt) {
  return box_area_value(static_cast<T>(p[0]), static_cast<T>(p[1]), static_cast<T>(p[2]), static_cast<T>(p[3]), fmt);
}

// ---------------------------------------------------------------- pairwise family

template <typename T>
VO_HOST_DEVICE_INLINE BoxRecord<T> make_box_record(Box4<T> raw, BoxFormat fmt, bool with_aspect) {
  const Box4<T> c = box_to_xyxy(raw, fmt);
  BoxRecord<T> r;
  r.x1 = c.x1;
  r.y1 = c.y1;
  r.x2 = c.x2;
  r.y2 = c.y2;
  r.area = box_area_value(raw.x1, raw.y1, raw.x2, raw.y2, fmt);
  r.cx = (c.x1 + c.x2) / T(2);
  r.cy = (c.y1 + c.y2) / T(2);
  r.aspect = with_aspect ? atan_((c.x2 - c.x1) / (c.y2 - c.y1)) : T(0);
  return r;
}

template <IouVariant V, typename T>
VO_HOST_DEVICE_INLINE T pairwise_iou(const BoxRecord<T>& a, const BoxRecord<T>& b, T eps) {
  const T iw = clamp_min(min(a.x2, b.x2) - max(a.x1, b.x1), T(0));
  const T ih = clamp_min(min(a.y2, b.y2) - max(a.y1, b.y1), T(0));
  const T inter = iw * ih;
  const T uni = a.area + b.area - inter;
  const T iou = inter / uni;
  if constexpr (V == IouVariant::IoU) {
    return iou;
  } else {
    // The smallest enclosing box.
    const T ew = clamp_min(max(a.x2, b.x2) - min(a.x1, b.x1), T(0));
    const T eh = clamp_min(max(a.y2, b.y2) - min(a.y1, b.y1), T(0));
    if constexpr (V == IouVariant::GIoU) {
      const T earea = ew * eh;
      return iou - (earea - uni) / earea;
    } else {
      const T diag = (ew * ew + eh * eh) + eps;
      const T dx = a.cx - b.cx;
      const T dy = a.cy - b.cy;
      const T diou = iou - (dx * dx + dy * dy) / diag;
      if constexpr (V == IouVariant::DIoU) {
        return diou;
      } else {
        const T da = a.aspect - b.aspect;
        const T v = T(kCiouAspectWeight) * (da * da);
        const T alpha = v / (((T(1) - iou) + v) + eps);
        return diou - alpha * v;
      }
    }
  }
}

// d max(a, b) and d min(a, b) as torch autograd computes them: the larger
// (smaller) operand takes the gradient, a tie splits it evenly.
template <typename T>
VO_HOST_DEVICE_INLINE void max_backward(T a, T b, T g, T& ga, T& gb) {
  const T half = g * T(0.5);
  ga += a > b ? g : (a < b ? T(0) : half);
  gb += b > a ? g : (b < a ? T(0) : half);
}

template <typename T>
VO_HOST_DEVICE_INLINE void min_backward(T a, T b, T g, T& ga, T& gb) {
  const T half = g * T(0.5);
  ga += a < b ? g : (a > b ? T(0) : half);
  gb += b < a ? g : (b > a ? T(0) : half);
}

// Gradient with respect to the fields of a BoxRecord; mapped back to the
// caller's four coordinates once per box by record_grad_to_box.
template <typename T>
struct BoxRecordGrad {
  T x1, y1, x2, y2, area, cx, cy, aspect;
};

template <typename T>
VO_HOST_DEVICE_INLINE BoxRecordGrad<T> zero_record_grad() {
  return {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
}

// Reverse mode of pairwise_iou: adds d out / d (fields of a and b), times g.
template <IouVariant V, typename T>
VO_HOST_DEVICE_INLINE void pairwise_iou_backward(const BoxRecord<T>& a, const BoxRecord<T>& b, T eps, T g,
                                                 BoxRecordGrad<T>& ga, BoxRecordGrad<T>& gb) {
  const T iw_raw = min(a.x2, b.x2) - max(a.x1, b.x1);
  const T ih_raw = min(a.y2, b.y2) - max(a.y1, b.y1);
  const T iw = clamp_min(iw_raw, T(0));
  const T ih = clamp_min(ih_raw, T(0));
  const T inter = iw * ih;
  const T uni = a.area + b.area - inter;
  const T iou = inter / uni;

  T g_iou = g;
  T g_uni = T(0);
  T g_ew = T(0);
  T g_eh = T(0);
  T ew_raw = T(0);
  T eh_raw = T(0);
  if constexpr (V != IouVariant::IoU) {
    ew_raw = max(a.x2, b.x2) - min(a.x1, b.x1);
    eh_raw = max(a.y2, b.y2) - min(a.y1, b.y1);
    const T ew = clamp_min(ew_raw, T(0));
    const T eh = clamp_min(eh_raw, T(0));
    if constexpr (V == IouVariant::GIoU) {
      // out = iou - (earea - uni) / earea
      const T earea = ew * eh;
      const T q = (earea - uni) / earea;
      const T g_num = -g / earea;
      const T g_den = g * (q / earea);
      const T g_earea = g_num + g_den;
      g_uni -= g_num;
      g_ew += g_earea * eh;
      g_eh += g_earea * ew;
    } else {
      // out = iou - dist / diag [- alpha * v]
      const T diag = (ew * ew + eh * eh) + eps;
      const T dx = a.cx - b.cx;
      const T dy = a.cy - b.cy;
      const T r = (dx * dx + dy * dy) / diag;
      const T g_dist = -g / diag;
      const T g_diag = g * (r / diag);
      g_ew += g_diag * (T(2) * ew);
      g_eh += g_diag * (T(2) * eh);
      const T g_dx = g_dist * (T(2) * dx);
      const T g_dy = g_dist * (T(2) * dy);
      ga.cx += g_dx;
      gb.cx -= g_dx;
      ga.cy += g_dy;
      gb.cy -= g_dy;
      if constexpr (V == IouVariant::CIoU) {
        const T da = a.aspect - b.aspect;
        const T v = T(kCiouAspectWeight) * (da * da);
        const T alpha = v / (((T(1) - iou) + v) + eps);  // a constant to autograd
        const T g_da = (-g * alpha) * T(kCiouAspectWeight) * (T(2) * da);
        ga.aspect += g_da;
        gb.aspect -= g_da;
      }
    }
    const T g_ewr = ew_raw > T(0) ? g_ew : T(0);
    const T g_ehr = eh_raw > T(0) ? g_eh : T(0);
    max_backward(a.x2, b.x2, g_ewr, ga.x2, gb.x2);
    min_backward(a.x1, b.x1, -g_ewr, ga.x1, gb.x1);
    max_backward(a.y2, b.y2, g_ehr, ga.y2, gb.y2);
    min_backward(a.y1, b.y1, -g_ehr, ga.y1, gb.y1);
  }

  // iou = inter / uni, uni = area_a + area_b - inter
  T g_inter = g_iou / uni;
  g_uni += -g_iou * (iou / uni);
  ga.area += g_uni;
  gb.area += g_uni;
  g_inter -= g_uni;
  const T g_iwr = iw_raw > T(0) ? g_inter * ih : T(0);
  const T g_ihr = ih_raw > T(0) ? g_inter * iw : T(0);
  min_backward(a.x2, b.x2, g_iwr, ga.x2, gb.x2);
  max_backward(a.x1, b.x1, -g_iwr, ga.x1, gb.x1);
  min_backward(a.y2, b.y2, g_ihr, ga.y2, gb.y2);
  max_backward(a.y1, b.y1, -g_ihr, ga.y1, gb.y1);
}

template <typename T>
VO_HOST_DEVICE_INLINE void add_record_grad(BoxRecordGrad<T>& acc, const BoxRecordGrad<T>& g) {
  acc.x1 += g.x1;
  acc.y1 += g.y1;
  acc.x2 += g.x2;
  acc.y2 += g.y2;
  acc.area += g.area;
  acc.cx += g.cx;
  acc.cy += g.cy;
  acc.aspect += g.aspect;
}

// Chain rule from the record fields back to the box as the caller gave it.
// Linear in g, so a kernel may sum record gradients over all partners first
// and call this once per box.
template <typename T>
VO_HOST_DEVICE_INLINE Box4<T> record_grad_to_box(Box4<T> raw, BoxFormat fmt, BoxRecordGrad<T> g) {
  const Box4<T> c = box_to_xyxy(raw, fmt);
  T gx1 = g.x1 + g.cx * T(0.5);
  T gx2 = g.x2 + g.cx * T(0.5);
  T gy1 = g.y1 + g.cy * T(0.5);
  T gy2 = g.y2 + g.cy * T(0.5);
  // aspect = atan(w / h) with w = x2 - x1, h = y2 - y1
  if (g.aspect != T(0)) {
    const T w = c.x2 - c.x1;
    const T h = c.y2 - c.y1;
    const T u = w / h;
    const T g_u = g.aspect / (u * u + T(1));
    const T g_w = g_u / h;
    const T g_h = -g_u * (u / h);
    gx2 += g_w;
    gx1 -= g_w;
    gy2 += g_h;
    gy1 -= g_h;
  }
  switch (fmt) {
    case BoxFormat::XYWH:  // x1 = x, x2 = x + w, area = w * h
      return {gx1 + gx2, gy1 + gy2, gx2 + g.area * raw.y2, gy2 + g.area * raw.x2};
    case BoxFormat::CXCYWH:  // x1 = cx - w / 2, x2 = cx + w / 2, area = w * h
      return {gx1 + gx2, gy1 + gy2, (gx2 - gx1) * T(0.5) + g.area * raw.y2,
              (gy2 - gy1) * T(0.5) + g.area * raw.x2};
    default: {  // area = (x2 - x1) * (y2 - y1)
      const T ga_w = g.area * (raw.y2 - raw.y1);
      const T ga_h = g.area * (raw.x2 - raw.x1);
      return {gx1 - ga_w, gy1 - ga_h, gx2 + ga_w, gy2 + ga_h};
    }
  }
}

// ---------------------------------------------------------------- elementwise losses
//
// torchvision's generalized_box_iou_loss, distance_box_iou_loss and
// complete_box_iou_loss for one pair of xyxy boxes p (prediction) and t.

template <typename T>
struct LossIntersection {
  T xk1, yk1, xk2, yk2, inter, uni;
  bool overlap;
};

template <typename T>
VO_HOST_DEVICE_INLINE LossIntersection<T> loss_intersection(const Box4<T>& p, const Box4<T>& t) {
  LossIntersection<T> r;
  r.xk1 = max(p.x1, t.x1);
  r.yk1 = max(p.y1, t.y1);
  r.xk2 = min(p.x2, t.x2);
  r.yk2 = min(p.y2, t.y2);
  // torchvision counts the intersection only where both sides are strictly
  // positive, and no gradient flows through it elsewhere.
  r.overlap = (r.yk2 > r.yk1) && (r.xk2 > r.xk1);
  r.inter = r.overlap ? (r.xk2 - r.xk1) * (r.yk2 - r.yk1) : T(0);
  r.uni = (p.x2 - p.x1) * (p.y2 - p.y1) + (t.x2 - t.x1) * (t.y2 - t.y1) - r.inter;
  return r;
}

template <IouVariant V, typename T>
VO_HOST_DEVICE_INLINE T box_iou_loss(const Box4<T>& p, const Box4<T>& t, T eps) {
  const LossIntersection<T> k = loss_intersection(p, t);
  const T xc1 = min(p.x1, t.x1);
  const T yc1 = min(p.y1, t.y1);
  const T xc2 = max(p.x2, t.x2);
  const T yc2 = max(p.y2, t.y2);
  if constexpr (V == IouVariant::GIoU) {
    const T iou = k.inter / (k.uni + eps);
    const T area_c = (xc2 - xc1) * (yc2 - yc1);
    return T(1) - (iou - (area_c - k.uni) / (area_c + eps));
  } else {
    const T deps = V == IouVariant::CIoU ? T(kDiouLossEps) : eps;
    const T iou = k.inter / (k.uni + deps);
    const T cw = xc2 - xc1;
    const T ch = yc2 - yc1;
    const T diag = (cw * cw + ch * ch) + deps;
    const T dx = (p.x2 + p.x1) / T(2) - (t.x1 + t.x2) / T(2);
    const T dy = (p.y2 + p.y1) / T(2) - (t.y1 + t.y2) / T(2);
    const T diou_loss = (T(1) - iou) + (dx * dx + dy * dy) / diag;
    if constexpr (V == IouVariant::DIoU) {
      return diou_loss;
    } else {
      const T da = atan_((t.x2 - t.x1) / (t.y2 - t.y1)) - atan_((p.x2 - p.x1) / (p.y2 - p.y1));
      const T v = T(kCiouAspectWeight) * (da * da);
      const T alpha = v / (((T(1) - iou) + v) + eps);
      return diou_loss + alpha * v;
    }
  }
}

// Reverse mode of atan(w / h) for w = x2 - x1, h = y2 - y1: adds g times the
// gradient to the corners.
template <typename T>
VO_HOST_DEVICE_INLINE void aspect_backward(const Box4<T>& b, T g, Box4<T>& gb) {
  const T w = b.x2 - b.x1;
  const T h = b.y2 - b.y1;
  const T u = w / h;
  const T g_u = g / (u * u + T(1));
  const T g_w = g_u / h;
  const T g_h = -g_u * (u / h);
  gb.x2 += g_w;
  gb.x1 -= g_w;
  gb.y2 += g_h;
  gb.y1 -= g_h;
}

// Reverse mode of box_iou_loss: gradients of g * loss with respect to p and t.
template <IouVariant V, typename T>
VO_HOST_DEVICE_INLINE void box_iou_loss_backward(const Box4<T>& p, const Box4<T>& t, T eps, T g, Box4<T>& gp,
                                                 Box4<T>& gt) {
  gp = {T(0), T(0), T(0), T(0)};
  gt = {T(0), T(0), T(0), T(0)};
  const LossIntersection<T> k = loss_intersection(p, t);
  const T xc1 = min(p.x1, t.x1);
  const T yc1 = min(p.y1, t.y1);
  const T xc2 = max(p.x2, t.x2);
  const T yc2 = max(p.y2, t.y2);
  T g_iou;
  T g_uni = T(0);
  T g_xc = T(0);  // gradient of (xc2 - xc1)
  T g_yc = T(0);
  T ueps;
  if constexpr (V == IouVariant::GIoU) {
    // loss = 1 - iou + (area_c - uni) / (area_c + eps)
    ueps = eps;
    const T cw = xc2 - xc1;
    const T ch = yc2 - yc1;
    const T area_c = cw * ch;
    const T den = area_c + eps;
    const T q = (area_c - k.uni) / den;
    const T g_num = g / den;
    const T g_den = -g * (q / den);
    const T g_area_c = g_num + g_den;
    g_uni -= g_num;
    g_iou = -g;
    g_xc = g_area_c * ch;
    g_yc = g_area_c * cw;
  } else {
    // loss = 1 - iou + dist / diag [+ alpha * v]
    ueps = V == IouVariant::CIoU ? T(kDiouLossEps) : eps;
    g_iou = -g;
    const T cw = xc2 - xc1;
    const T ch = yc2 - yc1;
    const T diag = (cw * cw + ch * ch) + ueps;
    const T px = (p.x2 + p.x1) / T(2);
    const T py = (p.y2 + p.y1) / T(2);
    const T tx = (t.x1 + t.x2) / T(2);
    const T ty = (t.y1 + t.y2) / T(2);
    const T dx = px - tx;
    const T dy = py - ty;
    const T r = (dx * dx + dy * dy) / diag;
    const T g_dist = g / diag;
    const T g_diag = -g * (r / diag);
    g_xc = g_diag * (T(2) * cw);
    g_yc = g_diag * (T(2) * ch);
    const T g_dx = g_dist * (T(2) * dx) * T(0.5);
    const T g_dy = g_dist * (T(2) * dy) * T(0.5);
    gp.x1 += g_dx;
    gp.x2 += g_dx;
    gt.x1 -= g_dx;
    gt.x2 -= g_dx;
    gp.y1 += g_dy;
    gp.y2 += g_dy;
    gt.y1 -= g_dy;
    gt.y2 -= g_dy;
    if constexpr (V == IouVariant::CIoU) {
      const T iou = k.inter / (k.uni + ueps);
      const T da = atan_((t.x2 - t.x1) / (t.y2 - t.y1)) - atan_((p.x2 - p.x1) / (p.y2 - p.y1));
      const T v = T(kCiouAspectWeight) * (da * da);
      const T alpha = v / (((T(1) - iou) + v) + eps);  // a constant to autograd
      const T g_da = (g * alpha) * T(kCiouAspectWeight) * (T(2) * da);
      aspect_backward(t, g_da, gt);
      aspect_backward(p, -g_da, gp);
    }
  }
  // Enclosing box corners.
  min_backward(p.x1, t.x1, -g_xc, gp.x1, gt.x1);
  max_backward(p.x2, t.x2, g_xc, gp.x2, gt.x2);
  min_backward(p.y1, t.y1, -g_yc, gp.y1, gt.y1);
  max_backward(p.y2, t.y2, g_yc, gp.y2, gt.y2);

  // iou = inter / (uni + eps), uni = area_p + area_t - inter
  const T uden = k.uni + ueps;
  const T iou = k.inter / uden;
  T g_inter = g_iou / uden;
  g_uni += -g_iou * (iou / uden);
  g_inter -= g_uni;
  const T pw = p.x2 - p.x1;
  const T ph = p.y2 - p.y1;
  const T tw = t.x2 - t.x1;
  const T th = t.y2 - t.y1;
  gp.x2 += g_uni * ph;
  gp.x1 -= g_uni * ph;
  gp.y2 += g_uni * pw;
  gp.y1 -= g_uni * pw;
  gt.x2 += g_uni * th;
  gt.x1 -= g_uni * th;
  gt.y2 += g_uni * tw;
  gt.y1 -= g_uni * tw;
  if (k.overlap) {
    const T g_w = g_inter * (k.yk2 - k.yk1);
    const T g_h = g_inter * (k.xk2 - k.xk1);
    min_backward(p.x2, t.x2, g_w, gp.x2, gt.x2);
    max_backward(p.x1, t.x1, -g_w, gp.x1, gt.x1);
    min_backward(p.y2, t.y2, g_h, gp.y2, gt.y2);
    max_backward(p.y1, t.y1, -g_h, gp.y1, gt.y1);
  }
}

// The loss gradients of pair k of contiguous [K, 4] boxes p and t, scaled by
// g, written into gp and gt as scalar_t: the element of the IoU loss
// backward kernels.
template <IouVariant V, typename T, typename scalar_t>
VO_HOST_DEVICE_INLINE void box_iou_loss_backward_pair(const scalar_t* p, const scalar_t* t, int64_t k, T eps, T g,
                                                      scalar_t* gp, scalar_t* gt) {
  Box4<T> dp, dt;
  box_iou_loss_backward<V>(load_box<T>(p + 4 * k), load_box<T>(t + 4 * k), eps, g, dp, dt);
  store_box(dp, gp + 4 * k);
  store_box(dt, gt + 4 * k);
}

}  // namespace vo
