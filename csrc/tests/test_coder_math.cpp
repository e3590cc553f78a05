// C++ tests of core/fast_math.h and coding/math.h: exp_ and log_ within 2
// ulp of the correctly rounded value over the float range, special values
// as libm, and box decoding against a hand example, its inverse (encoding)
// and finite differences of its backward; and losses/math.h's dice_sigmoid,
// dice_sigmoid_eighths and dice_softmax_exp (their own reductions and
// polynomials) against the exact values. No torch needed; ctest.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>

#include "coding/math.h"
#include "core/fast_math.h"
#include "losses/math.h"
#include "tests/check.h"

namespace {

using vo_test::check;
using vo_test::check_close;

// Distance in units in the last place between float a and the exact b.
double ulps(float a, double b) {
  const float fb = static_cast<float>(b);
  if (std::isinf(fb) || std::isinf(a)) return a == fb ? 0 : 1e9;
  const double ulp = std::nextafter(std::fabs(fb), INFINITY) - std::fabs(fb);
  return std::fabs(static_cast<double>(a) - b) / (ulp > 0 ? ulp : 1e-45);
}

void test_exp_log_accuracy() {
  double worst_exp = 0, worst_log = 0;
  // Every 97th float from -104 to 89 for exp, every 97th positive float for log.
  for (uint32_t u = 0; u < 0x7F800000u; u += 97) {
    float x;
    std::memcpy(&x, &u, sizeof(x));
    worst_log = std::fmax(worst_log, ulps(vo::log_(x), std::log(static_cast<double>(x))));
    if (x < 89.0f) {
      worst_exp = std::fmax(worst_exp, ulps(vo::exp_(x), std::exp(static_cast<double>(x))));
      worst_exp = std::fmax(worst_exp, ulps(vo::exp_(-x), std::exp(-static_cast<double>(x))));
    }
  }
  check(worst_exp <= 2.0, "exp_ within 2 ulp", worst_exp, 2);
  check(worst_log <= 2.0, "log_ within 2 ulp", worst_log, 2);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  check(vo::exp_(inf) == inf && vo::exp_(-inf) == 0.0f && std::isnan(vo::exp_(nan)), "exp_ specials");
  check(vo::exp_(88.73f) == inf && vo::exp_(0.0f) == 1.0f, "exp_ overflow and exp(0)");
  check(vo::exp_(-100.0f) > 0.0f && vo::exp_(-100.0f) < 1e-38f, "exp_ denormal results");
  check(vo::log_(0.0f) == -inf && std::isnan(vo::log_(-1.0f)) && vo::log_(inf) == inf && std::isnan(vo::log_(nan)),
        "log_ specials");
  check(vo::log_(1.0f) == 0.0f, "log(1) = 0");
}

void test_exp_nonpositive_is_exp() {
  // Every non-positive float down to -inf (every 7th bit pattern): the same
  // bits as exp_, denormal results included; NaN stays NaN.
  bool same = true;
  for (uint32_t u = 0x80000000u; u <= 0xFF800000u; u += 7) {
    float x;
    std::memcpy(&x, &u, sizeof(x));
    same = same && vo::exp_nonpositive_(x) == vo::exp_(x);
  }
  check(same, "exp_nonpositive_ equals exp_ for x <= 0");
  check(std::isnan(vo::exp_nonpositive_(std::numeric_limits<float>::quiet_NaN())), "exp_nonpositive_(NaN) is NaN");
  check(vo::exp_nonpositive_(-std::numeric_limits<float>::infinity()) == 0.0f, "exp_nonpositive_(-inf) = 0");
}

void test_exp_normal_range_is_exp() {
  // Every 5th float in [-86, 88]: exp_'s bits (both apply 2^n exactly
  // there); NaN, with or without payload bits, stays NaN.
  bool same = true;
  for (uint32_t u = 0; u <= 0x42B00000u; u += 5) {  // 0 to 88
    float x;
    std::memcpy(&x, &u, sizeof(x));
    same = same && vo::exp_normal_range_(x) == vo::exp_(x);
    if (x <= 86.0f) same = same && vo::exp_normal_range_(-x) == vo::exp_(-x);
  }
  check(same, "exp_normal_range_ equals exp_ on [-86, 88]");
  for (const uint32_t nan_bits : {0x7FC00000u, 0xFFC00000u, 0x7FC001FFu, 0x7F800001u}) {
    float nan;
    std::memcpy(&nan, &nan_bits, sizeof(nan));
    check(std::isnan(vo::exp_normal_range_(nan)), "exp_normal_range_(NaN) is NaN", static_cast<double>(nan_bits), 0);
  }
}

// A sigmoid's largest error over every 31st float of either sign up to 88:
// in ulps while the exact result is a normal float, absolute below that.
void sigmoid_errors(float (*sigmoid)(float), double& worst, double& worst_abs_below) {
  for (uint32_t u = 0; u < 0x42B00000u; u += 31) {  // 0x42B00000 = 88.0f
    float x;
    std::memcpy(&x, &u, sizeof(x));
    for (const float v : {x, -x}) {
      const double exact = 1.0 / (1.0 + std::exp(-static_cast<double>(v)));
      const float got = sigmoid(v);
      if (exact >= 1.17549435e-38) {
        worst = std::fmax(worst, ulps(got, exact));
      } else {
        worst_abs_below = std::fmax(worst_abs_below, std::fabs(got - exact));
      }
    }
  }
}

void test_dice_sigmoid() {
  // Every 31st float of either sign up to 88: within 3 ulp of the exact
  // sigmoid (exp_'s 2, then the sum and the division round) while the
  // result is a normal float, and within 6.2e-39 of it below that, where the
  // clamp at -88 holds the result at 1 / (1 + e^88).
  double worst = 0, worst_abs_below = 0;
  sigmoid_errors(vo::dice_sigmoid, worst, worst_abs_below);
  check(worst <= 3.0, "dice_sigmoid within 3 ulp", worst, 3);
  check(worst_abs_below <= 6.2e-39, "dice_sigmoid within 6.2e-39 below the normal range", worst_abs_below, 6.2e-39);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  check(vo::dice_sigmoid(0.0f) == 0.5f && vo::dice_sigmoid(86.5f) == 1.0f && vo::dice_sigmoid(inf) == 1.0f,
        "dice_sigmoid(0) = 0.5, 1 from 86 up");
  const float tiny = vo::dice_sigmoid(-inf);
  check(tiny > 0.0f && tiny < 6.2e-39f && vo::dice_sigmoid(-1e30f) == tiny, "dice_sigmoid held at 6.1e-39 below -88");
  check(std::isnan(vo::dice_sigmoid(nan)) && std::isnan(vo::dice_sigmoid(-nan)), "dice_sigmoid(NaN) is NaN");
  // A NaN with payload bits: the exponent arithmetic must not turn it into a number.
  float payload;
  const uint32_t pu = 0x7FC001FFu;
  std::memcpy(&payload, &pu, sizeof(payload));
  check(std::isnan(vo::dice_sigmoid(payload)), "dice_sigmoid(NaN with payload) is NaN");
}

void test_dice_sigmoid_eighths() {
  // As test_dice_sigmoid, for the vector loops' sigmoid (its 2^(j / 8) from
  // a table): within 3.1 ulp here, where this file is built without
  // contraction, and within 2.5 with multiply-adds fused, as the loops
  // compute it (test_dice_sigmoid_simd checks that they give the fused
  // form's bits); the same clamp and special values as dice_sigmoid.
  double worst = 0, worst_abs_below = 0;
  sigmoid_errors(vo::dice_sigmoid_eighths<false>, worst, worst_abs_below);
  check(worst <= 3.1, "dice_sigmoid_eighths within 3.1 ulp", worst, 3.1);
  check(worst_abs_below <= 6.2e-39, "dice_sigmoid_eighths within 6.2e-39 below the normal range", worst_abs_below,
        6.2e-39);
  double worst_fused = 0, worst_abs_below_fused = 0;
  sigmoid_errors(vo::dice_sigmoid_eighths<true>, worst_fused, worst_abs_below_fused);
  check(worst_fused <= 2.5, "dice_sigmoid_eighths fused within 2.5 ulp", worst_fused, 2.5);
  check(worst_abs_below_fused <= 6.2e-39, "dice_sigmoid_eighths fused within 6.2e-39 below the normal range",
        worst_abs_below_fused, 6.2e-39);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  check(vo::dice_sigmoid_eighths(0.0f) == 0.5f && vo::dice_sigmoid_eighths(86.5f) == 1.0f &&
            vo::dice_sigmoid_eighths(inf) == 1.0f,
        "dice_sigmoid_eighths(0) = 0.5, 1 from 86 up");
  const float tiny = vo::dice_sigmoid(-inf);
  check(vo::dice_sigmoid_eighths(-inf) == tiny && vo::dice_sigmoid_eighths(-1e30f) == tiny,
        "dice_sigmoid_eighths held at dice_sigmoid's 6.1e-39 below -88");
  float payload;
  const uint32_t pu = 0x7FC001FFu;
  std::memcpy(&payload, &pu, sizeof(payload));
  check(std::isnan(vo::dice_sigmoid_eighths(nan)) && std::isnan(vo::dice_sigmoid_eighths(-nan)) &&
            std::isnan(vo::dice_sigmoid_eighths(payload)),
        "dice_sigmoid_eighths(NaN) is NaN, payload bits included");
  // Each table entry: 2^(j / 8) to float's precision, over j = 0..7 (n = 8k + j).
  for (int j = 0; j < 8; ++j) {
    const float e = vo::bits_to_float(vo::kDiceExp2Eighths[j] + (static_cast<uint32_t>(j) << 20));
    const double err = ulps(e, std::exp2(j / 8.0));
    check(err <= 0.5, "kDiceExp2Eighths entry correctly rounded", err, 0.5);
  }
}

void test_dice_softmax_exp() {
  // Every 29th float in [-86, 0]: within 2 ulp of exp (dice_exp_poly's
  // 0.72, then 2^n exactly: one rounding of the product); held at exp(-86)
  // below -86; NaN stays NaN.
  double worst = 0;
  for (uint32_t u = 0; u <= 0x42AC0000u; u += 29) {  // 0x42AC0000 = 86.0f
    float d;
    std::memcpy(&d, &u, sizeof(d));
    worst = std::fmax(worst, ulps(vo::dice_softmax_exp(-d), std::exp(-static_cast<double>(d))));
  }
  check(worst <= 2.0, "dice_softmax_exp within 2 ulp", worst, 2);
  check(vo::dice_softmax_exp(0.0f) == 1.0f, "dice_softmax_exp(0) = 1");
  check(vo::dice_softmax_exp(-1e30f) == vo::dice_softmax_exp(-86.0f) && vo::dice_softmax_exp(-86.0f) > 0.0f,
        "dice_softmax_exp held at exp(-86) below -86");
  check(std::isnan(vo::dice_softmax_exp(std::numeric_limits<float>::quiet_NaN())), "dice_softmax_exp(NaN) is NaN");
}

void test_decode_hand_example() {
  // Anchor centred at (100, 100), 50 x 50; codes (0.2, -0.1, log 2, 0).
  const float anchor[4] = {75, 75, 125, 125};
  const float code[4] = {0.2f, -0.1f, std::log(2.0f), 0.0f};
  const vo::CoderWeights<float> w{1, 1, 1, 1};
  float out[4];
  vo::decode_box(anchor, code, w, 4.135f, out);
  const float want[4] = {60, 70, 160, 120};
  for (int k = 0; k < 4; ++k) check(std::fabs(out[k] - want[k]) < 1e-4f, "decoded corner", out[k], want[k]);
  float back[4];
  vo::encode_box(out, anchor, w, back);
  for (int k = 0; k < 4; ++k) check(std::fabs(back[k] - code[k]) < 1e-6f, "encode inverts decode", back[k], code[k]);
}

void test_decode_backward() {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const vo::CoderWeights<double> w{10, 10, 5, 5};
  const double clip = std::log(1000.0 / 16);
  for (int t = 0; t < 200; ++t) {
    const double r[4] = {u(rng) * 100, u(rng) * 100, 150 + u(rng) * 40, 150 + u(rng) * 40};
    const double c[4] = {u(rng), u(rng), u(rng) * 3, u(rng) * 3};
    const double g[4] = {u(rng), u(rng), u(rng), u(rng)};
    double gc[4], gr[4] = {0, 0, 0, 0};
    vo::decode_box_backward(r, c, w, clip, g, gc, gr);
    const auto loss = [&](const double* rr, const double* cc) {
      double o[4];
      vo::decode_box(rr, cc, w, clip, o);
      return o[0] * g[0] + o[1] * g[1] + o[2] * g[2] + o[3] * g[3];
    };
    for (int k = 0; k < 4; ++k) {
      const double h = 1e-6;
      double cp[4], cm[4], rp[4], rm[4];
      std::memcpy(cp, c, sizeof(cp));
      std::memcpy(cm, c, sizeof(cm));
      std::memcpy(rp, r, sizeof(rp));
      std::memcpy(rm, r, sizeof(rm));
      cp[k] += h;
      cm[k] -= h;
      rp[k] += h;
      rm[k] -= h;
      const double dc = (loss(r, cp) - loss(r, cm)) / (2 * h), dr = (loss(rp, c) - loss(rm, c)) / (2 * h);
      check(std::fabs(dc - gc[k]) <= 1e-5 * (1 + std::fabs(dc)), "d/dcode", gc[k], dc);
      check(std::fabs(dr - gr[k]) <= 1e-5 * (1 + std::fabs(dr)), "d/dref", gr[k], dr);
    }
  }
}

}  // namespace

int main() {
  test_exp_log_accuracy();
  test_exp_nonpositive_is_exp();
  test_exp_normal_range_is_exp();
  test_dice_sigmoid();
  test_dice_sigmoid_eighths();
  test_dice_softmax_exp();
  test_decode_hand_example();
  test_decode_backward();
  return vo_test::report("coder math");
}
