// Float to half and bfloat16 bits, and half bits to float, in integer
// arithmetic and selects, which GCC vectorizes.
//
// c10::Half and c10::BFloat16 convert a float with a test for NaN that GCC
// compiles as a branch, and c10::Half converts to float with F16C's scalar
// instruction (or branches, without F16C), so a loop that stores or loads
// them runs a lane at a time: the Dice backward of a (16, 1, 512, 512)
// bfloat16 batch took 28 ms, twelve times its float32 time, and of a float16
// one 44 ms (AMD Zen 4, AVX-512, 1 thread); with these 3.2 and 7.5 ms.
// They round to nearest, ties to even, as c10 does, and give c10's NaN
// (0x7FC0 for bfloat16, the sign and 0x7E00 for half);
// csrc/tests/test_float16_bits.cpp checks them
// against the CPU's own conversion and a plain reference over every float,
// and half_to_float over every half. No torch here.
#pragma once

#include <cstdint>
#include <cstring>

namespace vo {

inline uint16_t bfloat16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  // adding 0x7FFF, plus the last kept bit, carries exactly when the cut-off
  // half is above one half, or one half with an odd last bit
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>(f != f ? 0x7FC0u : rounded);
}

inline uint16_t half_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
  // |f| >= 2^-14, a normal half: the exponent rebiased (127 -> 15, minus
  // 112 << 23) and 13 bits rounded off as for bfloat16 (a carry into the
  // exponent is the right result); for smaller a the value is not used.
  const uint32_t rebiased = a - 0x38000000u;
  const uint32_t normal = (rebiased + 0x0FFFu + ((rebiased >> 13) & 1u)) >> 13;
  // |f| < 2^-14, a subnormal half (or zero): 0.5 + |f| has the ulp 2^-24 of
  // the half subnormals, so the float addition rounds |f| / 2^-24 to an
  // integer (to nearest even) in the sum's last bits; 1024 is 2^-14's bits.
  float af;
  std::memcpy(&af, &a, sizeof(af));
  const float shifted = af + 0.5f;
  uint32_t sb;
  std::memcpy(&sb, &shifted, sizeof(sb));
  // Selects as masks, not ?: GCC narrows this arithmetic to 16 bits for
  // the 16-bit result and then fails to vectorize a ?: between the widths
  // (in the Dice loops, next to float loads).
  const uint32_t small = 0u - static_cast<uint32_t>(a < 0x38800000u);
  uint32_t h = ((sb - 0x3F000000u) & small) | (normal & ~small);
  const uint32_t huge = 0u - static_cast<uint32_t>(a >= 0x477FF000u);  // 65520 and up round to infinity; infinity
  h = (0x7C00u & huge) | (h & ~huge);
  const uint32_t nan = 0u - static_cast<uint32_t>(a > 0x7F800000u);
  h = (0x7E00u & nan) | (h & ~nan);
  return static_cast<uint16_t>(sign | h);
}

// A bfloat16 and a half as their bits, for code without torch: core/simd.h's
// users name the element types of their loads and stores with these
// (core/dtypes.h's simd_storage_t maps c10::BFloat16 and c10::Half, which
// have this layout, to them).
struct bfloat16_storage {
  uint16_t bits;
};
struct half_storage {
  uint16_t bits;
};

// The float of half bits, exactly (NaN stays NaN).
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, a = h & 0x7FFFu;
  // normal: the exponent rebiased (15 -> 127) and the mantissa widened
  const uint32_t normal = (a << 13) + 0x38000000u;
  // infinity and NaN: all exponent bits, the mantissa kept
  const uint32_t special = 0x7F800000u | ((a & 0x3FFu) << 13);
  // subnormal or zero: mantissa * 2^-24, exact in float
  const float small = static_cast<float>(static_cast<int32_t>(a)) * 5.9604644775390625e-8f;
  uint32_t sb;
  std::memcpy(&sb, &small, sizeof(sb));
  uint32_t bits = a < 0x0400u ? sb : normal;
  bits = a >= 0x7C00u ? special : bits;
  bits |= sign;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

}  // namespace vo
