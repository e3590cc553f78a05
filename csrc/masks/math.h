// Mask R-CNN's paste step, shared by the CPU and CUDA kernels: each
// detection's M x M mask probabilities, resized bilinearly to its box and
// written into an image of zeros.
//
// The arithmetic is torchvision 0.29's paste_masks_in_image step by step; the
// integer boxes are its own, and the pasted values differ from it by rounding
// only (ATen's CPU interpolation is built with FMA contraction, which rounds
// some products differently: about 1 ulp in float32):
//   1. the mask is padded by `padding` zeros on each side and the box grows
//      about its centre by scale = (M + 2 padding) / M (M = the mask's width),
//      in the box dtype, then truncates toward zero to int64 pixels;
//   2. the padded mask is resized to the integer box (w = x2 - x1 + 1 and
//      h = y2 - y1 + 1, at least 1) with bilinear, align_corners=False
//      interpolation: ATen's source index and weights, the weights rounded to
//      the mask dtype as ATen stores them, each row interpolated along x
//      first, then the two rows along y;
//   3. the part of the resized mask inside the image is written at the box's
//      position; every other pixel is 0.
//
// Defined where torchvision is not: a box with a NaN coordinate pastes
// nothing (torchvision's int64 cast of NaN is undefined); coordinates beyond
// +-2^61 (inf included) are clamped there, so integer widths never overflow;
// a box wholly left of or above the image pastes nothing (torchvision's
// negative slice bounds wrap around and raise a shape error).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/macros.h"

