// CPU kernels of yolo_decode (every scale of a YOLO head to the top-k boxes
// per image, ready for batched NMS) and yolo_boxes (the differentiable box
// decoding of one scale, and its backward). Formulas: coding/math.h.
//
// yolo_decode reads each class plane once: the best class of every cell is
// a running maximum over the planes (vectorized over cells), the score is
// sigmoid(objectness) * sigmoid(best logit), and only the top-k cells have
// their boxes decoded. The top-k is a selection by (score, index), so ties
// keep the candidates' order (scale, anchor, row, column), as the CUDA
// kernel's stable sort does.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "coding/args.h"
#include "core/cpu_isa.h"
#include "core/fast_math_simd.h"
#include "core/macros.h"
#include "core/simd.h"

namespace vo {
namespace {

// Best class and score of HW cells of one anchor: obj and cls point at its
// objectness plane and first class plane (planes HW apart). Tiles of
// kScoreTile cells go through all C planes, keeping their running maximum
// and its class in two arrays of 16 KiB together, within L1 (32 KiB on
// Zen 2), and reading each plane in runs of 8 KiB that the prefetcher
// follows. The class is kept as a T (class ids are far below 2^24, exact),
// so that the compare and both selects have one lane width.
constexpr int64_t kScoreTile = 2048;

// The running maximum of n cells over C planes (the first best class wins
// ties; a NaN logit never wins): plain C++, vectorized by the compiler.
// best and lab are written back unconditionally, as a maximum and a
// product: written as selects ("lab = more ? c : lab"), GCC made the stores
// masked and skipped them through a branch on "any lane larger", which
// random logits mispredict (5x slower).
template <typename scalar_t, typename T>
void running_max(const scalar_t* __restrict__ cls, int64_t C, int64_t HW, int64_t n, T* __restrict__ best,
                 T* __restrict__ lab) {
  for (int64_t c = 0; c < C; ++c) {
    const scalar_t* __restrict__ p = cls + c * HW;
    const T cf = static_cast<T>(c);
    VO_SIMD
    for (int64_t i = 0; i < n; ++i) {
      const T v = static_cast<T>(p[i]), b = best[i], l = lab[i];
      const bool more = v > b;
      best[i] = b < v ? v : b;                   // more ? v : b
      lab[i] = l + static_cast<T>(more) * (cf - l);  // more ? cf : l, exactly (small integers)
    }
  }
}

#ifdef VO_HAVE_SIMD16
// running_max for float heads over core/simd.h's 16 lanes: the same
// compare and selects, explicitly (n a multiple of 16).
template <typename S>
void running_max_simd(const float* __restrict__ cls, int64_t C, int64_t HW, int64_t n, float* __restrict__ best,
                      float* __restrict__ lab) {
  using F = typename S::F;
  for (int64_t c = 0; c < C; ++c) {
    const float* __restrict__ p = cls + c * HW;
    // The next plane's run, a line ahead at a time: the hardware
    // prefetcher, which stops at page boundaries, restarts on each run of
    // 8 KiB.
    const float* next = c + 1 < C ? p + HW : p;
    const F cf = S::set1(static_cast<float>(c));
    for (int64_t i = 0; i < n; i += 16) {
      __builtin_prefetch(next + i);
      const F v = S::load(p + i), b = S::load(best + i);
      S::store(lab + i, S::select_gt(v, b, cf, S::load(lab + i)));
      S::store(best + i, S::select_gt(v, b, v, b));
    }
  }
}
#endif

template <typename scalar_t, typename T>
void score_cells(const scalar_t* __restrict__ obj, const scalar_t* __restrict__ cls, int64_t C, int64_t HW,
                 int64_t* __restrict__ label, T* __restrict__ score) {
  alignas(64) T best[kScoreTile];
  alignas(64) T lab[kScoreTile];
  for (int64_t i0 = 0; i0 < HW; i0 += kScoreTile) {
    const int64_t n = std::min(kScoreTile, HW - i0);
    for (int64_t i = 0; i < n; ++i) {
      best[i] = -std::numeric_limits<T>::infinity();
      lab[i] = T(0);
    }
    int64_t done = 0;
#ifdef VO_HAVE_SIMD16
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (simd_available()) {
        done = n / 16 * 16;
        with_simd([&](auto s) { running_max_simd<decltype(s)>(cls + i0, C, HW, done, best, lab); });
      }
    }
#endif
    if (done < n)
      with_cpu_isa([&] { running_max<scalar_t, T>(cls + i0 + done, C, HW, n - done, best + done, lab + done); });
    int64_t scored = 0;
#ifdef VO_HAVE_SIMD16
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (simd_available()) {
        scored = done;
        with_simd([&](auto s) {
          using S = decltype(s);
          for (int64_t i = 0; i < done; i += 16)
            S::store(score + i0 + i,
                     S::mul(stable_sigmoid_simd<S>(S::load(obj + i0 + i)), stable_sigmoid_simd<S>(S::load(best + i))));
        });
      }
    }
#endif
    with_cpu_isa([&] {
      for (int64_t i = 0; i < n; ++i) label[i0 + i] = static_cast<int64_t>(lab[i]);
      for (int64_t i = scored; i < n; ++i)
        score[i0 + i] = stable_sigmoid(static_cast<T>(obj[i0 + i])) * stable_sigmoid(best[i]);
    });
  }
}

