// CPU kernels of the pairwise IoU family (box_iou, generalized_box_iou,
// distance_box_iou, complete_box_iou) and their backward.
//
// Each box is reduced once to a BoxRecord (corners, area, centre, atan(w/h))
// held as a structure of arrays, so the N x M loop reads contiguous floats and
// the compiler vectorizes it; the per-pair formula is boxes/math.h's.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <string_view>
#include <tuple>

#include "boxes/args.h"
#include "boxes/math.h"
#include "core/cpu_isa.h"
#include "core/dtypes.h"
#include "core/huge_pages.h"
#include "core/streaming_store.h"

namespace vo {
namespace {

template <typename T>
RecordArrays<T> record_arrays(const at::Tensor& soa, int64_t offset) {
  return RecordArrays<T>::over(soa.data_ptr<T>(), soa.size(1), offset);
}

template <typename scalar_t>
Box4<box_acc_t<scalar_t>> load_box(const at::TensorAccessor<const scalar_t, 2>& b, int64_t i) {
  using T = box_acc_t<scalar_t>;
  return {static_cast<T>(b[i][0]), static_cast<T>(b[i][1]), static_cast<T>(b[i][2]), static_cast<T>(b[i][3])};
}

// [B, K, 4] boxes -> [8, B * K] records in the accumulation type.
template <typename scalar_t>
at::Tensor make_records(const at::Tensor& boxes, BoxFormat fmt, bool with_aspect) {
  using T = box_acc_t<scalar_t>;
  const at::Tensor flat = boxes.reshape({-1, 4});
  const int64_t count = flat.size(0);
  at::Tensor soa = at::empty({kRecordFields, count}, boxes.options().dtype(c10::CppTypeToScalarType<T>::value));
  const auto acc = flat.accessor<const scalar_t, 2>();
  T* out = soa.data_ptr<T>();
  at::parallel_for(0, count, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      store_record(make_box_record(load_box<scalar_t>(acc, i), fmt, with_aspect), out, count, i);
    }
  });
  return soa;
}

// One row of the output: box a against boxes [0, m) of b. Multiversioned so
// the loop runs at AVX-512 or AVX2 width where the CPU has it.
template <IouVariant V, typename T, typename out_t>
void pairwise_row(BoxRecord<T> a, RecordArrays<T> b, int64_t m, T eps,
                                      out_t* __restrict__ out) {
  for (int64_t j = 0; j < m; ++j) out[j] = static_cast<out_t>(pairwise_iou<V>(a, b.load(j), eps));
}

// Rows [B * N) of the output from the records. A template of the records'
// type T, not of the boxes' dtype: the nine box dtypes share two copies of
// each row kernel per instruction set, where a lambda in the dtype dispatch
// was one copy for each, and for both output dtypes (the file took 69 s to
// compile that way, 35 s this way).
template <IouVariant V, typename T>
void pairwise_rows(const RecordArrays<T>& a, const at::Tensor& rec2, const PairwiseShapes& s, T teps,
                   at::Tensor& out) {
  const int64_t N = s.N, M = s.M;
  // About 16k pairs per task: small enough to balance, large enough to
  // amortize the task.
  const int64_t grain = std::max<int64_t>(1, 16384 / M);
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "pairwise_out", [&] {
    using out_t = scalar_t;
    out_t* o = out.data_ptr<out_t>();
    const bool stream = worth_streaming(o, out.nbytes(), static_cast<size_t>(kStreamingStoreBytes));
    at::parallel_for(0, s.B * N, grain, [&](int64_t begin, int64_t end) {
      constexpr int64_t kTile = 2048;  // computed in L1, then streamed out
      out_t tile[kTile];
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b0 = (r / N) * M;  // this row's batch in boxes2
        if (!stream) {
          with_cpu_isa([&] { pairwise_row<V, T, out_t>(a.load(r), record_arrays<T>(rec2, b0), M, teps, o + r * M); });
          continue;
        }
        for (int64_t j0 = 0; j0 < M; j0 += kTile) {
          const int64_t len = std::min(kTile, M - j0);
          with_cpu_isa([&] { pairwise_row<V, T, out_t>(a.load(r), record_arrays<T>(rec2, b0 + j0), len, teps, tile); });
          stream_copy(o + r * M + j0, tile, len);
        }
      }
      if (stream) stream_fence();
    });
  });
}

