// CPU kernels that read COCO's segmentation formats into packed masks (the
// layout of pack_masks: row-major pixels, 64 to an int64 word):
//   coco_rle_decode   compressed RLE strings ("counts" of maskUtils.encode),
//   coco_runs_decode  uncompressed RLE (a list of run lengths),
//   coco_polygons_decode  polygons, rasterized exactly as pycocotools'
//                     rleFrPoly does (5x upsampled boundary, then the
//                     boundary crossings of pixel centres), several polygons
//                     of one object merged.
// RLE runs alternate background and foreground over pixels in column-major
// order (x outer), starting with background. Every object's mask is h * w of
// its own image.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "coco/args.h"

namespace vo {
namespace {

int64_t words_of(int64_t h, int64_t w) { return (h * w + 63) / 64; }

// Sets the foreground runs of column-major `runs` in a packed row-major mask.
void runs_to_bits(const int64_t* runs, int64_t n, int64_t h, int64_t w, int64_t* out, const char* op) {
  int64_t pos = 0;
  const int64_t total = h * w;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t len = runs[k];
    TORCH_CHECK_VALUE(len >= 0 && pos + len <= total, "visionops.", op, ": run lengths must be non-negative and sum to ",
                      "at most h * w = ", total, ", got a run of ", len, " at pixel ", pos);
    if (k % 2 == 1) {
      for (int64_t i = pos; i < pos + len; ++i) {
        const int64_t x = i / h, y = i % h, p = y * w + x;
        out[p / 64] |= static_cast<int64_t>(uint64_t(1) << (p % 64));
      }
    }
    pos += len;
  }
}

// pycocotools' compressed counts: 5 bits a character (offset 48), a
// continuation bit 0x20, sign extension at the last character, and counts
// after the second stored as differences from the one two before.
std::vector<int64_t> decode_counts(const std::string& s) {
  std::vector<int64_t> counts;
  size_t p = 0;
  while (p < s.size()) {
    int64_t x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      TORCH_CHECK_VALUE(p < s.size(), "visionops.coco_rle_decode: truncated RLE string");
      const int64_t c = static_cast<int64_t>(s[p]) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= static_cast<int64_t>(-1) * (int64_t(1) << (5 * k));
    }
    if (counts.size() > 2) x += counts[counts.size() - 2];
    counts.push_back(x);
  }
  return counts;
}

std::vector<int64_t> word_offsets(c10::IntArrayRef heights, c10::IntArrayRef widths) {
  std::vector<int64_t> off(heights.size() + 1, 0);
  for (size_t i = 0; i < heights.size(); ++i) off[i + 1] = off[i] + words_of(heights[i], widths[i]);
  return off;
}

at::Tensor coco_rle_decode_cpu(const std::vector<std::string>& strings, c10::IntArrayRef heights,
                               c10::IntArrayRef widths) {
  const int64_t n = strings.size();
  check_mask_sizes(heights, widths, n, "coco_rle_decode");
  const std::vector<int64_t> off = word_offsets(heights, widths);
  at::Tensor out = at::zeros({off.back()}, at::TensorOptions().dtype(at::kLong));
  int64_t* o = out.data_ptr<int64_t>();
  at::parallel_for(0, n, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const std::vector<int64_t> runs = decode_counts(strings[i]);
      runs_to_bits(runs.data(), runs.size(), heights[i], widths[i], o + off[i], "coco_rle_decode");
    }
  });
  return out;
}

at::Tensor coco_runs_decode_cpu(const at::Tensor& runs, c10::IntArrayRef run_counts, c10::IntArrayRef heights,
                                c10::IntArrayRef widths) {
  const int64_t n = run_counts.size();
  check_runs_decode_args(runs, run_counts, heights, widths, "coco_runs_decode");
  const at::Tensor r = runs.to(at::kLong).contiguous();
  std::vector<int64_t> first(n + 1, 0);
  for (int64_t i = 0; i < n; ++i) first[i + 1] = first[i] + run_counts[i];
  const std::vector<int64_t> off = word_offsets(heights, widths);
  at::Tensor out = at::zeros({off.back()}, at::TensorOptions().dtype(at::kLong));
  for (int64_t i = 0; i < n; ++i) {
    runs_to_bits(r.data_ptr<int64_t>() + first[i], run_counts[i], heights[i], widths[i],
                 out.data_ptr<int64_t>() + off[i], "coco_runs_decode");
  }
  return out;
}