// Scores as bins: a non-negative float or double orders as its bits, so
// their top bits (the exponent and the leading mantissa bits) are bins in
// score order, 2^13 of them over [0, inf] (a NaN score, never above the
// threshold, is never counted).
constexpr int64_t kScoreBins = int64_t(1) << 13;

template <typename T>
inline int64_t score_bin(T score) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  static_assert(sizeof(T) == sizeof(Bits), "float or double scores");
  const T nonneg = score > T(0) ? score : T(0);  // scores are >= 0; a guard all the same
  Bits u;
  std::memcpy(&u, &nonneg, sizeof(u));
  return static_cast<int64_t>(u >> (8 * sizeof(T) - 14));
}

// The indices of one image's candidates above thr (NaN never is) among
// which its top K by (score descending, index ascending) lie: all of them
// when there are at most K, else those in the highest bins holding K or
// more (a histogram pass and a collecting pass, both linear), so that the
// selection below works on about K indices rather than every candidate.
template <typename T>
void top_candidates(const T* __restrict__ sb, int64_t N, T thr, int64_t K, int32_t* __restrict__ hist,
                    std::vector<int64_t>& idx) {
  std::fill(hist, hist + kScoreBins, 0);
  int64_t above = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int32_t in = sb[i] > thr ? 1 : 0;
    hist[score_bin(sb[i])] += in;
    above += in;
  }
  int64_t cut = 0;  // the lowest bin taken
  if (above > K) {
    int64_t taken = 0;
    cut = kScoreBins;
    while (taken < K) taken += hist[--cut];
  }
  idx.clear();
  for (int64_t i = 0; i < N; ++i)
    if (sb[i] > thr && score_bin(sb[i]) >= cut) idx.push_back(i);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> yolo_decode_cpu(at::TensorList heads,
                                                                         const at::Tensor& anchors,
                                                                         at::IntArrayRef strides,
                                                                         std::string_view version,
                                                                         double score_threshold,
                                                                         int64_t max_detections) {
  constexpr const char* op = "yolo_decode";
  const YoloVersion v = parse_yolo_version(version, op);
  const YoloLayout y = check_yolo_decode_args(heads, anchors, strides, max_detections, op);
  const at::Tensor& h0 = heads[0];
  const int64_t B = y.B, K = max_detections;
  at::Tensor boxes = at::zeros({B, K, 4}, h0.options());
  at::Tensor scores = at::zeros({B, K}, h0.options());
  at::Tensor labels = at::full({B, K}, -1, h0.options().dtype(at::kLong));
  at::Tensor counts = at::zeros({B}, h0.options().dtype(at::kLong));
  if (B == 0 || K == 0 || y.N == 0) return {boxes, scores, labels, counts};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, h0.scalar_type(), "yolo_decode", [&] {
    using T = at::opmath_type<scalar_t>;
    constexpr auto acc_type = c10::CppTypeToScalarType<T>::value;
    std::vector<at::Tensor> hs;
    for (const at::Tensor& h : heads) hs.push_back(h.contiguous());
    at::Tensor cand_score = at::empty({B, y.N}, h0.options().dtype(acc_type));
    at::Tensor cand_label = at::empty({B, y.N}, h0.options().dtype(at::kLong));
    T* sp = cand_score.data_ptr<T>();
    int64_t* lp = cand_label.data_ptr<int64_t>();
    const int64_t per = 5 + y.C;
    // Tasks: (image, scale, anchor).
    TORCH_CHECK_VALUE(y.C <= std::numeric_limits<int32_t>::max(), "visionops.yolo_decode: at most ",
                      std::numeric_limits<int32_t>::max(), " classes, got ", y.C);
    at::parallel_for(0, B * y.L * y.A, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / (y.L * y.A), l = (t / y.A) % y.L, a = t % y.A;
        const int64_t HW = y.H[l] * y.W[l];
        const scalar_t* base = hs[l].data_ptr<scalar_t>() + (b * y.A * per + a * per) * HW;
        const int64_t o = b * y.N + y.offset[l] + a * HW;
        score_cells<scalar_t, T>(base + 4 * HW, base + 5 * HW, y.C, HW, lp + o, sp + o);
      }
    });
    // Per image: the candidates above the threshold (NaN never is), the top
    // K of them by (score descending, index ascending), a total order, so
    // ties keep the candidates' order; only those boxes are decoded.
    const T thr = static_cast<T>(score_threshold);
    const at::Tensor a_f = anchors.to(acc_type).contiguous();
    const T* ap = a_f.data_ptr<T>();
    scalar_t* bp = boxes.data_ptr<scalar_t>();
    scalar_t* scp = scores.data_ptr<scalar_t>();
    int64_t* lbp = labels.data_ptr<int64_t>();
    int64_t* cp = counts.data_ptr<int64_t>();
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      std::vector<int64_t> idx;
      std::vector<int32_t> hist(kScoreBins);
      for (int64_t b = b0; b < b1; ++b) {
        const T* sb = sp + b * y.N;
        top_candidates(sb, y.N, thr, K, hist.data(), idx);
        const auto before = [sb](int64_t i, int64_t j) { return sb[i] > sb[j] || (sb[i] == sb[j] && i < j); };
        const int64_t n = std::min<int64_t>(K, static_cast<int64_t>(idx.size()));
        if (n < static_cast<int64_t>(idx.size())) std::nth_element(idx.begin(), idx.begin() + n, idx.end(), before);
        std::sort(idx.begin(), idx.begin() + n, before);
        for (int64_t r = 0; r < n; ++r) {
          const int64_t i = idx[r];
          int64_t l = 0;
          while (i >= y.offset[l + 1]) ++l;
          const int64_t HW = y.H[l] * y.W[l], j = i - y.offset[l], a = j / HW, cell = j % HW;
          const scalar_t* base = hs[l].data_ptr<scalar_t>() + (b * y.A * per + a * per) * HW + cell;
          const T logits[4] = {static_cast<T>(base[0]), static_cast<T>(base[HW]), static_cast<T>(base[2 * HW]),
                               static_cast<T>(base[3 * HW])};
          T box[4];
          yolo_box(logits, static_cast<T>(cell % y.W[l]), static_cast<T>(cell / y.W[l]),
                   static_cast<T>(strides[l]), ap[(l * y.A + a) * 2], ap[(l * y.A + a) * 2 + 1], v, box);
          for (int q = 0; q < 4; ++q) bp[(b * K + r) * 4 + q] = static_cast<scalar_t>(box[q]);
          scp[b * K + r] = static_cast<scalar_t>(sb[i]);
          lbp[b * K + r] = lp[b * y.N + i];
        }
        cp[b] = n;
      }
    });
  });
  return {boxes, scores, labels, counts};
}

