// CPU kernels of roi_pool and its backward; the bin geometry is roi/math.h's.
//
// Forward: the map is read in channel slices stored channels-last
// (map_slices.h), so each pixel of a bin updates the running maximum of a
// block of channels in one vector loop (a compare and two blends), and a
// bin's pixels are visited once per block. Ties keep
// the first maximum in row-major order and NaN never wins, as in torchvision.
//
// Backward: each task owns a block of channels and visits every RoI in order,
// adding the gradient at the argmax pixel: no atomics, one summation order,
// bitwise the same for any thread count.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "core/cpu_isa.h"
#include "core/huge_pages.h"
#include "core/macros.h"
#include "roi/args.h"
#include "roi/map_slices.h"

namespace vo {
namespace {

// The maximum and its pixel over rows [h0, h1) and columns [w0, w1) of a
// channels-last slice (pixel (h, w) at x + (h * W + w) * ld), for NB
// channels: the running maxima live in registers.
template <typename T, int64_t NB>
void max_over_bin(const T* __restrict__ x, int64_t ld, int64_t W, int64_t h0, int64_t h1,
                                      int64_t w0, int64_t w1, T* __restrict__ best_out,
                                      int32_t* __restrict__ arg_out) {
  T best[NB];
  int32_t arg[NB];
  for (int64_t c = 0; c < NB; ++c) {
    best[c] = static_cast<T>(kRoiPoolLowest);
    arg[c] = -1;
  }
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t w = w0; w < w1; ++w) {
      const T* __restrict__ p = x + (h * W + w) * ld;
      const int32_t idx = static_cast<int32_t>(h * W + w);
      for (int64_t c = 0; c < NB; ++c) {
        // Branch-free: as a conditional, GCC emits a test-and-branch per
        // vector, which random data mispredicts half the time.
        const T v = p[c];
        const int32_t more = -static_cast<int32_t>(v > best[c]);
        arg[c] = (arg[c] & ~more) | (idx & more);
        best[c] = best[c] < v ? v : best[c];  // NaN never wins
      }
    }
  }
  for (int64_t c = 0; c < NB; ++c) {
    best_out[c] = best[c];
    arg_out[c] = arg[c];
  }
}

// The same for any number of channels (the last block of a map whose
// channels are not a multiple of the block).
template <typename T>
void max_over_bin_any(const T* __restrict__ x, int64_t ld, int64_t nb, int64_t W, int64_t h0,
                                          int64_t h1, int64_t w0, int64_t w1, T* __restrict__ best,
                                          int32_t* __restrict__ arg) {
  for (int64_t c = 0; c < nb; ++c) {
    best[c] = static_cast<T>(kRoiPoolLowest);
    arg[c] = -1;
  }
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t w = w0; w < w1; ++w) {
      const T* __restrict__ p = x + (h * W + w) * ld;
      const int32_t idx = static_cast<int32_t>(h * W + w);
      for (int64_t c = 0; c < nb; ++c) {
        const T v = p[c];
        const int32_t more = -static_cast<int32_t>(v > best[c]);
        arg[c] = (arg[c] & ~more) | (idx & more);
        best[c] = best[c] < v ? v : best[c];
      }
    }
  }
}

struct RoiPoolParams {
  double spatial_scale;
  int64_t pooled_h, pooled_w;
};

