// CPU kernel of paste_masks: Mask R-CNN's mask probabilities resized to each
// box and written into full-size images, in one pass over the output instead
// of torchvision's Python loop of one interpolation, one zeros image and one
// copy per detection (plus a stack of them all).
//
// The image rows are split among threads. For each mask a thread meets, it
// tabulates the column taps of the box's visible width once, and interpolates
// the needed rows of the padded mask along x once (a few dozen rows of at most
// the image width); each output row inside the box is then one vector pass
// over two of those rows.
//
// Almost all of the output is zeros: 100 detections on 800 x 800 are 256 MB,
// of which the boxes cover a few percent. Large outputs are therefore zeroed
// by the operating system (core/lazy_zeros.h) and only the boxes are written;
// small ones are written whole, row by row.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "core/cpu_isa.h"
#include "core/lazy_zeros.h"
#include "masks/args.h"
#include "masks/math.h"

namespace vo {
namespace {

std::vector<PasteBox> paste_boxes_cpu(const at::Tensor& boxes, int64_t mask_width, int64_t padding) {
  const int64_t n = boxes.size(0);
  std::vector<PasteBox> out(n);
  const at::Tensor b = boxes.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, b.scalar_type(), "paste_masks", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    // torchvision's Python float (M + 2 padding) / M, then the opmath type.
    const acc_t scale = static_cast<acc_t>(static_cast<double>(mask_width + 2 * padding) / mask_width);
    const scalar_t* bp = b.const_data_ptr<scalar_t>();
    for (int64_t i = 0; i < n; ++i) out[i] = expand_paste_box<scalar_t, acc_t>(bp + 4 * i, scale);
  });
  return out;
}

// Output rows [r0, r1) of the [N * H, W] output. With zeroed = true the
// output already holds zeros and only the boxes are written. out_t is
// scalar_t (probabilities) or bool (thresholded).
template <typename scalar_t, typename out_t>
void paste_rows(const scalar_t* masks, const PasteBox* boxes, int64_t mh, int64_t mw, int64_t padding, int64_t H,
                int64_t W, at::opmath_type<scalar_t> threshold, out_t* out, int64_t r0, int64_t r1, bool zeroed) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t ph = mh + 2 * padding, pw = mw + 2 * padding;
  const size_t row_bytes = static_cast<size_t>(W) * sizeof(out_t);
  std::vector<int64_t> col0, col1;
  std::vector<acc_t> wx0, wx1, rows_x;
  auto zero_rows = [&](out_t* dst, int64_t count) {
    if (!zeroed && count > 0) std::memset(static_cast<void*>(dst), 0, row_bytes * count);
  };
  for (int64_t r = r0; r < r1;) {
    const int64_t n = r / H, y_begin = r % H, y_end = std::min(H, y_begin + (r1 - r));
    r += y_end - y_begin;
    const PasteBox& b = boxes[n];
    out_t* o = out + n * H * W;
    const int64_t xs = paste_span_begin(b.x1), xe = paste_span_end(b.x2, W);
    const int64_t ys = std::max(paste_span_begin(b.y1), y_begin), ye = std::min(paste_span_end(b.y2, H), y_end);
    if (xe <= xs || ye <= ys) {  // nothing of this mask in these rows
      zero_rows(o + y_begin * W, y_end - y_begin);
      continue;
    }
    const int64_t cw = xe - xs;
    col0.resize(cw);
    col1.resize(cw);
    wx0.resize(cw);
    wx1.resize(cw);
    for (int64_t j = 0; j < cw; ++j) {
      const LinearTap<acc_t> t = linear_tap<scalar_t, acc_t>(xs + j - b.x1, pw, b.w);
      col0[j] = t.i0;
      col1[j] = t.i1;
      wx0[j] = t.l0;
      wx1[j] = t.l1;
    }
    // The padded mask rows that rows [ys, ye) read (taps are monotone in y),
    // each interpolated along x.
    const int64_t first = linear_tap<scalar_t, acc_t>(ys - b.y1, ph, b.h).i0;
    const int64_t last = linear_tap<scalar_t, acc_t>(ye - 1 - b.y1, ph, b.h).i1;
    rows_x.resize((last - first + 1) * cw);
    const scalar_t* m = masks + n * mh * mw;
    for (int64_t pr = first; pr <= last; ++pr) {
      acc_t* rx = rows_x.data() + (pr - first) * cw;
      for (int64_t j = 0; j < cw; ++j) {
        rx[j] = lerp_pair(padded_mask_value<scalar_t, acc_t>(m, pr, col0[j], mh, mw, padding), wx0[j],
                          padded_mask_value<scalar_t, acc_t>(m, pr, col1[j], mh, mw, padding), wx1[j]);
      }
    }
    zero_rows(o + y_begin * W, ys - y_begin);
    if (zeroed) populate_for_writes(o + ys * W + xs, o + (ye - 1) * W + xe);
    for (int64_t y = ys; y < ye; ++y) {
      out_t* row = o + y * W;
      if (!zeroed) {
        std::memset(static_cast<void*>(row), 0, xs * sizeof(out_t));
        std::memset(static_cast<void*>(row + xe), 0, (W - xe) * sizeof(out_t));
      }
      out_t* span = row + xs;
      const LinearTap<acc_t> t = linear_tap<scalar_t, acc_t>(y - b.y1, ph, b.h);
      const acc_t* a = rows_x.data() + (t.i0 - first) * cw;
      const acc_t* c = rows_x.data() + (t.i1 - first) * cw;
      with_cpu_isa([&] {
        for (int64_t j = 0; j < cw; ++j) {
          span[j] = paste_output<scalar_t, out_t>(lerp_pair(a[j], t.l0, c[j], t.l1), threshold);
        }
      });
    }
    zero_rows(o + ye * W, y_end - ye);
  }
}

