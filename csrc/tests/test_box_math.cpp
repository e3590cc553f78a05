// C++ tests of boxes/math.h, the math that the CPU and CUDA kernels
// share: hand-computed values, the lecture notes' worked example, atan_'s error
// bound, and every backward against central finite differences in double.
// No torch needed; run by ctest.
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>

#include "boxes/math.h"
#include "nms/math.h"
#include "tests/check.h"

namespace {

using vo_test::check;
using vo_test::check_close;

using vo::Box4;
using vo::BoxFormat;
using vo::IouVariant;

vo::BoxRecord<double> rec(Box4<double> b, BoxFormat fmt = BoxFormat::XYXY) {
  return vo::make_box_record(b, fmt, true);
}

void test_lecture_notes_example() {
  // The lecture notes' IoU example: two 100 x 100 boxes overlapping in a 50 x 50 square: 2500 / 17500 = 1/7.
  const auto a = rec({0, 0, 100, 100});
  const auto b = rec({50, 50, 150, 150});
  check_close(vo::pairwise_iou<IouVariant::IoU>(a, b, 0.0), 1.0 / 7.0, 1e-15, "lecture notes' IoU = 1/7");
}

void test_hand_values() {
  // a = [0, 0, 2, 2], b = [1, 1, 4, 3]: inter 1, union 9, enclosing 4 x 3,
  // centre distance^2 3.25, diagonal^2 25.
  const auto a = rec({0, 0, 2, 2});
  const auto b = rec({1, 1, 4, 3});
  const double iou = 1.0 / 9.0;
  check_close(vo::pairwise_iou<IouVariant::IoU>(a, b, 0.0), iou, 1e-15, "IoU");
  check_close(vo::pairwise_iou<IouVariant::GIoU>(a, b, 0.0), iou - 3.0 / 12.0, 1e-15, "GIoU");
  const double diou = iou - 3.25 / 25.0;
  check_close(vo::pairwise_iou<IouVariant::DIoU>(a, b, 0.0), diou, 1e-15, "DIoU");
  const double v = 4.0 / (M_PI * M_PI) * std::pow(std::atan(1.0) - std::atan(1.5), 2);
  check_close(vo::pairwise_iou<IouVariant::CIoU>(a, b, 0.0), diou - v / (1 - iou + v) * v, 1e-15, "CIoU");
  // Disjoint boxes: IoU 0; identical boxes: IoU 1.
  check(vo::pairwise_iou<IouVariant::IoU>(a, rec({5, 5, 6, 6}), 0.0) == 0.0, "disjoint IoU is 0");
  check(vo::pairwise_iou<IouVariant::IoU>(a, a, 0.0) == 1.0, "identical IoU is 1");
  // Two empty boxes: 0 / 0.
  check(std::isnan(vo::pairwise_iou<IouVariant::IoU>(rec({1, 1, 1, 1}), rec({1, 1, 1, 1}), 0.0)), "empty union NaN");
  // A NaN coordinate poisons the result.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  check(std::isnan(vo::pairwise_iou<IouVariant::GIoU>(a, rec({nan, 0, 1, 1}), 0.0)), "NaN box gives NaN");
}

void test_formats() {
  const Box4<double> xyxy{10, 20, 50, 80};
  const auto xywh = vo::box_convert_value(xyxy, BoxFormat::XYXY, BoxFormat::XYWH);
  const auto cxcywh = vo::box_convert_value(xyxy, BoxFormat::XYXY, BoxFormat::CXCYWH);
  check(xywh.x1 == 10 && xywh.y1 == 20 && xywh.x2 == 40 && xywh.y2 == 60, "xyxy -> xywh");
  check(cxcywh.x1 == 30 && cxcywh.y1 == 50 && cxcywh.x2 == 40 && cxcywh.y2 == 60, "xyxy -> cxcywh");
  const auto back = vo::box_convert_value(cxcywh, BoxFormat::CXCYWH, BoxFormat::XYXY);
  check(back.x1 == 10 && back.y1 == 20 && back.x2 == 50 && back.y2 == 80, "cxcywh -> xyxy");
  check(vo::box_area_value(10.0, 20.0, 50.0, 80.0, BoxFormat::XYXY) == 2400, "area xyxy");
  check(vo::box_area_value(1.0, 2.0, 3.0, 4.0, BoxFormat::XYWH) == 12, "area xywh");
  const auto r1 = rec(xyxy);
  const auto r2 = rec(cxcywh, BoxFormat::CXCYWH);
  check(r1.x1 == r2.x1 && r1.x2 == r2.x2 && r1.area == r2.area, "records agree across formats");
}

void test_atan() {
  // The float polynomial against double atan: at most 3 ulp of the result.
  double worst = 0;
  for (int i = -200000; i <= 200000; ++i) {
    const float x = static_cast<float>(i) * 2.5e-4f * (1 + std::fabs(static_cast<float>(i)) * 1e-3f);
    const double exact = std::atan(static_cast<double>(x));
    const double ulp = std::nextafter(static_cast<float>(std::fabs(exact)), INFINITY) - std::fabs(static_cast<float>(exact));
    const double err = std::fabs(static_cast<double>(vo::atan_(x)) - exact) / (ulp > 0 ? ulp : 1e-45);
    if (err > worst) worst = err;
  }
  check(worst <= 3.0, "float atan_ within 3 ulp", worst, 3.0);
  check(vo::atan_(INFINITY) == static_cast<float>(M_PI / 2), "atan_(inf) = pi/2");
  check(vo::atan_(-INFINITY) == -static_cast<float>(M_PI / 2), "atan_(-inf) = -pi/2");
  check(std::isnan(vo::atan_(std::numeric_limits<float>::quiet_NaN())), "atan_(NaN) = NaN");
}

// ---- backward against central differences (double, smooth random inputs)

Box4<double> random_box(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> pos(0, 100), size(5, 50);
  const double x = pos(rng), y = pos(rng);
  return {x, y, x + size(rng), y + size(rng)};
}

double& coord(Box4<double>& b, int k) { return k == 0 ? b.x1 : k == 1 ? b.y1 : k == 2 ? b.x2 : b.y2; }

// Checks the analytic gradients (ga, gb) of f at (a, b) against central
// differences, coordinate by coordinate.
void check_against_differences(const std::function<double(const Box4<double>&, const Box4<double>&)>& f,
                               const Box4<double>& a, const Box4<double>& b, Box4<double> ga, Box4<double> gb,
                               const char* name) {
  const double h = 1e-6;
  for (int k = 0; k < 4; ++k) {
    Box4<double> ap = a, am = a, bp = b, bm = b;
    coord(ap, k) += h;
    coord(am, k) -= h;
    coord(bp, k) += h;
    coord(bm, k) -= h;
    check_close(coord(ga, k), (f(ap, b) - f(am, b)) / (2 * h), 1e-5, name);
    check_close(coord(gb, k), (f(a, bp) - f(a, bm)) / (2 * h), 1e-5, name);
  }
}

template <IouVariant V>
void test_pairwise_backward(BoxFormat fmt, const char* name) {
  std::mt19937_64 rng(7);
  const double eps = 1e-7;
  for (int trial = 0; trial < 200; ++trial) {
    Box4<double> a = random_box(rng), b = random_box(rng);
    if (fmt != BoxFormat::XYXY) {
      a = vo::box_convert_value(a, BoxFormat::XYXY, fmt);
      b = vo::box_convert_value(b, BoxFormat::XYXY, fmt);
    }
    auto ra = vo::make_box_record(a, fmt, true), rb = vo::make_box_record(b, fmt, true);
    auto ga = vo::zero_record_grad<double>(), gb = vo::zero_record_grad<double>();
    vo::pairwise_iou_backward<V>(ra, rb, eps, 1.0, ga, gb);
    const Box4<double> da = vo::record_grad_to_box(a, fmt, ga);
    const Box4<double> db = vo::record_grad_to_box(b, fmt, gb);
    // CIoU's alpha is a constant to the backward: freeze it in the difference.
    const double iou = vo::pairwise_iou<IouVariant::IoU>(ra, rb, eps);
    const double dav = ra.aspect - rb.aspect;
    const double v0 = vo::kCiouAspectWeight * dav * dav;
    const double alpha = v0 / ((1 - iou) + v0 + eps);
    auto f = [&](const Box4<double>& x, const Box4<double>& y) {
      const auto rx = vo::make_box_record(x, fmt, true), ry = vo::make_box_record(y, fmt, true);
      if constexpr (V == IouVariant::CIoU) {
        const double d = rx.aspect - ry.aspect;
        return vo::pairwise_iou<IouVariant::DIoU>(rx, ry, eps) - alpha * vo::kCiouAspectWeight * d * d;
      } else {
        return vo::pairwise_iou<V>(rx, ry, eps);
      }
    };
    check_against_differences(f, a, b, da, db, name);
  }
}

template <IouVariant V>
void test_loss_backward(const char* name) {
  std::mt19937_64 rng(11);
  const double eps = 1e-7;
  for (int trial = 0; trial < 200; ++trial) {
    const Box4<double> p = random_box(rng), t = random_box(rng);
    Box4<double> gp, gt;
    vo::box_iou_loss_backward<V>(p, t, eps, 1.0, gp, gt);
    // Freeze CIoU's alpha, as autograd does.
    auto f = [&](const Box4<double>& x, const Box4<double>& y) {
      if constexpr (V == IouVariant::CIoU) {
        const auto k = vo::loss_intersection(p, t);
        const double iou = k.inter / (k.uni + vo::kDiouLossEps);
        const double d0 = vo::atan_((t.x2 - t.x1) / (t.y2 - t.y1)) - vo::atan_((p.x2 - p.x1) / (p.y2 - p.y1));
        const double v0 = vo::kCiouAspectWeight * d0 * d0;
        const double alpha = v0 / ((1 - iou) + v0 + eps);
        const double d = vo::atan_((y.x2 - y.x1) / (y.y2 - y.y1)) - vo::atan_((x.x2 - x.x1) / (x.y2 - x.y1));
        return vo::box_iou_loss<IouVariant::DIoU>(x, y, vo::kDiouLossEps) + alpha * vo::kCiouAspectWeight * d * d;
      } else {
        return vo::box_iou_loss<V>(x, y, eps);
      }
    };
    check_against_differences(f, p, t, gp, gt, name);
  }
}

void test_tie_splitting() {
  // Identical boxes: every min/max is a tie and autograd splits it evenly, so
  // the two boxes get the same gradient.
  const Box4<double> p{0, 0, 10, 10};
  Box4<double> gp, gt;
  vo::box_iou_loss_backward<IouVariant::GIoU>(p, p, 1e-7, 1.0, gp, gt);
  check(gp.x1 == gt.x1 && gp.y1 == gt.y1 && gp.x2 == gt.x2 && gp.y2 == gt.y2, "ties split evenly");
}

// The division-free NMS test decides exactly as torchvision's float32
// `inter / union > t`, including quotients that round onto the threshold.
void test_nms_predicate() {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> area(1e-3f, 1e5f);
  const double thresholds[] = {0.0, 1e-45, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 1.0, 2.0};
  int64_t mismatches = 0, borderline = 0;
  for (double t : thresholds) {
    const vo::NmsPredicate p = vo::make_nms_predicate(t);
    for (int k = 0; k < 200000; ++k) {
      const float uni = area(rng);
      // inter near t * uni, stepping a few floats either side of it.
      float inter = static_cast<float>(t * uni);
      for (int step = -(k % 4); step < k % 4; ++step) inter = std::nextafter(inter, step < 0 ? 0.0f : INFINITY);
      if (k % 5 == 0) inter = std::uniform_real_distribution<float>(0, uni)(rng);
      const bool want = static_cast<double>(inter / uni) > t;
      // Boxes of unit height whose inter and union are exactly these.
      const vo::NmsBox<float> a{0, 0, uni, 1, uni};
      const vo::NmsBox<float> b{uni - inter, 0, uni - inter + inter, 1, inter};
      float i2, u2;
      vo::nms_inter_union(a, b, i2, u2);
      if (i2 != inter || u2 != uni) continue;  // not representable this way; skip
      ++borderline;
      if (vo::nms_suppresses(a, b, p) != want) ++mismatches;
    }
  }
  check(borderline > 100000, "enough representable borderline cases", borderline, 100000);
  check(mismatches == 0, "division-free NMS test equals inter / union > t", mismatches, 0);
  // Union 0 (two empty boxes) never suppresses; a negative threshold divides.
  const vo::NmsBox<float> empty{1, 1, 1, 1, 0};
  check(!vo::nms_suppresses(empty, empty, vo::make_nms_predicate(0.5)), "empty boxes never suppress");
  const vo::NmsBox<float> unit{0, 0, 1, 1, 1}, far{5, 5, 6, 6, 1};
  check(vo::nms_suppresses(unit, far, vo::make_nms_predicate(-0.5)), "negative threshold suppresses IoU 0");
}

}  // namespace

int main() {
  test_lecture_notes_example();
  test_hand_values();
  test_formats();
  test_atan();
  test_pairwise_backward<IouVariant::IoU>(BoxFormat::XYXY, "IoU backward");
  test_pairwise_backward<IouVariant::IoU>(BoxFormat::XYWH, "IoU backward xywh");
  test_pairwise_backward<IouVariant::IoU>(BoxFormat::CXCYWH, "IoU backward cxcywh");
  test_pairwise_backward<IouVariant::GIoU>(BoxFormat::XYXY, "GIoU backward");
  test_pairwise_backward<IouVariant::DIoU>(BoxFormat::XYXY, "DIoU backward");
  test_pairwise_backward<IouVariant::CIoU>(BoxFormat::XYXY, "CIoU backward");
  test_loss_backward<IouVariant::GIoU>("GIoU loss backward");
  test_loss_backward<IouVariant::DIoU>("DIoU loss backward");
  test_loss_backward<IouVariant::CIoU>("CIoU loss backward");
  test_tie_splitting();
  test_nms_predicate();
  return vo_test::report("box math");
}