namespace vo {

// Pixel box of one detection: corners x1, y1 (first pixel) and x2, y2 (last
// pixel), and the size the mask is resized to.
struct PasteBox {
  int64_t x1, y1, x2, y2;
  int64_t w, h;
};

// A float coordinate to its int64 pixel, as Tensor.to(torch.int64) truncates,
// with the clamp above. NaN is handled by the caller.
template <typename acc_t>
VO_HOST_DEVICE_INLINE int64_t truncate_coordinate(acc_t v) {
  constexpr double kLimit = 2305843009213693952.0;  // 2^61
  const double d = static_cast<double>(v);
  return static_cast<int64_t>(d > kLimit ? kLimit : (d < -kLimit ? -kLimit : d));
}

// torchvision's expand_boxes followed by .to(int64). B is the box dtype: each
// step rounds to it, as each tensor operation does (c10::Half arithmetic
// rounds to half per operation); the products with 0.5 and `scale` are taken
// in acc_t, as ATen multiplies a tensor by a Python number in its opmath type.
template <typename B, typename acc_t>
VO_HOST_DEVICE_INLINE PasteBox expand_paste_box(const B* box, acc_t scale) {
  const B half_w = static_cast<B>(static_cast<acc_t>(static_cast<B>(box[2] - box[0])) * acc_t(0.5));
  const B half_h = static_cast<B>(static_cast<acc_t>(static_cast<B>(box[3] - box[1])) * acc_t(0.5));
  const B cx = static_cast<B>(static_cast<acc_t>(static_cast<B>(box[2] + box[0])) * acc_t(0.5));
  const B cy = static_cast<B>(static_cast<acc_t>(static_cast<B>(box[3] + box[1])) * acc_t(0.5));
  const B sw = static_cast<B>(static_cast<acc_t>(half_w) * scale);
  const B sh = static_cast<B>(static_cast<acc_t>(half_h) * scale);
  const acc_t e[4] = {static_cast<acc_t>(static_cast<B>(cx - sw)), static_cast<acc_t>(static_cast<B>(cy - sh)),
                      static_cast<acc_t>(static_cast<B>(cx + sw)), static_cast<acc_t>(static_cast<B>(cy + sh))};
  PasteBox p;
  if (e[0] != e[0] || e[1] != e[1] || e[2] != e[2] || e[3] != e[3]) {
    // NaN: an empty box (x2 < x1 and nothing inside the image).
    p.x1 = p.y1 = 0;
    p.x2 = p.y2 = -1;
    p.w = p.h = 1;
    return p;
  }
  p.x1 = truncate_coordinate(e[0]);
  p.y1 = truncate_coordinate(e[1]);
  p.x2 = truncate_coordinate(e[2]);
  p.y2 = truncate_coordinate(e[3]);
  p.w = vo::max<int64_t>(p.x2 - p.x1 + 1, 1);
  p.h = vo::max<int64_t>(p.y2 - p.y1 + 1, 1);
  return p;
}

// The image pixels [lo, hi) that a box spans on one axis of an image of
// `size` pixels: torchvision's max(x1, 0) and min(x2 + 1, size). Empty when
// hi <= lo.
VO_HOST_DEVICE_INLINE int64_t paste_span_begin(int64_t first) { return vo::max<int64_t>(first, 0); }
VO_HOST_DEVICE_INLINE int64_t paste_span_end(int64_t last, int64_t size) { return vo::min<int64_t>(last + 1, size); }

// One output pixel's two source pixels along an axis and their weights, for
// bilinear resizing with align_corners=False from in_size to out_size pixels
// (ATen's area_pixel_compute_source_index and guard_index_and_lambda). The
// weights are rounded to the mask dtype scalar_t, as ATen stores them.
template <typename acc_t>
struct LinearTap {
  int64_t i0, i1;
  acc_t l0, l1;
};

template <typename scalar_t, typename acc_t>
VO_HOST_DEVICE_INLINE LinearTap<acc_t> linear_tap(int64_t dst, int64_t in_size, int64_t out_size) {
  const acc_t scale = static_cast<acc_t>(in_size) / static_cast<acc_t>(out_size);
  acc_t src = scale * (static_cast<acc_t>(dst) + acc_t(0.5)) - acc_t(0.5);
  src = src < acc_t(0) ? acc_t(0) : src;
  LinearTap<acc_t> t;
  t.i0 = vo::min<int64_t>(static_cast<int64_t>(std::floor(src)), in_size - 1);
  acc_t l1 = src - static_cast<acc_t>(t.i0);
  l1 = vo::min<acc_t>(vo::max<acc_t>(l1, acc_t(0)), acc_t(1));
  t.i1 = t.i0 + (t.i0 < in_size - 1 ? 1 : 0);
  t.l0 = static_cast<acc_t>(static_cast<scalar_t>(acc_t(1) - l1));
  t.l1 = static_cast<acc_t>(static_cast<scalar_t>(l1));
  return t;
}

// Value of the zero-padded mask at padded row r, column c.
template <typename scalar_t, typename acc_t>
VO_HOST_DEVICE_INLINE acc_t padded_mask_value(const scalar_t* mask, int64_t r, int64_t c, int64_t mh, int64_t mw,
                                              int64_t padding) {
  const int64_t y = r - padding, x = c - padding;
  return (y >= 0 && y < mh && x >= 0 && x < mw) ? static_cast<acc_t>(mask[y * mw + x]) : acc_t(0);
}

// The interpolation of two values, in ATen's order: each product, then the
// sum. Used along x for each source row, then along y for the two rows.
template <typename acc_t>
VO_HOST_DEVICE_INLINE acc_t lerp_pair(acc_t a, acc_t la, acc_t b, acc_t lb) {
  return a * la + b * lb;
}

// The value written for one pixel: the interpolated probability rounded to the
// mask dtype, or with a threshold (out_t = bool) whether that rounded value is
// above the threshold rounded to the mask dtype, which is what
// `pasted > threshold` gives on torchvision's output (a tensor compared with
// a Python number compares in the tensor's dtype).
template <typename scalar_t, typename out_t, typename acc_t>
VO_HOST_DEVICE_INLINE out_t paste_output(acc_t v, acc_t threshold) {
  if constexpr (std::is_same_v<out_t, bool>) {
    return static_cast<acc_t>(static_cast<scalar_t>(v)) > threshold;
  } else {
    return static_cast<scalar_t>(v);
  }
}

}  // namespace vo