template <typename scalar_t, typename T>
void roi_pool_forward_map(const at::Tensor& map, const T* rois, const cpu::RoisByImage<T>& groups,
                          const RoiPoolParams& p, scalar_t* out, int32_t* argmax) {
  using cpu::kSliceChannels;
  const int64_t N = map.size(0), C = map.size(1), H = map.size(2), W = map.size(3);
  const int64_t bins = p.pooled_h * p.pooled_w;
  const int64_t blocks = (C + kSliceChannels - 1) / kSliceChannels;
  const cpu::SliceReader<scalar_t, T> reader(map);
  const T scale = static_cast<T>(p.spatial_scale);
  at::parallel_for(0, N * blocks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<T> buf, best(kSliceChannels);
    std::vector<int32_t> arg(kSliceChannels);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / blocks, c0 = (t % blocks) * kSliceChannels;
      if (groups.begin[n] == groups.begin[n + 1]) continue;
      const int64_t nb = std::min(kSliceChannels, C - c0);
      const cpu::MapSlice<T> x = reader.read(n, c0, nb, buf);
      for (int64_t i = groups.begin[n]; i < groups.begin[n + 1]; ++i) {
        const int64_t k = groups.order[i];
        const T* rk = rois + 5 * k;
        bool finite = true;
        const RoiPoolAxis<T> ay = roi_pool_axis(rk[2], rk[4], scale, p.pooled_h, finite);
        const RoiPoolAxis<T> ax = roi_pool_axis(rk[1], rk[3], scale, p.pooled_w, finite);
        scalar_t* ok = out + (k * C + c0) * bins;
        int32_t* ak = argmax + (k * C + c0) * bins;
        for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
          for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
            int64_t h0, h1, w0, w1;
            roi_pool_bin(ay, ph, H, h0, h1);
            roi_pool_bin(ax, pw, W, w0, w1);
            const int64_t bin = ph * p.pooled_w + pw;
            if (!finite || h1 <= h0 || w1 <= w0) {  // an empty bin pools to 0 and passes no gradient
              for (int64_t j = 0; j < nb; ++j) {
                ok[j * bins + bin] = scalar_t(0);
                ak[j * bins + bin] = -1;
              }
              continue;
            }
            if (nb == kSliceChannels)
              with_cpu_isa([&] { max_over_bin<T, kSliceChannels>(x.data, x.ld, W, h0, h1, w0, w1, best.data(), arg.data()); });
            else
              with_cpu_isa([&] { max_over_bin_any<T>(x.data, x.ld, nb, W, h0, h1, w0, w1, best.data(), arg.data()); });
            for (int64_t j = 0; j < nb; ++j) {
              ok[j * bins + bin] = static_cast<scalar_t>(best[j]);
              ak[j * bins + bin] = arg[j];
            }
          }
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> roi_pool_cpu(const at::Tensor& input, const at::Tensor& rois,
                                                double spatial_scale, int64_t pooled_h, int64_t pooled_w) {
  constexpr const char* op = "roi_pool";
  check_roi_input(input, op);
  check_rois(rois, input, op);
  check_output_size(pooled_h, pooled_w, op);
  const int64_t K = rois.size(0), N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  check_roi_pool_map(input, op);
  at::Tensor out = at::empty({K, C, pooled_h, pooled_w}, input.options());
  at::Tensor argmax = at::empty({K, C, pooled_h, pooled_w}, input.options().dtype(at::kInt));
  if (out.numel() == 0) return {out, argmax};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_pool", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor r = rois.to(c10::CppTypeToScalarType<T>::value).contiguous();
    const T* roi = r.data_ptr<T>();
    if (H == 0 || W == 0) {  // every bin is empty
      out.zero_();
      argmax.fill_(-1);
      return;
    }
    advise_huge_pages(out);
    advise_huge_pages(argmax);
    // Half and bfloat16 widen exactly, so the maxima are the same.
    cpu::RoisByImage<T> groups(roi, cpu::all_rois(K), N);
    groups.sort_spatially(roi);
    roi_pool_forward_map<scalar_t, T>(cpu::readable_map(input), roi, groups, {spatial_scale, pooled_h, pooled_w},
                                      out.data_ptr<scalar_t>(), argmax.data_ptr<int32_t>());
    for (const int64_t k : cpu::invalid_rois(roi, K, N)) {
      out[k].zero_();
      argmax[k].fill_(-1);
    }
  });
  return {out, argmax};
}

// plane[ak[bin] * s_pix] += gk[bin] over a RoI's bins. Only the forward's
// argmax values are meaningful; anything else outside the map is ignored
// rather than written. The sizes come in by value: used in place, through
// the enclosing lambda's references, GCC reloaded them from the stack and
// memory on every bin (perf annotate), about a sixth of the backward's time.
// kUnit: channels-first, s_pix == 1.
template <int kUnit, typename T>
inline void scatter_bins(T* __restrict__ plane, const T* __restrict__ gk, const int32_t* __restrict__ ak,
                         int64_t bins, int64_t HW, int64_t s_pix) {
  for (int64_t bin = 0; bin < bins; ++bin) {
    const int32_t i = ak[bin];
    if (i >= 0 && i < HW) plane[kUnit ? i : i * s_pix] += gk[bin];
  }
}

