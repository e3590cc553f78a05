// The coding family's math, shared by the CPU and CUDA kernels: Faster
// R-CNN's box coding, YOLO's head decoding and the anchor grid.
//
// Box coding, as torchvision's BoxCoder computes it: a box relative to a
// reference (anchor or proposal) is the shift of its centre in units of the
// reference's size, and the log of the ratio of the sizes, each scaled by a
// weight. The centre moves by an offset scaled by the reference's size and
// the size is corrected in log space, where exp keeps it positive. Order of
// operations is torchvision's.
#pragma once

#include "core/fast_math.h"
#include "core/macros.h"

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

// ---------------------------------------------------------------- anchors

// Anchor a of a cell at shift (sx, sy): the cell anchor moved by the shift.
// torchvision adds an integer shift to the (rounded) cell anchor in the
// anchors' dtype; so do we.
template <typename T>
VO_HOST_DEVICE_INLINE void anchor_at(const T* cell, int64_t sx, int64_t sy, T* out) {
  out[0] = static_cast<T>(static_cast<T>(sx) + cell[0]);
  out[1] = static_cast<T>(static_cast<T>(sy) + cell[1]);
  out[2] = static_cast<T>(static_cast<T>(sx) + cell[2]);
  out[3] = static_cast<T>(static_cast<T>(sy) + cell[3]);
}

// ---------------------------------------------------------------- YOLO

// YOLO head decoding, shared by the CPU and CUDA kernels. A head of one scale
// is [B, A * (5 + C), H, W]: for anchor a, channels a * (5 + C) + 0..3 are the
// box (tx, ty, tw, th), + 4 the objectness and + 5.. the class logits. With
// cell (gx, gy), the scale's stride s and the anchor's size (aw, ah) in pixels:
//   v3 (Redmon and Farhadi 2018): cx = (sigmoid(tx) + gx) s,  w = exp(tw) aw
//   v5 (Ultralytics):             cx = (2 sigmoid(tx) - 0.5 + gx) s,
//                                 w = (2 sigmoid(tw))^2 aw
// (y and h alike), and a box's score is sigmoid(objectness) * sigmoid(best
// class logit): the best class is the largest logit, sigmoid being monotonic.
// Box (x1, y1, x2, y2) in pixels from the four box logits.
// Gradient of yolo_box: g (of the four corners) into the four logits.

enum class YoloVersion : int { V3 = 0, V5 = 1 };

// Box (x1, y1, x2, y2) in pixels from the four box logits.
template <typename T>
VO_HOST_DEVICE_INLINE void yolo_box(const T t[4], T gx, T gy, T stride, T aw, T ah, YoloVersion v, T out[4]) {
  T cx, cy, w, h;
  if (v == YoloVersion::V3) {
    cx = (stable_sigmoid(t[0]) + gx) * stride;
    cy = (stable_sigmoid(t[1]) + gy) * stride;
    w = exp_(t[2]) * aw;
    h = exp_(t[3]) * ah;
  } else {
    cx = (T(2) * stable_sigmoid(t[0]) - T(0.5) + gx) * stride;
    cy = (T(2) * stable_sigmoid(t[1]) - T(0.5) + gy) * stride;
    const T sw = T(2) * stable_sigmoid(t[2]), sh = T(2) * stable_sigmoid(t[3]);
    w = sw * sw * aw;
    h = sh * sh * ah;
  }
  out[0] = cx - T(0.5) * w;
  out[1] = cy - T(0.5) * h;
  out[2] = cx + T(0.5) * w;
  out[3] = cy + T(0.5) * h;
}

// Gradient of yolo_box: g (of the four corners) into the four logits.
template <typename T>
VO_HOST_DEVICE_INLINE void yolo_box_backward(const T t[4], T stride, T aw, T ah, YoloVersion v, const T g[4],
                                             T gt[4]) {
  const T g_cx = g[0] + g[2], g_cy = g[1] + g[3];
  const T g_w = T(0.5) * (g[2] - g[0]), g_h = T(0.5) * (g[3] - g[1]);
  const T sx = stable_sigmoid(t[0]), sy = stable_sigmoid(t[1]);
  const T k = v == YoloVersion::V3 ? T(1) : T(2);  // d cx / d sigmoid(tx), in units of the stride
  gt[0] = g_cx * k * stride * sx * (T(1) - sx);
  gt[1] = g_cy * k * stride * sy * (T(1) - sy);
  if (v == YoloVersion::V3) {
    gt[2] = g_w * exp_(t[2]) * aw;
    gt[3] = g_h * exp_(t[3]) * ah;
  } else {
    // w = 4 sigmoid(tw)^2 aw: dw/dtw = 8 sigmoid(tw) sigmoid'(tw) aw
    const T sw = stable_sigmoid(t[2]), sh = stable_sigmoid(t[3]);
    gt[2] = g_w * T(8) * sw * sw * (T(1) - sw) * aw;
    gt[3] = g_h * T(8) * sh * sh * (T(1) - sh) * ah;
  }
}

}  // namespace vo