at::Tensor yolo_boxes_cpu(const at::Tensor& head, const at::Tensor& anchors, int64_t stride,
                          std::string_view version) {
  constexpr const char* op = "yolo_boxes";
  const YoloVersion v = parse_yolo_version(version, op);
  check_yolo_boxes_args(head, anchors, op);
  const int64_t B = head.size(0), A = anchors.size(0), H = head.size(2), W = head.size(3), HW = H * W;
  const int64_t per = head.size(1) / A;
  at::Tensor out = at::empty({B, A, H, W, 4}, head.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, head.scalar_type(), "yolo_boxes", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor h = head.contiguous();
    const at::Tensor af = anchors.to(c10::CppTypeToScalarType<T>::value).contiguous();
    const scalar_t* hp = h.data_ptr<scalar_t>();
    const T* ap = af.data_ptr<T>();
    scalar_t* op_ = out.data_ptr<scalar_t>();
    at::parallel_for(0, B * A, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / A, a = t % A;
        const scalar_t* base = hp + (b * A + a) * per * HW;
        for (int64_t cell = 0; cell < HW; ++cell) {
          const T logits[4] = {static_cast<T>(base[cell]), static_cast<T>(base[HW + cell]),
                               static_cast<T>(base[2 * HW + cell]), static_cast<T>(base[3 * HW + cell])};
          T box[4];
          yolo_box(logits, static_cast<T>(cell % W), static_cast<T>(cell / W), static_cast<T>(stride), ap[2 * a],
                   ap[2 * a + 1], v, box);
          for (int q = 0; q < 4; ++q) op_[(t * HW + cell) * 4 + q] = static_cast<scalar_t>(box[q]);
        }
      }
    });
  });
  return out;
}

