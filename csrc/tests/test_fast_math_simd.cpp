// C++ test of core/fast_math_simd.h: exp_simd and log_simd give, bit for
// bit, core/fast_math.h's exp_ and log_ (which the portable path calls), on
// both of their branches, for each instruction set this CPU runs (a set it
// does not run is reported as skipped, by name). Over every 61st float of
// the whole range, 16 neighbours to a vector:
//   - as they come: nearly every vector's lanes lie on one side of the
//     range tests (exp: [-86, 88]; log: [FLT_MIN, inf)), so most take the
//     short branch where they may and the rest the general one, and the
//     vectors that straddle a bound mix both kinds of lane;
//   - with one lane replaced by a value outside those ranges (NaN, +-inf,
//     0, a denormal, -1, 100, -100), which sends the whole vector, and so
//     every float, through the general branch.
// No torch needed; ctest.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>

#include "core/fast_math.h"
#include "core/fast_math_simd.h"
#include "tests/check.h"
#include "tests/simd_isas.h"

namespace {

using vo_test::check;

#ifdef VO_HAVE_SIMD16

constexpr uint64_t kStride = 61;

// Lanes that differ from the scalar function (NaN against NaN counts as
// equal: payloads may differ). with_odd_lane: lane v % 16 of the v-th
// vector holds kOdd[v % 8] instead.
template <typename S, bool kLog>
uint64_t mismatches(bool with_odd_lane, uint32_t& first_bad) {
  static const float kOdd[] = {NAN, INFINITY, -INFINITY, 0.0f, 1e-40f, -1.0f, 100.0f, -100.0f};
  constexpr int kOdds = sizeof(kOdd) / sizeof(kOdd[0]);
  uint64_t bad = 0;
  alignas(64) float in[16];
  alignas(64) float out[16];
  uint64_t u = 0;
  for (uint64_t v = 0; u <= 0xFFFFFFFFull; ++v) {
    for (int lane = 0; lane < 16; ++lane, u += kStride) {
      const uint32_t bits = static_cast<uint32_t>(u);
      std::memcpy(&in[lane], &bits, sizeof(float));
    }
    if (with_odd_lane) in[v % 16] = kOdd[v % kOdds];
    const typename S::F x = S::load(in);
    S::store(out, kLog ? vo::log_simd<S>(x) : vo::exp_simd<S>(x));
    for (int lane = 0; lane < 16; ++lane) {
      const float want = kLog ? vo::log_(in[lane]) : vo::exp_(in[lane]);
      const bool same =
          std::isnan(want) ? std::isnan(out[lane]) : vo::float_to_bits(out[lane]) == vo::float_to_bits(want);
      if (!same && bad++ == 0) first_bad = vo::float_to_bits(in[lane]);
    }
  }
  return bad;
}

template <typename S, bool kLog>
void check_fn(const char* isa, bool with_odd_lane) {
  uint32_t first_bad = 0;
  const uint64_t bad = mismatches<S, kLog>(with_odd_lane, first_bad);
  char what[200];
  std::snprintf(what, sizeof what, "%s %s == %s, %s (first difference at bits 0x%08x)", isa,
                kLog ? "log_simd" : "exp_simd", kLog ? "log_" : "exp_",
                with_odd_lane ? "one odd lane a vector" : "neighbouring floats", first_bad);
  check(bad == 0, what, static_cast<double>(bad), 0);
}

template <typename S>
void check_isa(const char* name) {
  for (const bool odd : {false, true}) {
    check_fn<S, false>(name, odd);
    check_fn<S, true>(name, odd);
  }
}

#endif

}  // namespace

VO_TEST_MAIN_EACH_SIMD_ISA("fast math simd")
