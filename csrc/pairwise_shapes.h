// Shapes of the pairwise IoU family: boxes1 [..., N, 4] against boxes2
// [..., M, 4], leading dimensions broadcast as torchvision's indexing does.
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <vector>

#include "checks.h"

namespace vo {

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

}  // namespace vo
