// Arguments of the coding family (box coding, grid anchors, YOLO decoding):
// checks and output layouts shared by the CPU and CUDA entry points.
// visionops/ops/coding.py's fake kernels raise the same messages.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string_view>
#include <vector>

#include "coding/math.h"
#include "core/checks.h"
#include "core/limits.h"
#include "core/macros.h"

namespace vo {

// ---- box coding (BoxCoder's decode and encode).

template <typename T>
CoderWeights<T> check_coder_weights(at::ArrayRef<double> weights, const char* op) {
  TORCH_CHECK_VALUE(weights.size() == 4, "visionops.", op, ": weights must hold 4 values (x, y, w, h), got ",
                    weights.size());
  return {static_cast<T>(weights[0]), static_cast<T>(weights[1]), static_cast<T>(weights[2]),
          static_cast<T>(weights[3])};
}

inline void check_decode_args(const at::Tensor& rel_codes, const at::Tensor& boxes, const char* op) {
  TORCH_CHECK(rel_codes.dim() == 2 && rel_codes.size(1) % 4 == 0, "visionops.", op,
              ": rel_codes must have shape [N, 4 * C] (a multiple of 4 per box), got ", shape_str(rel_codes));
  TORCH_CHECK(at::isFloatingType(rel_codes.scalar_type()), "visionops.", op,
              ": rel_codes must be a floating point tensor, got ", rel_codes.scalar_type());
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4 && boxes.size(0) == rel_codes.size(0), "visionops.", op,
              ": boxes must have shape [", rel_codes.size(0), ", 4] (one per row of rel_codes), got ",
              shape_str(boxes));
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()), "visionops.", op,
              ": boxes must be a floating point tensor, got ", boxes.scalar_type());
  TORCH_CHECK(rel_codes.device() == boxes.device(), "visionops.", op,
              ": rel_codes and boxes must be on the same device, got ", rel_codes.device(), " and ", boxes.device());
}

// The decode backward's arguments: its forward's, and grad like rel_codes.
inline void check_decode_backward_args(const at::Tensor& grad, const at::Tensor& rel_codes, const at::Tensor& boxes,
                                       const char* op) {
  check_decode_args(rel_codes, boxes, op);
  TORCH_CHECK(grad.sizes() == rel_codes.sizes() && grad.scalar_type() == rel_codes.scalar_type(), "visionops.", op,
              ": grad must match rel_codes, got ", shape_str(grad));
  check_grad_device(grad, rel_codes, op);
}

inline void check_encode_args(const at::Tensor& reference_boxes, const at::Tensor& proposals, const char* op) {
  TORCH_CHECK(reference_boxes.dim() == 2 && reference_boxes.size(1) == 4, "visionops.", op,
              ": reference_boxes must have shape [N, 4], got ", shape_str(reference_boxes));
  TORCH_CHECK(proposals.dim() == 2 && proposals.size(1) == 4 && proposals.size(0) == reference_boxes.size(0),
              "visionops.", op, ": proposals must have shape [", reference_boxes.size(0),
              ", 4] (one per reference box), got ", shape_str(proposals));
  TORCH_CHECK(at::isFloatingType(reference_boxes.scalar_type()), "visionops.", op,
              ": reference_boxes must be a floating point tensor, got ", reference_boxes.scalar_type());
  check_same_dtype_device(reference_boxes, proposals, op, "reference_boxes", "proposals");
}

// ---- grid_anchors: the cell anchors of every level and the output layout.

struct AnchorLayout {
  size_t levels = 0;
  int64_t total = 0;                 // anchors of every level
  std::vector<int64_t> cell_offset;  // first cell anchor of each level
  std::vector<int64_t> out_offset;   // first output anchor of each level
};

inline AnchorLayout check_grid_anchors_args(const at::Tensor& cell_anchors, at::IntArrayRef anchors_per_level,
                                            at::IntArrayRef grid_heights, at::IntArrayRef grid_widths,
                                            at::IntArrayRef stride_heights, at::IntArrayRef stride_widths,
                                            const char* op) {
  const size_t L = anchors_per_level.size();
  TORCH_CHECK_VALUE(grid_heights.size() == L && grid_widths.size() == L && stride_heights.size() == L &&
                        stride_widths.size() == L,
                    "visionops.", op,
                    ": anchors_per_level, grid_heights, grid_widths, stride_heights and stride_widths must have one "
                    "entry per feature map, got ",
                    L, ", ", grid_heights.size(), ", ", grid_widths.size(), ", ", stride_heights.size(), " and ",
                    stride_widths.size());
  TORCH_CHECK(cell_anchors.dim() == 2 && cell_anchors.size(1) == 4, "visionops.", op,
              ": cell_anchors must have shape [A, 4], got ", shape_str(cell_anchors));
  TORCH_CHECK(at::isFloatingType(cell_anchors.scalar_type()), "visionops.", op,
              ": cell_anchors must be a floating point tensor, got ", cell_anchors.scalar_type());
  AnchorLayout layout;
  layout.levels = L;
  int64_t cells = 0;
  for (size_t l = 0; l < L; ++l) {
    TORCH_CHECK_VALUE(anchors_per_level[l] >= 0 && grid_heights[l] >= 0 && grid_widths[l] >= 0, "visionops.", op,
                      ": anchor counts and grid sizes must not be negative, at level ", l);
    check_at_most(grid_heights[l] > grid_widths[l] ? grid_heights[l] : grid_widths[l], kMaxGridSide, op,
                  "a grid side", "feature map cells per side");
    check_at_most(anchors_per_level[l], cell_anchors.size(0), op, "anchors_per_level", "the rows of cell_anchors");
    check_at_most(grid_heights[l] * grid_widths[l], kMaxAnchors, op, "a grid's cells", "H * W");
    layout.cell_offset.push_back(cells);
    layout.out_offset.push_back(layout.total);
    cells += anchors_per_level[l];
    layout.total += grid_heights[l] * grid_widths[l] * anchors_per_level[l];
    // Checked per level: H * W * A and the sum stay far below 2^63 with the bounds above.
    check_at_most(layout.total, kMaxAnchors, op, "the number of anchors", "sum of H * W * A over the levels");
  }
  TORCH_CHECK_VALUE(cells == cell_anchors.size(0), "visionops.", op, ": anchors_per_level sums to ", cells,
                    " but cell_anchors has ", cell_anchors.size(0), " rows");
  return layout;
}

// ---- YOLO decoding: heads of every scale, and the layout of the candidates
// across scales.

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
  check_at_most(max_detections, kMaxFixedOutputs, op, "max_detections", "the fixed output size per image");
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

// The yolo_boxes backward's arguments: its forward's, and grad [B, A, H, W, 4]
// of head's dtype and device.
inline void check_yolo_boxes_backward_args(const at::Tensor& grad, const at::Tensor& head, const at::Tensor& anchors,
                                           const char* op) {
  check_yolo_boxes_args(head, anchors, op);
  const int64_t B = head.size(0), A = anchors.size(0), H = head.size(2), W = head.size(3);
  TORCH_CHECK(grad.dim() == 5 && grad.size(0) == B && grad.size(1) == A && grad.size(2) == H && grad.size(3) == W &&
                  grad.size(4) == 4 && grad.scalar_type() == head.scalar_type(),
              "visionops.", op, ": grad must be a ", head.scalar_type(), " tensor of shape [", B, ", ", A, ", ", H,
              ", ", W, ", 4], got ", grad.scalar_type(), " ", shape_str(grad));
  check_grad_device(grad, head, op);
}

}  // namespace vo