template <IouVariant V>
at::Tensor pairwise_forward(const at::Tensor& boxes1, const at::Tensor& boxes2, BoxFormat fmt, double eps,
                            const char* op) {
  const PairwiseShapes s = pairwise_shapes(boxes1, boxes2, op);
  at::Tensor out = at::empty(s.out_shape(), boxes1.options().dtype(iou_out_dtype(boxes1.scalar_type())));
  if (out.numel() == 0) return out;
  advise_huge_pages(out);
  VO_DISPATCH_BOX_TYPES(boxes1.scalar_type(), "box_iou_family", [&] {
    using T = box_acc_t<scalar_t>;
    constexpr bool kAspect = V == IouVariant::CIoU;
    const at::Tensor rec1 = make_records<scalar_t>(s.boxes1, fmt, kAspect);
    const at::Tensor rec2 = make_records<scalar_t>(s.boxes2, fmt, kAspect);
    pairwise_rows<V, T>(record_arrays<T>(rec1, 0), rec2, s, static_cast<T>(eps), out);
  });
  return out;
}

at::Tensor box_iou_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2, std::string_view fmt) {
  const BoxFormat f = parse_box_format(fmt, "box_iou", "fmt");
  return pairwise_forward<IouVariant::IoU>(boxes1, boxes2, f, 0.0, "box_iou");
}

at::Tensor generalized_box_iou_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  return pairwise_forward<IouVariant::GIoU>(boxes1, boxes2, BoxFormat::XYXY, 0.0, "generalized_box_iou");
}

at::Tensor distance_box_iou_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2, double eps) {
  return pairwise_forward<IouVariant::DIoU>(boxes1, boxes2, BoxFormat::XYXY, eps, "distance_box_iou");
}

at::Tensor complete_box_iou_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2, double eps) {
  return pairwise_forward<IouVariant::CIoU>(boxes1, boxes2, BoxFormat::XYXY, eps, "complete_box_iou");
}

// ---------------------------------------------------------------- backward
//
// Two passes, each owning its outputs so that no two threads add into the
// same place: rows for grad1 (each sums over j in order), column blocks for
// grad2 (each sums over i in order). Every sum runs in a fixed order, so the
// result is bitwise the same for any thread count.

constexpr int64_t kColumnBlock = 64;

