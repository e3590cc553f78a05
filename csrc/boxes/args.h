// Arguments of the box family (area, convert, the pairwise IoU family, the
// elementwise IoU losses, masks_to_boxes): their checks and output shapes,
// shared by the CPU and CUDA entry points. visionops/ops/boxes.py's fake
// kernels raise the same messages.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "boxes/math.h"
#include "core/checks.h"
#include "core/dtypes.h"

namespace vo {

// torchvision raises ValueError for an unknown format and we do too; rotated
// formats are known to torchvision but not implemented here yet.
inline BoxFormat parse_box_format(std::string_view fmt, const char* op, const char* arg) {
  if (fmt == "xyxy") return BoxFormat::XYXY;
  if (fmt == "xywh") return BoxFormat::XYWH;
  if (fmt == "cxcywh") return BoxFormat::CXCYWH;
  TORCH_CHECK_NOT_IMPLEMENTED(fmt != "xywhr" && fmt != "cxcywhr" && fmt != "xyxyxyxy", "visionops.", op,
                              ": rotated box format '", std::string(fmt), "' for ", arg,
                              " is not supported; use torchvision.ops for rotated boxes");
  // "Unsupported format": torchvision's words, which users' code matches.
  TORCH_CHECK_VALUE(false, "visionops.", op, ": Unsupported format '", std::string(fmt), "' for ", arg,
                    ": must be one of 'xyxy', 'xywh', 'cxcywh'");
}


inline IouVariant parse_iou_variant(std::string_view variant, const char* op) {
  if (variant == "iou") return IouVariant::IoU;
  if (variant == "giou") return IouVariant::GIoU;
  if (variant == "diou") return IouVariant::DIoU;
  if (variant == "ciou") return IouVariant::CIoU;
  TORCH_CHECK_VALUE(false, "visionops.", op, ": variant must be one of 'iou', 'giou', 'diou', 'ciou', got '",
                    std::string(variant), "'");
}

// box_convert keeps the dtype, except that integer boxes become float32 when
// a centre is computed or consumed (torchvision divides by 2 or scales by 0.5).
inline at::ScalarType convert_out_dtype(at::ScalarType t, BoxFormat in_fmt, BoxFormat out_fmt) {
  const bool halves = in_fmt != out_fmt && (in_fmt == BoxFormat::CXCYWH || out_fmt == BoxFormat::CXCYWH);
  return (!at::isFloatingType(t) && halves) ? at::kFloat : t;
}

// Calls f(std::integral_constant<IouVariant, v>{}) for the run-time variant
// v: the kernels are templates on the variant, so each formula is inlined
// into its own loop, with no branch per pair.
template <typename F>
void with_iou_variant(IouVariant v, F&& f) {
  using V = IouVariant;
  switch (v) {
    case V::IoU:
      f(std::integral_constant<V, V::IoU>{});
      break;
    case V::GIoU:
      f(std::integral_constant<V, V::GIoU>{});
      break;
    case V::DIoU:
      f(std::integral_constant<V, V::DIoU>{});
      break;
    case V::CIoU:
      f(std::integral_constant<V, V::CIoU>{});
      break;
  }
}

// ---- box_area and box_convert: boxes [..., 4] elementwise.
struct ElementwiseBoxArgs {
  BoxFormat in_fmt, out_fmt;  // out_fmt: box_convert only
  at::ScalarType out_dtype;
  std::vector<int64_t> out_shape;
};

inline ElementwiseBoxArgs check_box_area_args(const at::Tensor& boxes, std::string_view fmt, const char* op) {
  const BoxFormat f = parse_box_format(fmt, op, "fmt");
  check_boxes(boxes, op, "boxes", 1, "[..., 4]");
  return {f, f, area_out_dtype(boxes.scalar_type()),
          std::vector<int64_t>(boxes.sizes().begin(), boxes.sizes().end() - 1)};
}

inline ElementwiseBoxArgs check_box_convert_args(const at::Tensor& boxes, std::string_view in_fmt,
                                                 std::string_view out_fmt, const char* op) {
  const BoxFormat fi = parse_box_format(in_fmt, op, "in_fmt");
  const BoxFormat fo = parse_box_format(out_fmt, op, "out_fmt");
  check_boxes(boxes, op, "boxes", 1, "[..., 4]");
  return {fi, fo, convert_out_dtype(boxes.scalar_type(), fi, fo), boxes.sizes().vec()};
}

// ---- the pairwise IoU family: boxes1 [..., N, 4] against boxes2 [..., M, 4],
// leading dimensions broadcast as torchvision's indexing does.

struct PairwiseShapes {
  at::Tensor boxes1;  // [B, N, 4], a view where the input allows it
  at::Tensor boxes2;  // [B, M, 4]
  std::vector<int64_t> batch;  // broadcast leading dimensions
  int64_t B, N, M;

