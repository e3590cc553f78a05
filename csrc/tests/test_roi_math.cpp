// C++ tests of roi/math.h, the RoI geometry that the CPU and CUDA
// kernels share: hand values of sampling points and bilinear weights, the
// on-map point range against a brute-force scan, RoI Pool's bins and
// rounding, the FPN level mapping, and the undefined cases that we define
// (NaN, huge and inverted RoIs, bad batch indices). No torch needed; ctest.
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

#include "roi/math.h"
#include "tests/check.h"

namespace {

using vo_test::check;
using vo_test::check_close;

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

void test_batch_index() {
  check(vo::roi_batch_index(0.0, 2) == 0, "index 0");
  check(vo::roi_batch_index(1.9, 2) == 1, "1.9 truncates to 1");
  check(vo::roi_batch_index(-0.5, 2) == 0, "-0.5 truncates to 0, as torchvision's cast");
  check(vo::roi_batch_index(2.0, 2) == -1, "index == N is invalid");
  check(vo::roi_batch_index(-1.0, 2) == -1, "-1 is invalid");
  check(vo::roi_batch_index(kNaN, 2) == -1, "NaN is invalid");
  check(vo::roi_batch_index(1e30, 2) == -1, "huge is invalid");
}

void test_align_axis() {
  // Legacy: [0, 1] stretched to at least 1 pixel; 2 bins of 0.5; adaptive grid ceil(1/2) = 1.
  auto a = vo::roi_align_axis(0.0, 1.0, 1.0, 2, -1, false);
  check(a.start == 0.0 && a.bin == 0.5 && a.grid == 1, "legacy axis");
  check(vo::roi_align_sample(a, 1, 0) == 0.75, "bin 1's point", vo::roi_align_sample(a, 1, 0), 0.75);
  // Aligned: [0, 3] shifted by half a pixel; one bin, one point at 1.0.
  a = vo::roi_align_axis(0.0, 3.0, 1.0, 1, 1, true);
  check(a.start == -0.5 && vo::roi_align_sample(a, 0, 0) == 1.0, "aligned point");
  // A zero-size legacy RoI becomes 1 pixel; an inverted aligned one has no adaptive points.
  check(vo::roi_align_axis(5.0, 5.0, 1.0, 7, -1, false).bin == 1.0 / 7, "zero size stretched");
  check(vo::roi_align_axis(10.0, 3.0, 1.0, 7, -1, true).grid == 0, "inverted aligned: no points");
  check(vo::roi_align_axis(kNaN, 3.0, 1.0, 7, -1, true).grid == 0, "NaN: no adaptive points");
  check(vo::roi_align_axis(-1e30, 1e30, 1.0, 7, -1, true).grid == vo::kMaxSamplingGrid, "huge: capped grid");
  check(vo::roi_align_count<double>(0, 0) == 1.0 && vo::roi_align_count<double>(2, 3) == 6.0, "count");
}

void test_bilinear_axis() {
  vo::AxisWeights<double> w{};
  check(vo::bilinear_axis(1.25, 4, w) && w.lo == 1 && w.hi == 2 && w.wlo == 0.75 && w.whi == 0.25, "interior");
  check(vo::bilinear_axis(-0.5, 4, w) && w.lo == 0 && w.hi == 1 && w.wlo == 1.0 && w.whi == 0.0, "clamped at 0");
  check(vo::bilinear_axis(3.5, 4, w) && w.lo == 3 && w.hi == 3 && w.wlo == 1.0 && w.whi == 0.0, "clamped at end");
  check(vo::bilinear_axis(4.0, 4, w), "one pixel past the end is on the map");
  check(!vo::bilinear_axis(4.01, 4, w) && !vo::bilinear_axis(-1.01, 4, w), "off the map");
  check(!vo::bilinear_axis(kNaN, 4, w) && !vo::bilinear_axis(kInf, 4, w), "NaN and inf are off the map");
  const auto c = vo::corner_weights(vo::AxisWeights<double>{0, 1, 0.75, 0.25}, vo::AxisWeights<double>{0, 1, 0.5, 0.5});
  check(c.w1 == 0.375 && c.w2 == 0.375 && c.w3 == 0.125 && c.w4 == 0.125, "corner weights");
}

// The range holds every point on the map; for large grids (the binary
// search) it holds nothing else.
void test_point_range() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-3000.0, 3000.0);
  int mismatches = 0;
  for (int t = 0; t < 2000; ++t) {
    const double lo = u(rng), hi = lo + std::fabs(u(rng)) * (t % 3 == 0 ? -0.1 : 1.0);
    const int64_t size = 1 + static_cast<int64_t>(std::fabs(u(rng))) % 60;
    const int64_t sr = (t % 4 == 0) ? 100 : -1;  // fixed large grids too
    const bool aligned = t % 2 == 0;
    const auto a = vo::roi_align_axis<float>(static_cast<float>(lo), static_cast<float>(hi), 0.5f, 7, sr, aligned);
    for (int64_t p = 0; p < 7; ++p) {
      int64_t first, last;
      vo::roi_align_point_range(a, p, size, first, last);
      for (int64_t i = 0; i < a.grid; ++i) {
        const bool on = vo::roi_align_on_map(vo::roi_align_sample(a, p, i), size);
        const bool in = i >= first && i < last;
        if ((on && !in) || (a.grid > 64 && in && !on)) ++mismatches;
      }
    }
  }
  check(mismatches == 0, "point range against a full scan", mismatches, 0);
}

