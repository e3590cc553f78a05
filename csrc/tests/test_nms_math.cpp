// C++ tests of nms/math.h's soft-NMS weights: the exp that the CPU and CUDA
// share (written so that both round alike) against libm over its whole
// range, its edge cases, and the linear and gaussian weights. No torch
// needed; ctest.
#include <cmath>
#include <cstdio>
#include <limits>

#include "nms/math.h"
#include "tests/check.h"

namespace {

using vo_test::check;

// |a - exact| in units of the last place of the exact value rounded to T.
template <typename T>
double ulps(T a, double exact) {
  const T e = static_cast<T>(exact);
  const double ulp = static_cast<double>(std::nextafter(e, std::numeric_limits<T>::infinity())) - e;
  return std::fabs(static_cast<double>(a) - exact) / ulp;
}

void test_exp_accuracy() {
  double worst_float = 0, worst_double = 0;
  for (int i = 0; i <= 400000; ++i) {
    const double x = -110.0 * i / 400000.0;
    const float xf = static_cast<float>(x);
    const double exact_f = std::exp(static_cast<double>(xf));  // double's exp: exact to float's precision
    if (exact_f > 1e-37) worst_float = std::fmax(worst_float, ulps(vo::soft_nms_exp(xf), exact_f));
    const long double exact_d = std::exp(static_cast<long double>(x));
    const double got = vo::soft_nms_exp(x);
    const double ulp_d = std::nextafter(static_cast<double>(exact_d), 1e300) - static_cast<double>(exact_d);
    worst_double = std::fmax(worst_double, static_cast<double>(std::fabs(got - exact_d)) / ulp_d);
  }
  check(worst_float <= 1.2, "float exp within 1.2 ulp", worst_float, 1.2);
  check(worst_double <= 1.2, "double exp within 1.2 ulp", worst_double, 1.2);
}

void test_exp_edges() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  check(vo::soft_nms_exp(0.0f) == 1.0f && vo::soft_nms_exp(-0.0f) == 1.0f, "exp(0) is 1");
  check(vo::soft_nms_exp(0.0) == 1.0, "exp(0) is 1 (double)");
  check(vo::soft_nms_exp(-1.0f) == std::exp(-1.0f), "exp(-1) as libm's", vo::soft_nms_exp(-1.0f), std::exp(-1.0f));
  check(vo::soft_nms_exp(-200.0f) == 0.0f && vo::soft_nms_exp(-1e30f) == 0.0f, "underflow to 0");
  check(vo::soft_nms_exp(-std::numeric_limits<double>::infinity()) == 0.0, "exp(-inf) is 0");
  check(std::isnan(vo::soft_nms_exp(nan)), "NaN stays NaN");
  check(vo::soft_nms_exp(1e-30f) == 1.0f, "a positive argument is clamped to 0 (soft-NMS never passes one)");
}

void test_weights() {
  using vo::SoftNmsMethod;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  check(vo::soft_nms_weight(0.6f, SoftNmsMethod::Linear, 0.3f, 0.5f) == 1.0f - 0.6f, "linear above the threshold");
  check(vo::soft_nms_weight(0.2f, SoftNmsMethod::Linear, 0.3f, 0.5f) == 1.0f, "linear below the threshold");
  check(vo::soft_nms_weight(nan, SoftNmsMethod::Gaussian, 0.3f, 0.5f) == 1.0f, "NaN overlap decays nothing");
  const double g = vo::soft_nms_weight(0.5, SoftNmsMethod::Gaussian, 0.3, 0.5);
  check(std::fabs(g - std::exp(-0.5)) <= 1e-16, "gaussian exp(-iou^2 / sigma)", g, std::exp(-0.5));
}

}  // namespace

int main() {
  test_exp_accuracy();
  test_exp_edges();
  test_weights();
  return vo_test::report("nms_math");
}