at::Tensor paste_masks_cpu(const at::Tensor& masks, const at::Tensor& boxes, int64_t height, int64_t width,
                           int64_t padding, std::optional<double> threshold) {
  constexpr const char* op = "paste_masks";
  const std::vector<int64_t> shape = check_paste_masks_args(masks, boxes, height, width, padding, op);
  const at::TensorOptions options = threshold ? masks.options().dtype(at::kBool) : masks.options();
  const int64_t N = shape[0], H = height, W = width;
  if (N * H * W == 0) return at::empty(shape, options);
  const bool zeroed = N * H * W * static_cast<int64_t>(options.dtype().itemsize()) >= kLazyZeroBytes;
  at::Tensor out = zeroed ? zeros_for_sparse_writes(shape, options) : at::empty(shape, options);
  const int64_t mh = masks.size(2), mw = masks.size(3);
  const std::vector<PasteBox> pb = paste_boxes_cpu(boxes, mw, padding);
  const at::Tensor m = masks.contiguous();
  // About 64 KiB of output per task, whole rows.
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(W * out.element_size(), 1));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, m.scalar_type(), "paste_masks", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* mp = m.const_data_ptr<scalar_t>();
    // The threshold in the mask dtype, as a comparison with a Python number.
    const acc_t t = static_cast<acc_t>(static_cast<scalar_t>(threshold.value_or(0.0)));
    at::parallel_for(0, N * H, grain, [&](int64_t r0, int64_t r1) {
      if (threshold) {
        paste_rows<scalar_t, bool>(mp, pb.data(), mh, mw, padding, H, W, t, out.mutable_data_ptr<bool>(), r0, r1,
                                   zeroed);
      } else {
        paste_rows<scalar_t, scalar_t>(mp, pb.data(), mh, mw, padding, H, W, t, out.mutable_data_ptr<scalar_t>(),
                                       r0, r1, zeroed);
      }
    });
  });
  return out;
}

}  // namespace
}  // namespace vo

TORCH_LIBRARY_IMPL(visionops, CPU, m) { m.impl("paste_masks", &vo::paste_masks_cpu); }
