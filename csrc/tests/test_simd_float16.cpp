// C++ test of core/simd.h's bfloat16 and half loads and stores: the stores
// give core/float16_bits.h's bfloat16_bits and half_bits (which
// test_float16_bits checks against references over every float) for every
// 7th float (NaN, infinities and subnormals among them), and the loads
// every bfloat16 and half exactly (half_to_float's value), for each
// instruction set this CPU runs; a set it does not run is reported as
// skipped, by name. No torch needed; ctest.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "core/float16_bits.h"
#include "core/simd.h"
#include "tests/check.h"
#include "tests/simd_isas.h"

namespace {

#ifdef VO_HAVE_SIMD16

using vo_test::check;

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

template <typename S>
void check_isa(const char* name) {
  alignas(64) float in[16];
  alignas(64) uint16_t bf[16], h[16];
  uint64_t bf_bad = 0, half_bad = 0;
  uint32_t first_bf = 0, first_half = 0;
  uint64_t u = 0;
  while (u <= 0xFFFFFFFFull) {  // every 7th float, 16 at a time
    for (int lane = 0; lane < 16; ++lane, u += 7) {
      const uint32_t bits = static_cast<uint32_t>(u);
      std::memcpy(&in[lane], &bits, sizeof(float));
    }
    const typename S::F v = S::load(in);
    S::store_bf16(bf, v);
    S::store_f16(h, v);
    for (int lane = 0; lane < 16; ++lane) {
      if (bf[lane] != vo::bfloat16_bits(in[lane]) && bf_bad++ == 0) first_bf = bits_of(in[lane]);
      if (h[lane] != vo::half_bits(in[lane]) && half_bad++ == 0) first_half = bits_of(in[lane]);
    }
  }
  char what[160];
  std::snprintf(what, sizeof what, "%s store_bf16 == bfloat16_bits on every 7th float (first difference at 0x%08x)", name,
                first_bf);
  check(bf_bad == 0, what, static_cast<double>(bf_bad), 0);
  std::snprintf(what, sizeof what, "%s store_f16 == half_bits on every 7th float (first difference at 0x%08x)", name,
                first_half);
  check(half_bad == 0, what, static_cast<double>(half_bad), 0);

  // Every 16-bit pattern loaded: bfloat16 as its float (the bits shifted
  // up), half as half_to_float's (NaN as NaN).
  uint32_t load_bad = 0;
  alignas(64) float out_bf[16], out_h[16];
  for (uint32_t k = 0; k < 0x10000u; k += 16) {
    for (int lane = 0; lane < 16; ++lane) bf[lane] = h[lane] = static_cast<uint16_t>(k + lane);
    S::store(out_bf, S::load_bf16(bf));
    S::store(out_h, S::load_f16(h));
    for (int lane = 0; lane < 16; ++lane) {
      load_bad += bits_of(out_bf[lane]) != (k + lane) << 16;
      const float want = vo::half_to_float(h[lane]);
      load_bad += want != want ? out_h[lane] == out_h[lane] : bits_of(out_h[lane]) != bits_of(want);
    }
  }
  std::snprintf(what, sizeof what, "%s load_bf16 and load_f16 exact on every 16-bit pattern", name);
  check(load_bad == 0, what, load_bad, 0);
}

#endif

}  // namespace

VO_TEST_MAIN_EACH_SIMD_ISA("simd float16")