// How many RoIs ahead the backward prefetches.
constexpr int64_t kPrefetch = 8;

at::Tensor roi_pool_backward_cpu(const at::Tensor& grad, const at::Tensor& rois, const at::Tensor& argmax,
                                 double /*spatial_scale*/, int64_t pooled_h, int64_t pooled_w, int64_t N, int64_t C,
                                 int64_t H, int64_t W, bool channels_last) {
  constexpr const char* op = "_roi_pool_backward";
  check_rois(rois, grad, op);
  const int64_t K = rois.size(0);
  check_roi_grad(grad, K, C, pooled_h, pooled_w, op);
  check_roi_pool_argmax(argmax, grad, op);
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "_roi_pool_backward", [&] {
    using T = at::opmath_type<scalar_t>;
    constexpr auto acc_type = c10::CppTypeToScalarType<T>::value;
    at::Tensor gx = cpu::empty_map(N, C, H, W, grad.options().dtype(acc_type), channels_last);
    const int64_t HW = H * W;
    // A channels-first map is zeroed one channel's planes at a time, just
    // before the RoIs scatter into them, so they are still in cache when
    // they do (zeroed all at once first, they had left it: every scatter
    // missed); a channels-last one, whose channels interleave, at once.
    const bool zero_per_channel = !channels_last;
    if (!(K > 0 && C > 0 && HW > 0 && pooled_h > 0 && pooled_w > 0)) {
      gx.zero_();
    } else {
      if (!zero_per_channel) gx.zero_();
      const at::Tensor r = rois.to(acc_type).contiguous();
      const T* roi = r.data_ptr<T>();
      const at::Tensor g = grad.to(acc_type).contiguous();
      const at::Tensor a = argmax.contiguous();
      const T* gp = g.data_ptr<T>();
      const int32_t* ap = a.data_ptr<int32_t>();
      T* gxp = gx.data_ptr<T>();
      const int64_t bins = pooled_h * pooled_w;
      // Element (n, c, pixel) of the gradient map, in either layout.
      const int64_t s_n = C * HW, s_c = channels_last ? 1 : HW, s_pix = channels_last ? C : 1;
      // A task owns channels and works through them one at a time, so the
      // planes it scatters into stay in cache.
      at::parallel_for(0, C, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          if (zero_per_channel)
            for (int64_t n = 0; n < N; ++n) std::fill_n(gxp + n * s_n + c * s_c, HW, T(0));
          for (int64_t k = 0; k < K; ++k) {
            // The gradient and argmax of the RoI kPrefetch ahead, same
            // channel: consecutive RoIs' entries lie C bins apart (50 KB
            // here), a stride the hardware prefetchers do not follow.
            const int64_t ahead = ((k + kPrefetch < K ? k + kPrefetch : k) * C + c) * bins;
            for (int64_t b = 0; b < bins; b += 16) {
              __builtin_prefetch(gp + ahead + b);
              __builtin_prefetch(ap + ahead + b);
            }
            const int64_t n = roi_batch_index(roi[5 * k], N);
            if (n < 0) continue;  // pooled zeros: no gradient
            T* plane = gxp + n * s_n + c * s_c;
            const T* gk = gp + (k * C + c) * bins;
            const int32_t* ak = ap + (k * C + c) * bins;
            if (s_pix == 1) {
              scatter_bins<1>(plane, gk, ak, bins, HW, 1);
            } else {
              scatter_bins<0>(plane, gk, ak, bins, HW, s_pix);
            }
          }
        }
      });
    }
    result = gx.to(grad.scalar_type());
  });
  return result;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("roi_pool", &vo::roi_pool_cpu);
  m.impl("_roi_pool_backward", &vo::roi_pool_backward_cpu);
}
