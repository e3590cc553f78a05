// YOLO head decoding, shared by the CPU and CUDA kernels. A head of one scale
// is [B, A * (5 + C), H, W]: for anchor a, channels a * (5 + C) + 0..3 are the
// box (tx, ty, tw, th), + 4 the objectness and + 5.. the class logits. With
// cell (gx, gy), the scale's stride s and the anchor's size (aw, ah) in pixels:
//   v3 (Redmon and Farhadi 2018): cx = (sigmoid(tx) + gx) s,  w = exp(tw) aw
//   v5 (Ultralytics):             cx = (2 sigmoid(tx) - 0.5 + gx) s,
//                                 w = (2 sigmoid(tw))^2 aw
// (y and h alike), and a box's score is sigmoid(objectness) * sigmoid(best
// class logit): the best class is the largest logit, sigmoid being monotonic.
#pragma once

#include "../macros.h"
#include "fast_math.h"

namespace vo {

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
