// CUDA kernels of the pairwise IoU family and their backward. Same records and
// per-pair formulas as the CPU (boxes/math.h); only the loops differ.
//
// Forward: one block row per output row, threads along j, so the writes of a
// warp are contiguous. Backward: one thread per box of boxes1 summing over j,
// then one thread per box of boxes2 summing over i: no atomics, so the
// gradient is deterministic.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <string_view>
#include <tuple>

#include "boxes/args.h"
#include "boxes/math.h"
#include "core/cuda_launch.h"
#include "core/dtypes.h"

namespace vo {
namespace {

template <typename scalar_t, typename T>
__global__ void make_records_kernel(const scalar_t* __restrict__ boxes, int64_t count, BoxFormat fmt,
                                    bool with_aspect, T* __restrict__ soa) {
  VO_CUDA_1D_KERNEL_LOOP(i, count) {
    const scalar_t* p = boxes + 4 * i;
    const Box4<T> raw{static_cast<T>(p[0]), static_cast<T>(p[1]), static_cast<T>(p[2]), static_cast<T>(p[3])};
    store_record(make_box_record(raw, fmt, with_aspect), soa, count, i);
  }
}

// [B, K, 4] contiguous boxes -> [8, B * K] records.
template <typename scalar_t>
at::Tensor make_records(const at::Tensor& boxes, BoxFormat fmt, bool with_aspect) {
  using T = box_acc_t<scalar_t>;
  const int64_t count = boxes.numel() / 4;
  at::Tensor soa = at::empty({kRecordFields, count}, boxes.options().dtype(c10::CppTypeToScalarType<T>::value));
  if (count == 0) return soa;
  make_records_kernel<scalar_t, T><<<cuda::blocks_for(count), cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      boxes.data_ptr<scalar_t>(), count, fmt, with_aspect, soa.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return soa;
}

template <IouVariant V, typename T, typename out_t>
__global__ void pairwise_kernel(const T* __restrict__ rec1, int64_t count1, const T* __restrict__ rec2,
                                int64_t count2, int64_t rows, int64_t N, int64_t M, T eps, out_t* __restrict__ out) {
  const RecordArrays<T> a_all = RecordArrays<T>::over(rec1, count1, 0);
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const BoxRecord<T> a = a_all.load(r);
    const RecordArrays<T> b = RecordArrays<T>::over(rec2, count2, (r / N) * M);
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < M;
         j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
      out[r * M + j] = static_cast<out_t>(pairwise_iou<V>(a, b.load(j), eps));
    }
  }
}

template <IouVariant V>
at::Tensor pairwise_forward(const at::Tensor& boxes1, const at::Tensor& boxes2, BoxFormat fmt, double eps,
                            const char* op) {
  const PairwiseShapes s = pairwise_shapes(boxes1, boxes2, op);
  const c10::cuda::CUDAGuard guard(boxes1.device());
  at::Tensor out = at::empty(s.out_shape(), boxes1.options().dtype(iou_out_dtype(boxes1.scalar_type())));
  if (out.numel() == 0) return out;
  VO_DISPATCH_BOX_TYPES(boxes1.scalar_type(), "box_iou_family", [&] {
    using T = box_acc_t<scalar_t>;
    constexpr bool kAspect = V == IouVariant::CIoU;
    const at::Tensor rec1 = make_records<scalar_t>(s.boxes1.contiguous(), fmt, kAspect);
    const at::Tensor rec2 = make_records<scalar_t>(s.boxes2.contiguous(), fmt, kAspect);
    const int64_t rows = s.B * s.N;
    const dim3 grid(static_cast<unsigned int>(std::min<int64_t>((s.M + cuda::kThreads - 1) / cuda::kThreads, 1024)),
                    static_cast<unsigned int>(std::min<int64_t>(rows, 65535)));
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "pairwise_out", [&] {
      pairwise_kernel<V, T, scalar_t><<<grid, cuda::kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          rec1.data_ptr<T>(), rec1.size(1), rec2.data_ptr<T>(), rec2.size(1), rows, s.N, s.M,
          static_cast<T>(eps), out.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

at::Tensor box_iou_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2, std::string_view fmt) {
  const BoxFormat f = parse_box_format(fmt, "box_iou", "fmt");
  return pairwise_forward<IouVariant::IoU>(boxes1, boxes2, f, 0.0, "box_iou");
}

at::Tensor generalized_box_iou_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  return pairwise_forward<IouVariant::GIoU>(boxes1, boxes2, BoxFormat::XYXY, 0.0, "generalized_box_iou");
}

at::Tensor distance_box_iou_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2, double eps) {
  return pairwise_forward<IouVariant::DIoU>(boxes1, boxes2, BoxFormat::XYXY, eps, "distance_box_iou");
}

at::Tensor complete_box_iou_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2, double eps) {
  return pairwise_forward<IouVariant::CIoU>(boxes1, boxes2, BoxFormat::XYXY, eps, "complete_box_iou");
}