void test_pool() {
  check(vo::roi_pool_corner(2.5, 1.0) == 3 && vo::roi_pool_corner(-2.5, 1.0) == -3, "round half away from zero");
  check(vo::roi_pool_corner(1e20, 1.0) == (int64_t(1) << 30), "huge saturates");
  check(vo::roi_pool_corner(kNaN, 1.0) == -(int64_t(1) << 30), "NaN saturates low");
  bool finite = true;
  const auto a = vo::roi_pool_axis(0.0, 3.0, 1.0, 2, finite);  // pixels 0..3, 2 bins of 2
  int64_t b, e;
  vo::roi_pool_bin(a, 1, 10, b, e);
  check(finite && b == 2 && e == 4, "second bin");
  vo::roi_pool_bin(a, 1, 3, b, e);
  check(b == 2 && e == 3, "clipped to the map");
  vo::roi_pool_axis(kNaN, 3.0, 1.0, 2, finite);
  check(!finite, "NaN marks the RoI");
  const auto inv = vo::roi_pool_axis(5.0, 1.0, 1.0, 2, finite = true);
  check(inv.bin == 0.5, "inverted RoI becomes one pixel");
}

void test_fpn_level() {
  // 224 x 224 is the canonical level 4; with levels 2..5 that is index 2.
  check(vo::fpn_level(0.0f, 0.0f, 224.0f, 224.0f, 224, 4, 1e-6f, 2, 5) == 2, "canonical box");
  check(vo::fpn_level(0.0f, 0.0f, 112.0f, 112.0f, 224, 4, 1e-6f, 2, 5) == 1, "half size: one level down");
  check(vo::fpn_level(0.0f, 0.0f, 1.0f, 1.0f, 224, 4, 1e-6f, 2, 5) == 0, "tiny: clamped to the first");
  check(vo::fpn_level(0.0f, 0.0f, 0.0f, 0.0f, 224, 4, 1e-6f, 2, 5) == 0, "zero area: log2(0) = -inf, first");
  check(vo::fpn_level(0.0f, 0.0f, 1e6f, 1e6f, 224, 4, 1e-6f, 2, 5) == 3, "huge: clamped to the last");
  check(vo::fpn_level(10.0f, 10.0f, 5.0f, 30.0f, 224, 4, 1e-6f, 2, 5) == -1, "negative area: NaN, no level");
  check(vo::fpn_level(static_cast<float>(kNaN), 0.0f, 5.0f, 30.0f, 224, 4, 1e-6f, 2, 5) == -1, "NaN: no level");
}

}  // namespace

int main() {
  test_batch_index();
  test_align_axis();
  test_bilinear_axis();
  test_point_range();
  test_pool();
  test_fpn_level();
  return vo_test::report("roi math");
}
