// CUDA kernels of yolo_decode and yolo_boxes (coding/math.h). yolo_decode:
// one scoring kernel per scale, a stable sort per image (ATen) and a kernel
// that decodes the top-k boxes; counts come from the sorted scores. No host
// synchronization.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <limits>
#include <string_view>
#include <tuple>
#include <vector>

#include "coding/args.h"
#include "core/cuda_launch.h"

namespace vo {
namespace {

constexpr int64_t kMaxScales = 8;

template <typename scalar_t>
struct Scales {
  const scalar_t* head[kMaxScales];
  int64_t offset[kMaxScales + 1], H[kMaxScales], W[kMaxScales], stride[kMaxScales];
  int64_t L, A, per, N;
};

template <typename scalar_t, typename T>
__global__ void score_kernel(const scalar_t* __restrict__ head, int64_t B, int64_t A, int64_t C, int64_t HW,
                             int64_t N, int64_t offset, T* __restrict__ score, int64_t* __restrict__ label) {
  const int64_t per = 5 + C;
  VO_CUDA_1D_KERNEL_LOOP(i, B * A * HW) {
    const int64_t cell = i % HW, a = (i / HW) % A, b = i / (A * HW);
    const scalar_t* base = head + (b * A * per + a * per) * HW + cell;
    T best = -std::numeric_limits<T>::infinity();
    int64_t arg = 0;
    for (int64_t c = 0; c < C; ++c) {
      const T v = static_cast<T>(base[(5 + c) * HW]);
      if (v > best) {  // the first best class wins ties
        best = v;
        arg = c;
      }
    }
    const int64_t o = b * N + offset + a * HW + cell;
    score[o] = stable_sigmoid(static_cast<T>(base[4 * HW])) * stable_sigmoid(best);
    label[o] = arg;
  }
}

template <typename scalar_t, typename T>
__global__ void gather_kernel(Scales<scalar_t> s, const T* __restrict__ anchors, YoloVersion v, int64_t B, int64_t k,
                              int64_t K, const T* __restrict__ top_score, const int64_t* __restrict__ top_index,
                              const int64_t* __restrict__ cand_label, scalar_t* __restrict__ boxes,
                              scalar_t* __restrict__ scores, int64_t* __restrict__ labels) {
  VO_CUDA_1D_KERNEL_LOOP(t, B * k) {
    const int64_t b = t / k, n = t % k;
    const T sc = top_score[t];
    if (!(sc > -std::numeric_limits<T>::infinity())) continue;  // padding stays as initialized
    const int64_t i = top_index[t];
    int64_t l = 0;
    while (i >= s.offset[l + 1]) ++l;
    const int64_t HW = s.H[l] * s.W[l], j = i - s.offset[l], a = j / HW, cell = j % HW;
    const scalar_t* base = s.head[l] + (b * s.A * s.per + a * s.per) * HW + cell;
    const T logits[4] = {static_cast<T>(base[0]), static_cast<T>(base[HW]), static_cast<T>(base[2 * HW]),
                         static_cast<T>(base[3 * HW])};
    T box[4];
    yolo_box(logits, static_cast<T>(cell % s.W[l]), static_cast<T>(cell / s.W[l]), static_cast<T>(s.stride[l]),
             anchors[(l * s.A + a) * 2], anchors[(l * s.A + a) * 2 + 1], v, box);
    for (int q = 0; q < 4; ++q) boxes[(b * K + n) * 4 + q] = static_cast<scalar_t>(box[q]);
    scores[b * K + n] = static_cast<scalar_t>(sc);
    labels[b * K + n] = cand_label[b * s.N + i];
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> yolo_decode_cuda(at::TensorList heads,
                                                                          const at::Tensor& anchors,
                                                                          at::IntArrayRef strides,
                                                                          std::string_view version,
                                                                          double score_threshold,
                                                                          int64_t max_detections) {
  constexpr const char* op = "yolo_decode";
  const YoloVersion v = parse_yolo_version(version, op);
  const YoloLayout y = check_yolo_decode_args(heads, anchors, strides, max_detections, op);
  TORCH_CHECK(y.L <= kMaxScales, "visionops.", op, ": at most ", kMaxScales, " scales on CUDA, got ", y.L);
  const at::Tensor& h0 = heads[0];
  const c10::cuda::CUDAGuard guard(h0.device());
  const int64_t B = y.B, K = max_detections;
  at::Tensor boxes = at::zeros({B, K, 4}, h0.options());
  at::Tensor scores = at::zeros({B, K}, h0.options());
  at::Tensor labels = at::full({B, K}, -1, h0.options().dtype(at::kLong));
  at::Tensor counts = at::zeros({B}, h0.options().dtype(at::kLong));
  if (B == 0 || K == 0 || y.N == 0) return {boxes, scores, labels, counts};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, h0.scalar_type(), "yolo_decode", [&] {
    using T = at::opmath_type<scalar_t>;
    constexpr auto acc_type = c10::CppTypeToScalarType<T>::value;
    auto stream = at::cuda::getCurrentCUDAStream();
    std::vector<at::Tensor> hs;
    for (const at::Tensor& h : heads) hs.push_back(h.contiguous());
    at::Tensor cand_score = at::empty({B, y.N}, h0.options().dtype(acc_type));
    at::Tensor cand_label = at::empty({B, y.N}, h0.options().dtype(at::kLong));
    Scales<scalar_t> s{};
    s.L = y.L;
    s.A = y.A;
    s.per = 5 + y.C;
    s.N = y.N;
    for (int64_t l = 0; l < y.L; ++l) {
      const int64_t HW = y.H[l] * y.W[l];
      s.head[l] = hs[l].const_data_ptr<scalar_t>();
      s.offset[l] = y.offset[l];
      s.H[l] = y.H[l];
      s.W[l] = y.W[l];
      s.stride[l] = strides[l];
      if (B * y.A * HW == 0) continue;
      score_kernel<scalar_t, T><<<cuda::blocks_for(B * y.A * HW), cuda::kThreads, 0, stream>>>(
          s.head[l], B, y.A, y.C, HW, y.N, y.offset[l], cand_score.mutable_data_ptr<T>(),
          cand_label.mutable_data_ptr<int64_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    s.offset[y.L] = y.N;
    const at::Tensor ranked =
        at::where(cand_score > score_threshold, cand_score, at::full({}, -INFINITY, cand_score.options()));
    const auto sorted = at::sort(ranked, /*stable=*/true, /*dim=*/1, /*descending=*/true);
    const int64_t k = std::min(K, y.N);
    const at::Tensor top_score = std::get<0>(sorted).narrow(1, 0, k).contiguous();
    const at::Tensor top_index = std::get<1>(sorted).narrow(1, 0, k).contiguous();
    counts.copy_((top_score > -INFINITY).sum(1));
    const at::Tensor af = anchors.to(acc_type).contiguous();
    gather_kernel<scalar_t, T><<<cuda::blocks_for(B * k), cuda::kThreads, 0, stream>>>(
        s, af.const_data_ptr<T>(), v, B, k, K, top_score.const_data_ptr<T>(), top_index.const_data_ptr<int64_t>(),
        cand_label.const_data_ptr<int64_t>(), boxes.mutable_data_ptr<scalar_t>(), scores.mutable_data_ptr<scalar_t>(),
        labels.mutable_data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {boxes, scores, labels, counts};
}

template <typename scalar_t>
__global__ void yolo_boxes_kernel(const scalar_t* __restrict__ head, const at::opmath_type<scalar_t>* anchors,
                                  int64_t B, int64_t A, int64_t per, int64_t H, int64_t W, int64_t stride,
                                  YoloVersion v, scalar_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  const int64_t HW = H * W;
  VO_CUDA_1D_KERNEL_LOOP(i, B * A * HW) {
    const int64_t cell = i % HW, t = i / HW, a = t % A;
    const scalar_t* base = head + t * per * HW + cell;
    const T logits[4] = {static_cast<T>(base[0]), static_cast<T>(base[HW]), static_cast<T>(base[2 * HW]),
                         static_cast<T>(base[3 * HW])};
    T box[4];
    yolo_box(logits, static_cast<T>(cell % W), static_cast<T>(cell / W), static_cast<T>(stride), anchors[2 * a],
             anchors[2 * a + 1], v, box);
    for (int q = 0; q < 4; ++q) out[i * 4 + q] = static_cast<scalar_t>(box[q]);
  }
}

template <typename scalar_t>
__global__ void yolo_boxes_backward_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ head,
                                           const at::opmath_type<scalar_t>* anchors, int64_t B, int64_t A,
                                           int64_t per, int64_t HW, int64_t stride, YoloVersion v,
                                           scalar_t* __restrict__ gh) {
  using T = at::opmath_type<scalar_t>;
  VO_CUDA_1D_KERNEL_LOOP(i, B * A * HW) {
    const int64_t cell = i % HW, t = i / HW, a = t % A;
    const scalar_t* base = head + t * per * HW + cell;
    const T logits[4] = {static_cast<T>(base[0]), static_cast<T>(base[HW]), static_cast<T>(base[2 * HW]),
                         static_cast<T>(base[3 * HW])};
    const T g[4] = {static_cast<T>(grad[i * 4]), static_cast<T>(grad[i * 4 + 1]), static_cast<T>(grad[i * 4 + 2]),
                    static_cast<T>(grad[i * 4 + 3])};
    T gl[4];
    yolo_box_backward(logits, static_cast<T>(stride), anchors[2 * a], anchors[2 * a + 1], v, g, gl);
    scalar_t* gb = gh + t * per * HW + cell;
    for (int q = 0; q < 4; ++q) gb[q * HW] = static_cast<scalar_t>(gl[q]);
  }
}

at::Tensor yolo_boxes_cuda(const at::Tensor& head, const at::Tensor& anchors, int64_t stride,
                           std::string_view version) {
  constexpr const char* op = "yolo_boxes";
  const YoloVersion v = parse_yolo_version(version, op);
  check_yolo_boxes_args(head, anchors, op);
  const c10::cuda::CUDAGuard guard(head.device());
  const int64_t B = head.size(0), A = anchors.size(0), H = head.size(2), W = head.size(3);
  at::Tensor out = at::empty({B, A, H, W, 4}, head.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, head.scalar_type(), "yolo_boxes", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor h = head.contiguous();
    const at::Tensor af = anchors.to(c10::CppTypeToScalarType<T>::value).contiguous();
    yolo_boxes_kernel<scalar_t><<<cuda::blocks_for(B * A * H * W), cuda::kThreads, 0,
                                  at::cuda::getCurrentCUDAStream()>>>(
        h.const_data_ptr<scalar_t>(), af.const_data_ptr<T>(), B, A, head.size(1) / A, H, W, stride, v,
        out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor yolo_boxes_backward_cuda(const at::Tensor& grad, const at::Tensor& head, const at::Tensor& anchors,
                                    int64_t stride, std::string_view version) {
  constexpr const char* op = "_yolo_boxes_backward";
  const YoloVersion v = parse_yolo_version(version, op);
  check_yolo_boxes_backward_args(grad, head, anchors, op);
  const c10::cuda::CUDAGuard guard(head.device());
  const int64_t B = head.size(0), A = anchors.size(0), HW = head.size(2) * head.size(3);
  at::Tensor gh = at::zeros(head.sizes(), head.options());
  if (gh.numel() == 0) return gh;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, head.scalar_type(), "_yolo_boxes_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor h = head.contiguous();
    const at::Tensor g = grad.contiguous();
    const at::Tensor af = anchors.to(c10::CppTypeToScalarType<T>::value).contiguous();
    yolo_boxes_backward_kernel<scalar_t><<<cuda::blocks_for(B * A * HW), cuda::kThreads, 0,
                                           at::cuda::getCurrentCUDAStream()>>>(
        g.const_data_ptr<scalar_t>(), h.const_data_ptr<scalar_t>(), af.const_data_ptr<T>(), B, A,
        head.size(1) / A, HW, stride, v, gh.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return gh;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("yolo_decode", &vo::yolo_decode_cuda);
  m.impl("yolo_boxes", &vo::yolo_boxes_cuda);
  m.impl("_yolo_boxes_backward", &vo::yolo_boxes_backward_cuda);
}
