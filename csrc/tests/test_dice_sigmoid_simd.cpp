// C++ test of losses/dice_sigmoid_simd.h: the fused Dice loops' 16-lane
// sigmoid gives, bit for bit, losses/math.h's dice_sigmoid_eighths with
// multiply-adds fused (whose accuracy test_coder_math measures), on every
// 7th float of the whole float range (NaN, infinities, subnormals and both
// clamps included), for each instruction set this CPU runs; a set it does
// not run is reported as skipped, by name. No torch needed; ctest.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "losses/dice_sigmoid_simd.h"
#include "tests/check.h"
#include "tests/simd_isas.h"

namespace {

using vo_test::check;

#ifdef VO_HAVE_DICE_SIGMOID_SIMD

// Every 7th bit pattern, 16 at a time: the lanes that differ from the
// scalar fused form (NaN against NaN counts as equal; payloads may differ).
template <typename S>
uint64_t mismatches(uint32_t& first_bad) {
  uint64_t bad = 0;
  alignas(64) float in[16];
  alignas(64) float out[16];
  uint64_t u = 0;
  while (u <= 0xFFFFFFFFull) {
    for (int lane = 0; lane < 16; ++lane, u += 7) {
      const uint32_t bits = static_cast<uint32_t>(u);
      std::memcpy(&in[lane], &bits, sizeof(float));
    }
    S::store(out, vo::dice_sigmoid16<S>(S::load(in)));
    for (int lane = 0; lane < 16; ++lane) {
      const float want = vo::dice_sigmoid_eighths<true>(in[lane]);
      const bool same = std::isnan(want) ? std::isnan(out[lane]) : vo::float_to_bits(out[lane]) == vo::float_to_bits(want);
      if (!same && bad++ == 0) first_bad = vo::float_to_bits(in[lane]);
    }
  }
  return bad;
}

template <typename S>
void check_isa(const char* name) {
  uint32_t first_bad = 0;
  const uint64_t bad = mismatches<S>(first_bad);
  char what[160];
  std::snprintf(what, sizeof what, "%s dice_sigmoid16 == fused dice_sigmoid_eighths (first difference at bits 0x%08x)",
                name, first_bad);
  check(bad == 0, what, static_cast<double>(bad), 0);
}

#endif

}  // namespace

// (dice_sigmoid_simd.h defines VO_HAVE_DICE_SIGMOID_SIMD exactly where
// VO_HAVE_SIMD16 is, the macro's condition)
VO_TEST_MAIN_EACH_SIMD_ISA("dice sigmoid simd")