// pycocotools' rleFrPoly: the run lengths of one polygon (k vertices).
std::vector<int64_t> polygon_runs(const double* xy, int64_t k, int64_t h, int64_t w) {
  constexpr double scale = 5;
  std::vector<int64_t> x(k + 1), y(k + 1);
  for (int64_t j = 0; j < k; ++j) x[j] = static_cast<int>(scale * xy[2 * j] + .5);
  x[k] = x[0];
  for (int64_t j = 0; j < k; ++j) y[j] = static_cast<int>(scale * xy[2 * j + 1] + .5);
  y[k] = y[0];
  // Dense boundary points of the upsampled polygon.
  std::vector<int64_t> u, v;
  for (int64_t j = 0; j < k; ++j) {
    int64_t xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const int64_t dx = std::llabs(xe - xs), dy = std::llabs(ys - ye);
    const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      std::swap(xs, xe);
      std::swap(ys, ye);
    }
    const double s = dx >= dy ? static_cast<double>(ye - ys) / dx : static_cast<double>(xe - xs) / dy;
    if (dx >= dy) {
      for (int64_t d = 0; d <= dx; ++d) {
        const int64_t t = flip ? dx - d : d;
        u.push_back(t + xs);
        v.push_back(static_cast<int>(ys + s * t + .5));
      }
    } else {
      for (int64_t d = 0; d <= dy; ++d) {
        const int64_t t = flip ? dy - d : d;
        v.push_back(t + ys);
        u.push_back(static_cast<int>(xs + s * t + .5));
      }
    }
  }
  // Where the boundary crosses a pixel column's centre, downsampled.
  std::vector<int64_t> bx, by;
  for (size_t j = 1; j < u.size(); ++j) {
    if (u[j] == u[j - 1]) continue;
    double xd = static_cast<double>(u[j] < u[j - 1] ? u[j] : u[j] - 1);
    xd = (xd + .5) / scale - .5;
    if (std::floor(xd) != xd || xd < 0 || xd > static_cast<double>(w - 1)) continue;
    double yd = static_cast<double>(v[j] < v[j - 1] ? v[j] : v[j - 1]);
    yd = (yd + .5) / scale - .5;
    if (yd < 0) {
      yd = 0;
    } else if (yd > static_cast<double>(h)) {
      yd = static_cast<double>(h);
    }
    yd = std::ceil(yd);
    bx.push_back(static_cast<int64_t>(xd));
    by.push_back(static_cast<int64_t>(yd));
  }
  // Sorted column-major positions of the crossings, as differences: runs.
  std::vector<int64_t> a(bx.size() + 1);
  for (size_t j = 0; j < bx.size(); ++j) a[j] = bx[j] * h + by[j];
  a[bx.size()] = h * w;
  std::sort(a.begin(), a.end());
  int64_t prev = 0;
  for (auto& e : a) {
    const int64_t t = e;
    e -= prev;
    prev = t;
  }
  std::vector<int64_t> runs;
  size_t j = 0;
  runs.push_back(a[j++]);
  while (j < a.size()) {
    if (a[j] > 0) {
      runs.push_back(a[j++]);
    } else {
      ++j;
      if (j < a.size()) runs.back() += a[j++];
    }
  }
  return runs;
}

at::Tensor coco_polygons_decode_cpu(const at::Tensor& xy, c10::IntArrayRef vertex_counts,
                                    c10::IntArrayRef polygons_per_object, c10::IntArrayRef heights,
                                    c10::IntArrayRef widths) {
  constexpr const char* op = "coco_polygons_decode";
  const int64_t n = polygons_per_object.size();
  check_polygons_decode_args(xy, vertex_counts, polygons_per_object, heights, widths, op);
  const at::Tensor c = xy.to(at::kDouble).contiguous();
  const std::vector<int64_t> off = word_offsets(heights, widths);
  at::Tensor out = at::zeros({off.back()}, at::TensorOptions().dtype(at::kLong));
  const double* p = c.data_ptr<double>();
  int64_t poly = 0, vert = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t q = 0; q < polygons_per_object[i]; ++q, ++poly) {
      const int64_t k = vertex_counts[poly];
      if (k > 0) {  // several polygons of one object: their union
        const std::vector<int64_t> runs = polygon_runs(p + 2 * vert, k, heights[i], widths[i]);
        runs_to_bits(runs.data(), runs.size(), heights[i], widths[i], out.data_ptr<int64_t>() + off[i], op);
      }
      vert += k;
    }
  }
  return out;
}

}  // namespace
}  // namespace vo

// No tensor argument to dispatch on: one kernel for every backend (it
// returns a CPU tensor).
TORCH_LIBRARY_IMPL(visionops, CompositeExplicitAutograd, m) { m.impl("coco_rle_decode", &vo::coco_rle_decode_cpu); }

TORCH_LIBRARY_IMPL(visionops, CPU, m) {
  m.impl("coco_runs_decode", &vo::coco_runs_decode_cpu);
  m.impl("coco_polygons_decode", &vo::coco_polygons_decode_cpu);
}