at::Tensor yolo_boxes_backward_cpu(const at::Tensor& grad, const at::Tensor& head, const at::Tensor& anchors,
                                   int64_t stride, std::string_view version) {
  constexpr const char* op = "_yolo_boxes_backward";
  const YoloVersion v = parse_yolo_version(version, op);
  check_yolo_boxes_backward_args(grad, head, anchors, op);
  const int64_t B = head.size(0), A = anchors.size(0), H = head.size(2), W = head.size(3), HW = H * W;
  const int64_t per = head.size(1) / A;
  // Only the four box channels of each anchor get a gradient.
  at::Tensor gh = at::zeros(head.sizes(), head.options());
  if (gh.numel() == 0) return gh;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, head.scalar_type(), "_yolo_boxes_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor h = head.contiguous();
    const at::Tensor g = grad.contiguous();
    const at::Tensor af = anchors.to(c10::CppTypeToScalarType<T>::value).contiguous();
    const scalar_t* hp = h.data_ptr<scalar_t>();
    const scalar_t* gp = g.data_ptr<scalar_t>();
    const T* ap = af.data_ptr<T>();
    scalar_t* ghp = gh.data_ptr<scalar_t>();
    at::parallel_for(0, B * A, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t a = t % A;
        const scalar_t* base = hp + t * per * HW;
        scalar_t* gbase = ghp + t * per * HW;
        for (int64_t cell = 0; cell < HW; ++cell) {
          const T logits[4] = {static_cast<T>(base[cell]), static_cast<T>(base[HW + cell]),
                               static_cast<T>(base[2 * HW + cell]), static_cast<T>(base[3 * HW + cell])};
          const T gout[4] = {static_cast<T>(gp[(t * HW + cell) * 4]), static_cast<T>(gp[(t * HW + cell) * 4 + 1]),
                             static_cast<T>(gp[(t * HW + cell) * 4 + 2]), static_cast<T>(gp[(t * HW + cell) * 4 + 3])};
          T gl[4];
          yolo_box_backward(logits, static_cast<T>(stride), ap[2 * a], ap[2 * a + 1], v, gout, gl);
          for (int q = 0; q < 4; ++q) gbase[q * HW + cell] = static_cast<scalar_t>(gl[q]);
        }
      }
    });
  });
  return gh;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("yolo_decode", &vo::yolo_decode_cpu);
  m.impl("yolo_boxes", &vo::yolo_boxes_cpu);
  m.impl("_yolo_boxes_backward", &vo::yolo_boxes_backward_cpu);
}