template <IouVariant V, typename scalar_t>
void pairwise_backward_impl(const PairwiseShapes& s, const at::Tensor& grad, BoxFormat fmt, double eps,
                            at::Tensor& grad1, at::Tensor& grad2) {
  using T = box_acc_t<scalar_t>;
  constexpr bool kAspect = V == IouVariant::CIoU;
  const at::Tensor rec1 = make_records<scalar_t>(s.boxes1, fmt, kAspect);
  const at::Tensor rec2 = make_records<scalar_t>(s.boxes2, fmt, kAspect);
  const at::Tensor flat1 = s.boxes1.reshape({-1, 4});
  const at::Tensor flat2 = s.boxes2.reshape({-1, 4});
  const auto raw1 = flat1.accessor<const scalar_t, 2>();
  const auto raw2 = flat2.accessor<const scalar_t, 2>();
  const RecordArrays<T> a_all = record_arrays<T>(rec1, 0);
  const RecordArrays<T> b_all = record_arrays<T>(rec2, 0);
  const T* g = grad.data_ptr<T>();
  scalar_t* g1 = grad1.data_ptr<scalar_t>();
  scalar_t* g2 = grad2.data_ptr<scalar_t>();
  const int64_t N = s.N, M = s.M;
  const T teps = static_cast<T>(eps);

  auto store = [](scalar_t* dst, Box4<T> v) {
    dst[0] = static_cast<scalar_t>(v.x1);
    dst[1] = static_cast<scalar_t>(v.y1);
    dst[2] = static_cast<scalar_t>(v.x2);
    dst[3] = static_cast<scalar_t>(v.y2);
  };

  at::parallel_for(0, s.B * N, std::max<int64_t>(1, 4096 / std::max<int64_t>(M, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b0 = (r / N) * M;
      const BoxRecord<T> a = a_all.load(r);
      BoxRecordGrad<T> acc = zero_record_grad<T>();
      for (int64_t j = 0; j < M; ++j) {
        BoxRecordGrad<T> unused = zero_record_grad<T>();
        pairwise_iou_backward<V>(a, b_all.load(b0 + j), teps, g[r * M + j], acc, unused);
      }
      store(g1 + 4 * r, record_grad_to_box(load_box<scalar_t>(raw1, r), fmt, acc));
    }
  });

  const int64_t blocks_per_batch = (M + kColumnBlock - 1) / kColumnBlock;
  at::parallel_for(0, s.B * blocks_per_batch, 1, [&](int64_t begin, int64_t end) {
    BoxRecordGrad<T> acc[kColumnBlock];
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t batch = blk / blocks_per_batch;
      const int64_t j0 = (blk % blocks_per_batch) * kColumnBlock;
      const int64_t j1 = std::min(M, j0 + kColumnBlock);
      for (int64_t j = j0; j < j1; ++j) acc[j - j0] = zero_record_grad<T>();
      for (int64_t i = 0; i < N; ++i) {
        const int64_t r = batch * N + i;
        const BoxRecord<T> a = a_all.load(r);
        for (int64_t j = j0; j < j1; ++j) {
          BoxRecordGrad<T> unused = zero_record_grad<T>();
          pairwise_iou_backward<V>(a, b_all.load(batch * M + j), teps, g[r * M + j], unused, acc[j - j0]);
        }
      }
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t c = batch * M + j;
        store(g2 + 4 * c, record_grad_to_box(load_box<scalar_t>(raw2, c), fmt, acc[j - j0]));
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> pairwise_box_iou_backward_cpu(const at::Tensor& grad, const at::Tensor& boxes1,
                                                                 const at::Tensor& boxes2, std::string_view variant,
                                                                 std::string_view fmt, double eps) {
  constexpr const char* op = "_pairwise_box_iou_backward";
  const IouVariant v = parse_iou_variant(variant, op);
  const BoxFormat f = parse_box_format(fmt, op, "fmt");
  const PairwiseShapes s = check_pairwise_backward_args(grad, boxes1, boxes2, op);
  at::Tensor grad1 = at::empty({s.B, s.N, 4}, boxes1.options());
  at::Tensor grad2 = at::empty({s.B, s.M, 4}, boxes2.options());
  std::vector<int64_t> shape1 = s.batch, shape2 = s.batch;
  shape1.insert(shape1.end(), {s.N, 4});
  shape2.insert(shape2.end(), {s.M, 4});
  if (grad1.numel() == 0 && grad2.numel() == 0) return {grad1.reshape(shape1), grad2.reshape(shape2)};
  if (s.N == 0 || s.M == 0) {
    grad1.zero_();
    grad2.zero_();
    return {grad1.reshape(shape1), grad2.reshape(shape2)};
  }
  VO_DISPATCH_FLOAT_BOX_TYPES(boxes1.scalar_type(), "pairwise_box_iou_backward", [&] {
    using T = box_acc_t<scalar_t>;
    const at::Tensor g = grad.to(c10::CppTypeToScalarType<T>::value).contiguous();
    with_iou_variant(v, [&](auto variant) {
      pairwise_backward_impl<decltype(variant)::value, scalar_t>(s, g, f, eps, grad1, grad2);
    });
  });
  return {grad1.reshape(shape1), grad2.reshape(shape2)};
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("box_iou", &vo::box_iou_cpu);
  m.impl("generalized_box_iou", &vo::generalized_box_iou_cpu);
  m.impl("distance_box_iou", &vo::distance_box_iou_cpu);
  m.impl("complete_box_iou", &vo::complete_box_iou_cpu);
  m.impl("_pairwise_box_iou_backward", &vo::pairwise_box_iou_backward_cpu);
}
