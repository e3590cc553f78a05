// Box coding of Faster R-CNN, as torchvision's BoxCoder computes it: a box
// relative to a reference (anchor or proposal) is the shift of its centre in
// units of the reference's size, and the log of the ratio of the sizes,
// each scaled by a weight. As the seed notes put it, the centre moves by an
// offset scaled by the anchor's size and the size is corrected in log space;
// exp keeps it positive. Order of operations is torchvision's.
#pragma once

#include "../macros.h"
#include "fast_math.h"

namespace vo {

template <typename T>
struct CoderWeights {
  T wx, wy, ww, wh;
};

// Decoded box (x1, y1, x2, y2) of code (dx, dy, dw, dh) relative to the
// reference box r. clip caps dw and dh before exp (NaN stays NaN).
template <typename T>
VO_HOST_DEVICE_INLINE void decode_box(const T r[4], const T code[4], const CoderWeights<T>& w, T clip, T out[4]) {
  const T width = r[2] - r[0];
  const T height = r[3] - r[1];
  const T cx = r[0] + T(0.5) * width;
  const T cy = r[1] + T(0.5) * height;
  const T dx = code[0] / w.wx;
  const T dy = code[1] / w.wy;
  T dw = code[2] / w.ww;
  T dh = code[3] / w.wh;
  dw = dw > clip ? clip : dw;
  dh = dh > clip ? clip : dh;
  const T pcx = dx * width + cx;
  const T pcy = dy * height + cy;
  const T half_w = T(0.5) * (exp_(dw) * width);
  const T half_h = T(0.5) * (exp_(dh) * height);
  out[0] = pcx - half_w;
  out[1] = pcy - half_h;
  out[2] = pcx + half_w;
  out[3] = pcy + half_h;
}

// Gradients of decode_box: g (of the four outputs) into the code (gc) and
// added into the reference box (gr).
template <typename T>
VO_HOST_DEVICE_INLINE void decode_box_backward(const T r[4], const T code[4], const CoderWeights<T>& w, T clip,
                                               const T g[4], T gc[4], T gr[4]) {
  const T width = r[2] - r[0];
  const T height = r[3] - r[1];
  const T dx = code[0] / w.wx;
  const T dy = code[1] / w.wy;
  const T dw_raw = code[2] / w.ww;
  const T dh_raw = code[3] / w.wh;
  // torch.clamp(max=clip) passes the gradient where the input is <= clip.
  const T pass_w = dw_raw <= clip ? T(1) : T(0);
  const T pass_h = dh_raw <= clip ? T(1) : T(0);
  const T ew = exp_(dw_raw > clip ? clip : dw_raw);
  const T eh = exp_(dh_raw > clip ? clip : dh_raw);
  const T g_cx = g[0] + g[2];
  const T g_cy = g[1] + g[3];
  const T g_w = T(0.5) * (g[2] - g[0]);  // of the decoded width exp(dw) * width
  const T g_h = T(0.5) * (g[3] - g[1]);
  gc[0] = g_cx * width / w.wx;
  gc[1] = g_cy * height / w.wy;
  gc[2] = pass_w * g_w * ew * width / w.ww;
  gc[3] = pass_h * g_h * eh * height / w.wh;
  // Through width (dx * width, exp(dw) * width) and the centre x1 + width / 2.
  const T g_width = g_cx * dx + g_w * ew;
  const T g_height = g_cy * dy + g_h * eh;
  gr[0] += T(0.5) * g_cx - g_width;
  gr[1] += T(0.5) * g_cy - g_height;
  gr[2] += T(0.5) * g_cx + g_width;
  gr[3] += T(0.5) * g_cy + g_height;
}

// Code of box b relative to reference (proposal) p.
template <typename T>
VO_HOST_DEVICE_INLINE void encode_box(const T b[4], const T p[4], const CoderWeights<T>& w, T out[4]) {
  const T ex_w = p[2] - p[0];
  const T ex_h = p[3] - p[1];
  const T ex_cx = p[0] + T(0.5) * ex_w;
  const T ex_cy = p[1] + T(0.5) * ex_h;
  const T gt_w = b[2] - b[0];
  const T gt_h = b[3] - b[1];
  const T gt_cx = b[0] + T(0.5) * gt_w;
  const T gt_cy = b[1] + T(0.5) * gt_h;
  out[0] = w.wx * (gt_cx - ex_cx) / ex_w;
  out[1] = w.wy * (gt_cy - ex_cy) / ex_h;
  out[2] = w.ww * log_(gt_w / ex_w);
  out[3] = w.wh * log_(gt_h / ex_h);
}

}  // namespace vo
