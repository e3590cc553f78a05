// CPU kernels of the IoU losses (generalized_box_iou_loss,
// distance_box_iou_loss, complete_box_iou_loss): one pass computes the
// elementwise loss and its reduction; the backward is one pass too.
//
// Sums run over fixed chunks of kChunk pairs, added in chunk order, so 'sum'
// and 'mean' are bitwise the same for any thread count.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <string_view>
#include <tuple>
#include <vector>

#include "boxes/args.h"
#include "boxes/math.h"
#include "core/cpu_isa.h"
#include "core/dtypes.h"
#include "core/loss_grad.h"

namespace vo {
namespace {

constexpr int64_t kChunk = 4096;

// Loss of the pairs [begin, end) of contiguous [K, 4] boxes into out[0, end - begin).
template <IouVariant V, typename scalar_t, typename out_t>
void loss_chunk(const scalar_t* __restrict__ p, const scalar_t* __restrict__ t, int64_t begin,
                                    int64_t end, double eps, out_t* __restrict__ out) {
  using T = box_acc_t<scalar_t>;
  const T teps = static_cast<T>(eps);
  for (int64_t k = begin; k < end; ++k) out[k - begin] = static_cast<out_t>(box_iou_loss<V>(load_box<T>(p + 4 * k), load_box<T>(t + 4 * k), teps));
}

template <IouVariant V>
at::Tensor loss_forward(const at::Tensor& boxes1, const at::Tensor& boxes2, std::string_view reduction,
                        double eps, const char* op) {
  const Reduction red = parse_reduction(reduction, op);
  const LossShapes s = loss_shapes(boxes1, boxes2, op);
  const auto out_dtype = iou_out_dtype(boxes1.scalar_type());
  at::Tensor out = at::empty(red == Reduction::None ? s.out_shape : std::vector<int64_t>{},
                             boxes1.options().dtype(out_dtype));
  const int64_t K = s.K;
  if (K == 0) return red == Reduction::None ? out : out.zero_();
  VO_DISPATCH_BOX_TYPES(boxes1.scalar_type(), "box_iou_loss", [&] {
    using in_t = scalar_t;
    const in_t* p = s.boxes1.data_ptr<in_t>();
    const in_t* t = s.boxes2.data_ptr<in_t>();
    AT_DISPATCH_FLOATING_TYPES(out_dtype, "loss_out", [&] {
      using out_t = scalar_t;
      out_t* o = red == Reduction::None ? out.data_ptr<out_t>() : nullptr;
      const int64_t chunks = (K + kChunk - 1) / kChunk;
      std::vector<double> partial(chunks, 0.0);
      at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
        out_t local[kChunk];
        for (int64_t c = cb; c < ce; ++c) {
          const int64_t begin = c * kChunk, end = std::min(K, begin + kChunk);
          out_t* dst = o ? o + begin : local;
          with_cpu_isa([&] { loss_chunk<V, in_t, out_t>(p, t, begin, end, eps, dst); });
          if (!o) {
            double sum = 0.0;
            for (int64_t k = 0; k < end - begin; ++k) sum += static_cast<double>(dst[k]);
            partial[c] = sum;
          }
        }
      });
      if (red != Reduction::None) {
        double total = 0.0;
        for (double v : partial) total += v;
        if (red == Reduction::Mean) total /= static_cast<double>(K);
        out.fill_(total);
      }
    });
  });
  return out;
}

at::Tensor generalized_box_iou_loss_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2,
                                        std::string_view reduction, double eps) {
  return loss_forward<IouVariant::GIoU>(boxes1, boxes2, reduction, eps, "generalized_box_iou_loss");
}

at::Tensor distance_box_iou_loss_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2, std::string_view reduction,
                                     double eps) {
  return loss_forward<IouVariant::DIoU>(boxes1, boxes2, reduction, eps, "distance_box_iou_loss");
}

at::Tensor complete_box_iou_loss_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2, std::string_view reduction,
                                     double eps) {
  return loss_forward<IouVariant::CIoU>(boxes1, boxes2, reduction, eps, "complete_box_iou_loss");
}

// ---------------------------------------------------------------- backward

template <IouVariant V, typename scalar_t>
void loss_backward_chunk(const scalar_t* __restrict__ p, const scalar_t* __restrict__ t,
                                             const box_acc_t<scalar_t>* __restrict__ g,
                                             int64_t g_stride, box_acc_t<scalar_t> g_scale, int64_t begin,
                                             int64_t end, double eps, scalar_t* __restrict__ gp,
                                             scalar_t* __restrict__ gt) {
  using T = box_acc_t<scalar_t>;
  for (int64_t k = begin; k < end; ++k) {
    box_iou_loss_backward_pair<V>(p, t, k, static_cast<T>(eps), g[k * g_stride] * g_scale, gp, gt);
  }
}

template <IouVariant V>
void loss_backward_impl(const LossShapes& s, const at::Tensor& grad, Reduction red, double eps, at::Tensor& gp,
                        at::Tensor& gt) {
  const int64_t K = s.K;
  VO_DISPATCH_FLOAT_BOX_TYPES(s.boxes1.scalar_type(), "box_iou_loss_backward", [&] {
    using T = box_acc_t<scalar_t>;
    const LossGrad g = loss_grad(grad, red, K, c10::CppTypeToScalarType<T>::value);
    const scalar_t* p = s.boxes1.data_ptr<scalar_t>();
    const scalar_t* t = s.boxes2.data_ptr<scalar_t>();
    at::parallel_for(0, K, kChunk, [&](int64_t begin, int64_t end) {
      with_cpu_isa([&] { loss_backward_chunk<V, scalar_t>(p, t, g.g.data_ptr<T>(), g.stride, static_cast<T>(g.scale), begin, end,
                                       eps, gp.data_ptr<scalar_t>(), gt.data_ptr<scalar_t>()); });
    });
  });
}

std::tuple<at::Tensor, at::Tensor> box_iou_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& boxes1,
                                                             const at::Tensor& boxes2, std::string_view variant,
                                                             std::string_view reduction, double eps) {
  constexpr const char* op = "_box_iou_loss_backward";
  const IouVariant v = parse_iou_variant(variant, op);
  const Reduction red = parse_reduction(reduction, op);
  const LossShapes s = check_loss_backward_args(grad, boxes1, boxes2, v, red, op);
  at::Tensor gp = at::empty({s.K, 4}, boxes1.options());
  at::Tensor gt = at::empty({s.K, 4}, boxes2.options());
  if (s.K > 0) {
    with_iou_variant(v, [&](auto variant) {
      // Plain IoU is no loss here (check_loss_backward_args refuses it).
      if constexpr (decltype(variant)::value != IouVariant::IoU) {
        loss_backward_impl<decltype(variant)::value>(s, grad, red, eps, gp, gt);
      }
    });
  }
  return {gp.view(boxes1.sizes()), gt.view(boxes2.sizes())};
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("generalized_box_iou_loss", &vo::generalized_box_iou_loss_cpu);
  m.impl("distance_box_iou_loss", &vo::distance_box_iou_loss_cpu);
  m.impl("complete_box_iou_loss", &vo::complete_box_iou_loss_cpu);
  m.impl("_box_iou_loss_backward", &vo::box_iou_loss_backward_cpu);
}