  std::vector<int64_t> out_shape() const {
    std::vector<int64_t> s = batch;
    s.push_back(N);
    s.push_back(M);
    return s;
  }
};

inline PairwiseShapes pairwise_shapes(const at::Tensor& boxes1, const at::Tensor& boxes2, const char* op) {
  check_boxes(boxes1, op, "boxes1", 2, "[..., N, 4]");
  check_boxes(boxes2, op, "boxes2", 2, "[..., M, 4]");
  check_same_dtype_device(boxes1, boxes2, op, "boxes1", "boxes2");
  const auto lead1 = boxes1.sizes().slice(0, boxes1.dim() - 2);
  const auto lead2 = boxes2.sizes().slice(0, boxes2.dim() - 2);
  PairwiseShapes s;
  const int64_t nd = std::max<int64_t>(lead1.size(), lead2.size());
  for (int64_t k = 0; k < nd; ++k) {
    const int64_t o1 = nd - static_cast<int64_t>(lead1.size());
    const int64_t o2 = nd - static_cast<int64_t>(lead2.size());
    const int64_t d1 = k < o1 ? 1 : lead1[k - o1];
    const int64_t d2 = k < o2 ? 1 : lead2[k - o2];
    TORCH_CHECK(d1 == d2 || d1 == 1 || d2 == 1, "visionops.", op,
                ": the leading (batch) dimensions of boxes1 and boxes2 must broadcast, got ", shape_str(boxes1),
                " and ", shape_str(boxes2));
    s.batch.push_back(d1 == 1 ? d2 : d1);
  }
  s.N = boxes1.size(-2);
  s.M = boxes2.size(-2);
  s.B = 1;
  for (int64_t d : s.batch) s.B *= d;
  std::vector<int64_t> shape1 = s.batch, shape2 = s.batch;
  shape1.insert(shape1.end(), {s.N, 4});
  shape2.insert(shape2.end(), {s.M, 4});
  s.boxes1 = boxes1.expand(shape1).reshape({s.B, s.N, 4});
  s.boxes2 = boxes2.expand(shape2).reshape({s.B, s.M, 4});
  return s;
}

// The backward's arguments: its forward's, a gradient of the output's shape on
// the boxes' device, and floating point boxes.
inline PairwiseShapes check_pairwise_backward_args(const at::Tensor& grad, const at::Tensor& boxes1,
                                                   const at::Tensor& boxes2, const char* op) {
  const PairwiseShapes s = pairwise_shapes(boxes1, boxes2, op);
  TORCH_CHECK(grad.sizes() == at::IntArrayRef(s.out_shape()), "visionops.", op, ": grad must have shape ",
              c10::IntArrayRef(s.out_shape()), ", got ", shape_str(grad));
  TORCH_CHECK(at::isFloatingType(boxes1.scalar_type()), "visionops.", op,
              ": boxes must be floating point to take gradients, got ", boxes1.scalar_type());
  check_grad_device(grad, boxes1, op);
  return s;
}

// ---- the elementwise IoU losses: boxes1 and boxes2 of one shape [..., 4]
// (the Python wrapper broadcasts them first, as torchvision's elementwise
// code does), the loss of shape [...] or a scalar.

struct LossShapes {
  at::Tensor boxes1;  // [K, 4], contiguous
  at::Tensor boxes2;  // [K, 4], contiguous
  std::vector<int64_t> out_shape;  // the leading dimensions
  int64_t K;
};

inline LossShapes loss_shapes(const at::Tensor& boxes1, const at::Tensor& boxes2, const char* op) {
  check_boxes(boxes1, op, "boxes1", 1, "[..., 4]");
  check_boxes(boxes2, op, "boxes2", 1, "[..., 4]");
  check_same_dtype_device(boxes1, boxes2, op, "boxes1", "boxes2");
  TORCH_CHECK(boxes1.sizes() == boxes2.sizes(), "visionops.", op,
              ": boxes1 and boxes2 must have the same shape, got ", shape_str(boxes1), " and ", shape_str(boxes2));
  LossShapes s;
  s.out_shape.assign(boxes1.sizes().begin(), boxes1.sizes().end() - 1);
  s.boxes1 = boxes1.reshape({-1, 4}).contiguous();
  s.boxes2 = boxes2.reshape({-1, 4}).contiguous();
  s.K = s.boxes1.size(0);
  return s;
}

// The upstream gradient: one per pair for 'none', a scalar otherwise.
inline void check_loss_grad(const at::Tensor& grad, const LossShapes& s, Reduction red, const char* op) {
  if (red == Reduction::None) {
    TORCH_CHECK(grad.sizes() == at::IntArrayRef(s.out_shape), "visionops.", op, ": grad must have shape ",
                at::IntArrayRef(s.out_shape), ", got ", shape_str(grad));
  } else {
    TORCH_CHECK(grad.dim() == 0, "visionops.", op, ": grad must be a scalar for a reduced loss, got ",
                shape_str(grad));
  }
}

// The backward's arguments: a loss variant (not plain IoU), its forward's
// arguments, and a gradient as check_loss_grad wants it.
inline LossShapes check_loss_backward_args(const at::Tensor& grad, const at::Tensor& boxes1, const at::Tensor& boxes2,
                                           IouVariant v, Reduction red, const char* op) {
  TORCH_CHECK_VALUE(v != IouVariant::IoU, "visionops.", op, ": variant must be 'giou', 'diou' or 'ciou'");
  const LossShapes s = loss_shapes(boxes1, boxes2, op);
  check_loss_grad(grad, s, red, op);
  TORCH_CHECK(at::isFloatingType(boxes1.scalar_type()), "visionops.", op,
              ": boxes must be floating point to take gradients, got ", boxes1.scalar_type());
  check_grad_device(grad, boxes1, op);
  return s;
}

// ---- masks_to_boxes: masks [N, H, W] of any dtype.
inline void check_masks_to_boxes_args(const at::Tensor& masks, const char* op) {
  TORCH_CHECK(masks.dim() == 3, "visionops.", op, ": masks must have shape [N, H, W], got ", shape_str(masks));
}

}  // namespace vo
