// CPU kernel of soft_nms. Soft-NMS is sequential by nature (each pick
// depends on every earlier decay); each step is one pass over the boxes
// still in play, held as a structure of arrays in index order and compacted
// as boxes drop, so the pass vectorizes and ties go to the lowest index.
// The weight and the IoU are nms/math.h's, as on the GPU.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <string_view>
#include <tuple>
#include <vector>

#include "core/checks.h"
#include "core/dtypes.h"
#include "nms/args.h"
#include "nms/math.h"

namespace vo {
namespace {

template <typename scalar_t>
std::tuple<at::Tensor, at::Tensor> soft_nms_impl(const at::Tensor& boxes, const at::Tensor& scores,
                                                 double iou_threshold, double sigma, double score_threshold,
                                                 SoftNmsMethod method) {
  using T = box_acc_t<scalar_t>;
  const at::Tensor b = boxes.contiguous();
  const at::Tensor s = scores.contiguous();
  const scalar_t* bp = b.data_ptr<scalar_t>();
  const scalar_t* sp = s.data_ptr<scalar_t>();
  const int64_t n = boxes.size(0);

  // Boxes in play, in index order. A NaN score cannot be ranked: dropped.
  std::vector<NmsBox<T>> box;
  std::vector<T> score;
  std::vector<int64_t> index;
  for (int64_t i = 0; i < n; ++i) {
    const T sc = static_cast<T>(sp[i]);
    if (!(static_cast<double>(sc) >= score_threshold)) continue;
    const scalar_t* q = bp + 4 * i;
    box.push_back(make_nms_box<T>(static_cast<T>(q[0]), static_cast<T>(q[1]), static_cast<T>(q[2]),
                                  static_cast<T>(q[3])));
    score.push_back(sc);
    index.push_back(i);
  }
  const T thr = static_cast<T>(iou_threshold), sig = static_cast<T>(sigma);
  std::vector<int64_t> picked;
  std::vector<T> picked_score;
  while (!box.empty()) {
    int64_t best = 0;  // the first maximum: the lowest index among ties
    for (int64_t k = 1; k < static_cast<int64_t>(score.size()); ++k) {
      if (score[k] > score[best]) best = k;
    }
    const NmsBox<T> top = box[best];
    picked.push_back(index[best]);
    picked_score.push_back(score[best]);
    // Decay the others and drop those that fall below the threshold,
    // compacting in place (order kept).
    int64_t out = 0;
    for (int64_t k = 0; k < static_cast<int64_t>(score.size()); ++k) {
      if (k == best) continue;
      const T sc = score[k] * soft_nms_weight(nms_iou(top, box[k]), method, thr, sig);
      if (!(static_cast<double>(sc) >= score_threshold)) continue;
      box[out] = box[k];
      score[out] = sc;
      index[out] = index[k];
      ++out;
    }
    box.resize(out);
    score.resize(out);
    index.resize(out);
  }
  const int64_t K = static_cast<int64_t>(picked.size());
  at::Tensor keep = at::empty({K}, boxes.options().dtype(at::kLong));
  at::Tensor out_scores = at::empty({K}, scores.options());
  std::copy(picked.begin(), picked.end(), keep.data_ptr<int64_t>());
  scalar_t* os = out_scores.data_ptr<scalar_t>();
  for (int64_t k = 0; k < K; ++k) os[k] = static_cast<scalar_t>(picked_score[k]);
  return {keep, out_scores};
}

std::tuple<at::Tensor, at::Tensor> soft_nms_cpu(const at::Tensor& boxes, const at::Tensor& scores,
                                                double iou_threshold, double sigma, double score_threshold,
                                                std::string_view method) {
  const SoftNmsMethod m = check_soft_nms_args(boxes, scores, sigma, method);
  std::tuple<at::Tensor, at::Tensor> out;
  VO_DISPATCH_FLOAT_BOX_TYPES(boxes.scalar_type(), "soft_nms", [&] {
    out = soft_nms_impl<scalar_t>(boxes, scores, iou_threshold, sigma, score_threshold, m);
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("soft_nms", &vo::soft_nms_cpu);
}
