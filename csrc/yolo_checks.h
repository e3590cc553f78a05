// Arguments of the YOLO decoding ops, shared by the CPU and CUDA kernels
// (mirrored by the fake kernels in visionops/_registrations.py), and the
// layout of the candidates across scales.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <string_view>
#include <vector>

#include "checks.h"
#include "common/yolo.h"

namespace vo {

inline YoloVersion parse_yolo_version(std::string_view v, const char* op) {
  if (v == "v3") return YoloVersion::V3;
  if (v == "v5") return YoloVersion::V5;
  TORCH_CHECK_VALUE(false, "visionops.", op, ": version must be 'v3' or 'v5', got '", std::string(v), "'");
}

// Candidates: scale l, anchor a, cell (y, x) in that order; scale l starts at offset[l].
struct YoloLayout {
  int64_t B = 0, A = 0, C = 0, L = 0, N = 0;
  std::vector<int64_t> offset, H, W;
};

inline void check_yolo_head(const at::Tensor& head, int64_t A, const char* op, const char* arg) {
  TORCH_CHECK(head.dim() == 4, "visionops.", op, ": ", arg, " must have shape [B, A * (5 + C), H, W], got ",
              shape_str(head));
  TORCH_CHECK(at::isFloatingType(head.scalar_type()), "visionops.", op, ": ", arg,
              " must be a floating point tensor, got ", head.scalar_type());
  TORCH_CHECK_VALUE(A > 0 && head.size(1) % A == 0 && head.size(1) / A > 5, "visionops.", op, ": ", arg,
                    " must have A * (5 + C) channels with C >= 1 for ", A, " anchors, got ", head.size(1));
}

inline YoloLayout check_yolo_decode_args(at::TensorList heads, const at::Tensor& anchors, at::IntArrayRef strides,
                                         int64_t max_detections, const char* op) {
  TORCH_CHECK_VALUE(!heads.empty(), "visionops.", op, ": heads must hold at least one scale");
  TORCH_CHECK(anchors.dim() == 3 && anchors.size(0) == static_cast<int64_t>(heads.size()) && anchors.size(2) == 2,
              "visionops.", op, ": anchors must have shape [", heads.size(), ", A, 2] (pixels, per scale), got ",
              shape_str(anchors));
  TORCH_CHECK_VALUE(strides.size() == heads.size(), "visionops.", op, ": strides must have one value per scale, got ",
                    strides.size(), " for ", heads.size(), " scales");
  TORCH_CHECK_VALUE(max_detections >= 0, "visionops.", op, ": max_detections must be >= 0, got ", max_detections);
  YoloLayout y;
  y.L = static_cast<int64_t>(heads.size());
  y.A = anchors.size(1);
  y.B = heads[0].size(0);
  for (int64_t l = 0; l < y.L; ++l) {
    const at::Tensor& h = heads[l];
    check_yolo_head(h, y.A, op, "heads");
    check_same_dtype_device(heads[0], h, op, "heads[0]", "every head");
    const int64_t C = h.size(1) / y.A - 5;
    TORCH_CHECK_VALUE(h.size(0) == y.B && (l == 0 || C == y.C), "visionops.", op,
                      ": every head must have the batch size and classes of heads[0], got ", shape_str(h));
    y.C = C;
    y.offset.push_back(y.N);
    y.H.push_back(h.size(2));
    y.W.push_back(h.size(3));
    y.N += y.A * h.size(2) * h.size(3);
  }
  y.offset.push_back(y.N);
  TORCH_CHECK(anchors.device() == heads[0].device(), "visionops.", op,
              ": anchors must be on the device of the heads, got ", anchors.device());
  return y;
}

inline void check_yolo_boxes_args(const at::Tensor& head, const at::Tensor& anchors, const char* op) {
  TORCH_CHECK(anchors.dim() == 2 && anchors.size(1) == 2, "visionops.", op,
              ": anchors must have shape [A, 2] (pixels), got ", shape_str(anchors));
  check_yolo_head(head, anchors.size(0), op, "head");
  TORCH_CHECK(anchors.device() == head.device(), "visionops.", op, ": anchors must be on the device of head, got ",
              anchors.device());
}

}  // namespace vo
