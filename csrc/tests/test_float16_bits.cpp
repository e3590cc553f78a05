// C++ test of core/float16_bits.h over every float (every bit pattern):
// bfloat16_bits against a plain reference (the nearer of the two bfloat16
// neighbours, ties to the even one), half_bits against the CPU's own
// conversion (F16C, round to nearest even) where the CPU has it; NaN gives
// c10's NaN; and half_to_float over every half against the exact value.
// No torch needed; ctest.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "core/float16_bits.h"
#include "tests/check.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define VO_TEST_F16C 1
#endif

namespace {

using vo_test::check;

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

uint16_t bfloat16_reference(uint32_t u) {
  const float f = from_bits(u);
  if (std::isnan(f)) return 0x7FC0u;
  if (std::isinf(f)) return static_cast<uint16_t>(u >> 16);
  const uint32_t down = u & 0xFFFF0000u, up = down + 0x10000u;  // up may be infinity (exponent carry)
  const double dd = std::fabs(static_cast<double>(f) - from_bits(down));
  const double du = std::isinf(from_bits(up)) && !std::isinf(f)
                        ? std::ldexp(1.0, 128) - std::fabs(static_cast<double>(f))  // distance to 2^128
                        : std::fabs(static_cast<double>(from_bits(up)) - f);
  if (dd < du || (dd == du && ((down >> 16) & 1u) == 0)) return static_cast<uint16_t>(down >> 16);
  return static_cast<uint16_t>(up >> 16);
}

#ifdef VO_TEST_F16C
__attribute__((target("f16c"))) uint16_t half_hardware(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
#endif

}  // namespace

int main() {
  uint64_t bf_bad = 0, half_bad = 0, half_nan_bad = 0;
  uint32_t first_bf = 0, first_half = 0;
#ifdef VO_TEST_F16C
  const bool f16c = __builtin_cpu_supports("f16c");
#else
  const bool f16c = false;
#endif
  uint32_t u = 0;
  do {
    const float f = from_bits(u);
    if (vo::bfloat16_bits(f) != bfloat16_reference(u) && bf_bad++ == 0) first_bf = u;
    if (std::isnan(f)) {
      half_nan_bad += vo::half_bits(f) != (((u >> 16) & 0x8000u) | 0x7E00u);
    } else if (f16c) {
#ifdef VO_TEST_F16C
      if (vo::half_bits(f) != half_hardware(f) && half_bad++ == 0) first_half = u;
#endif
    }
  } while (++u != 0);
  check(bf_bad == 0, "bfloat16_bits: every float rounds to the nearer bfloat16, ties to even", first_bf, 0);
  check(half_nan_bad == 0, "half_bits: every NaN gives the sign and 0x7E00", static_cast<double>(half_nan_bad), 0);
  if (f16c) {
    check(half_bad == 0, "half_bits: every other float as the F16C conversion", first_half, 0);
  } else {
    std::printf("SKIP: half_bits against F16C: this CPU has no F16C (NaN and the hand cases still checked)\n");
  }
  // half_to_float over every half: F16C's value (exact), NaN for NaN.
  uint32_t to_float_bad = 0;
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float got = vo::half_to_float(static_cast<uint16_t>(h));
    const bool nan = (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0;
    if (nan) {
      to_float_bad += !std::isnan(got);
    } else {
      // the exact value: the mantissa scaled by the exponent
      const uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
      double want = e == 0 ? std::ldexp(static_cast<double>(m), -24)
                           : (e == 31 ? INFINITY : std::ldexp(static_cast<double>(1024 + m), static_cast<int>(e) - 25));
      if (h & 0x8000u) want = -want;
      to_float_bad += static_cast<double>(got) != want || std::signbit(got) != static_cast<bool>(h & 0x8000u);
    }
  }
  check(to_float_bad == 0, "half_to_float: every half exactly, NaN as NaN", to_float_bad, 0);
  // Hand cases: 1, the largest half, the smallest subnormal, ties.
  check(vo::half_bits(1.0f) == 0x3C00u && vo::half_bits(65504.0f) == 0x7BFFu && vo::half_bits(65520.0f) == 0x7C00u,
        "half_bits: 1, 65504, 65520 -> inf");
  check(vo::half_bits(5.9604645e-8f) == 0x0001u && vo::half_bits(2.9802322e-8f) == 0x0000u &&
            vo::half_bits(-0.0f) == 0x8000u,
        "half_bits: 2^-24, 2^-25 (a tie, to even 0), -0");
  check(vo::bfloat16_bits(1.0f) == 0x3F80u && vo::bfloat16_bits(from_bits(0x3F808000u)) == 0x3F80u &&
            vo::bfloat16_bits(from_bits(0x3F818000u)) == 0x3F82u,
        "bfloat16_bits: 1 and ties to even");
  return vo_test::report("float16 bits");
}