// ---------------------------------------------------------------- backward

template <typename scalar_t, typename T>
__device__ __forceinline__ void store_box_grad(scalar_t* dst, const Box4<T>& v) {
  dst[0] = static_cast<scalar_t>(v.x1);
  dst[1] = static_cast<scalar_t>(v.y1);
  dst[2] = static_cast<scalar_t>(v.x2);
  dst[3] = static_cast<scalar_t>(v.y2);
}

template <typename scalar_t, typename T>
__device__ __forceinline__ Box4<T> load_raw(const scalar_t* p) {
  return {static_cast<T>(p[0]), static_cast<T>(p[1]), static_cast<T>(p[2]), static_cast<T>(p[3])};
}

// grad1[r] = sum over j of d out[r, j] / d boxes1[r].
template <IouVariant V, typename scalar_t, typename T>
__global__ void pairwise_backward_rows(const T* __restrict__ rec1, int64_t count1, const T* __restrict__ rec2,
                                       int64_t count2, const scalar_t* __restrict__ raw1, const T* __restrict__ g,
                                       int64_t N, int64_t M, BoxFormat fmt, T eps, scalar_t* __restrict__ grad1) {
  const RecordArrays<T> a_all = RecordArrays<T>::over(rec1, count1, 0);
  VO_CUDA_1D_KERNEL_LOOP(r, count1) {
    const BoxRecord<T> a = a_all.load(r);
    const RecordArrays<T> b = RecordArrays<T>::over(rec2, count2, (r / N) * M);
    BoxRecordGrad<T> acc = zero_record_grad<T>();
    for (int64_t j = 0; j < M; ++j) {
      BoxRecordGrad<T> unused = zero_record_grad<T>();
      pairwise_iou_backward<V>(a, b.load(j), eps, g[r * M + j], acc, unused);
    }
    store_box_grad(grad1 + 4 * r, record_grad_to_box(load_raw<scalar_t, T>(raw1 + 4 * r), fmt, acc));
  }
}

// grad2[c] = sum over i of d out[i, c] / d boxes2[c]; neighbouring threads
// read neighbouring columns of g.
template <IouVariant V, typename scalar_t, typename T>
__global__ void pairwise_backward_cols(const T* __restrict__ rec1, int64_t count1, const T* __restrict__ rec2,
                                       int64_t count2, const scalar_t* __restrict__ raw2, const T* __restrict__ g,
                                       int64_t N, int64_t M, BoxFormat fmt, T eps, scalar_t* __restrict__ grad2) {
  const RecordArrays<T> b_all = RecordArrays<T>::over(rec2, count2, 0);
  VO_CUDA_1D_KERNEL_LOOP(c, count2) {
    const int64_t batch = c / M;
    const int64_t j = c % M;
    const BoxRecord<T> b = b_all.load(c);
    const RecordArrays<T> a = RecordArrays<T>::over(rec1, count1, batch * N);
    BoxRecordGrad<T> acc = zero_record_grad<T>();
    for (int64_t i = 0; i < N; ++i) {
      BoxRecordGrad<T> unused = zero_record_grad<T>();
      pairwise_iou_backward<V>(a.load(i), b, eps, g[(batch * N + i) * M + j], unused, acc);
    }
    store_box_grad(grad2 + 4 * c, record_grad_to_box(load_raw<scalar_t, T>(raw2 + 4 * c), fmt, acc));
  }
}

template <IouVariant V, typename scalar_t>
void pairwise_backward_impl(const PairwiseShapes& s, const at::Tensor& grad, BoxFormat fmt, double eps,
                            at::Tensor& grad1, at::Tensor& grad2) {
  using T = box_acc_t<scalar_t>;
  constexpr bool kAspect = V == IouVariant::CIoU;
  const at::Tensor raw1 = s.boxes1.contiguous();
  const at::Tensor raw2 = s.boxes2.contiguous();
  const at::Tensor rec1 = make_records<scalar_t>(raw1, fmt, kAspect);
  const at::Tensor rec2 = make_records<scalar_t>(raw2, fmt, kAspect);
  const at::Tensor g = grad.to(c10::CppTypeToScalarType<T>::value).contiguous();
  const int64_t count1 = s.B * s.N, count2 = s.B * s.M;
  const auto stream = at::cuda::getCurrentCUDAStream();
  pairwise_backward_rows<V, scalar_t, T><<<cuda::blocks_for(count1), cuda::kThreads, 0, stream>>>(
      rec1.data_ptr<T>(), count1, rec2.data_ptr<T>(), count2, raw1.data_ptr<scalar_t>(), g.data_ptr<T>(), s.N, s.M,
      fmt, static_cast<T>(eps), grad1.data_ptr<scalar_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  pairwise_backward_cols<V, scalar_t, T><<<cuda::blocks_for(count2), cuda::kThreads, 0, stream>>>(
      rec1.data_ptr<T>(), count1, rec2.data_ptr<T>(), count2, raw2.data_ptr<scalar_t>(), g.data_ptr<T>(), s.N, s.M,
      fmt, static_cast<T>(eps), grad2.data_ptr<scalar_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> pairwise_box_iou_backward_cuda(const at::Tensor& grad, const at::Tensor& boxes1,
                                                                  const at::Tensor& boxes2, std::string_view variant,
                                                                  std::string_view fmt, double eps) {
  constexpr const char* op = "_pairwise_box_iou_backward";
  const IouVariant v = parse_iou_variant(variant, op);
  const BoxFormat f = parse_box_format(fmt, op, "fmt");
  const PairwiseShapes s = check_pairwise_backward_args(grad, boxes1, boxes2, op);
  const c10::cuda::CUDAGuard guard(boxes1.device());
  std::vector<int64_t> shape1 = s.batch, shape2 = s.batch;
  shape1.insert(shape1.end(), {s.N, 4});
  shape2.insert(shape2.end(), {s.M, 4});
  at::Tensor grad1 = at::zeros({s.B, s.N, 4}, boxes1.options());
  at::Tensor grad2 = at::zeros({s.B, s.M, 4}, boxes2.options());
  if (s.B == 0 || s.N == 0 || s.M == 0) return {grad1.reshape(shape1), grad2.reshape(shape2)};
  VO_DISPATCH_FLOAT_BOX_TYPES(boxes1.scalar_type(), "pairwise_box_iou_backward", [&] {
    with_iou_variant(v, [&](auto variant) {
      pairwise_backward_impl<decltype(variant)::value, scalar_t>(s, grad, f, eps, grad1, grad2);
    });
  });
  return {grad1.reshape(shape1), grad2.reshape(shape2)};
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CUDA, m) {
  m.impl("box_iou", &vo::box_iou_cuda);
  m.impl("generalized_box_iou", &vo::generalized_box_iou_cuda);
  m.impl("distance_box_iou", &vo::distance_box_iou_cuda);
  m.impl("complete_box_iou", &vo::complete_box_iou_cuda);
  m.impl("_pairwise_box_iou_backward", &vo::pairwise_box_iou_backward_cuda);
}
