// A 16-lane vector type for the CPU kernels that need what the compiler
// does not find alone: masks as bits (one test answers "any lane?"),
// compress stores, masked reductions, a blend on a compare, float16 and
// bfloat16 loads and stores (F16C, and c10's rounding).
//
// A kernel is written once as a template over S, one of the structs below,
// and run through with_simd(f), which calls f(S{}) inside core/cpu_isa.h's
// flatten wrapper for the chosen instruction set; the wrapper inlines the
// kernel and S's operations into one function compiled for that set.
//   - Avx512: each vector is one zmm register and each mask a k register.
//   - Avx2:   each vector is two ymm registers, a mask two movemasks; the
//             compress store goes through a table of 256 permutations of 8
//             lanes (not BMI2's pext, which Zen 1 and 2 run in microcode,
//             hundreds of cycles).
// Both have 16 lanes, so a kernel's words of 16 candidates or pixels, its
// 16-bit masks and its data layout are the same on both; on AVX2 each
// operation is two instructions where AVX-512 has one. Where neither is
// available (with_simd returns false) the caller runs its portable loop.
//
// Why not at::vec::Vectorized: its width follows the file's compile flags
// (one build per instruction set, PyTorch's way), which core/cpu_isa.h
// explains we avoid; and it has no bit masks or compress. Why not GCC's
// vector extensions: no compress, and no mask-to-bits without intrinsics.
//
// S's operations are plain inline functions with S's target, not
// always_inline: GCC refuses to inline an always_inline function with a
// target into a kernel template that has none, but the flatten wrapper,
// whose target includes S's, inlines both.
#pragma once

#include <cstdint>

#include "core/cpu_isa.h"

#if defined(VO_HAVE_X86_ISA_DISPATCH)
#define VO_HAVE_SIMD16 1
#endif

namespace vo {
namespace simd {

#ifdef VO_HAVE_SIMD16

#define VO_SIMD_AVX512 __attribute__((target("arch=x86-64-v4")))
#define VO_SIMD_AVX2 __attribute__((target("arch=x86-64-v3")))

// (GCC 12 warns of an undefined first operand inside its own intrinsics.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wpsabi"

namespace avx2_detail {

// dst[j * ds + i] = src[i * ss + j] for i, j < 8: an 8 x 8 block of floats
// transposed in registers (unpack, shuffle, then swap 128-bit halves), for
// Avx512 and Avx2. Declared as the intrinsics are (ISA flags,
// always_inline), so that it inlines into either set's code.
__attribute__((target("avx2"), always_inline)) inline void transpose8x8_f32(const float* src, int64_t ss,
                                                                             float* dst, int64_t ds) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ss);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ds, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ds, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

}  // namespace avx2_detail

struct Avx512 {
  using F = __m512;   // 16 floats
  using U = __m512i;  // 16 uint32

  // f() as a function of its own (not inlined into the caller), compiled
  // for this set: for a hot loop that the register allocator handles
  // better alone than inlined into a large caller.
  template <typename Fn>
  VO_SIMD_AVX512 __attribute__((flatten, noinline)) static void isolated(Fn& f) {
    f();
  }

  VO_SIMD_AVX512 static F load(const float* p) { return _mm512_loadu_ps(p); }
  VO_SIMD_AVX512 static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  // A non-temporal store (p 64-byte aligned): the line is written without
  // first being read (a plain store reads it for ownership), for outputs
  // too large to stay in cache. Weakly ordered: core/streaming_store.h's
  // stream_fence() before other threads read them.
  VO_SIMD_AVX512 static void stream(float* p, F v) { _mm512_stream_ps(p, v); }
  VO_SIMD_AVX512 static F set1(float x) { return _mm512_set1_ps(x); }
  VO_SIMD_AVX512 static F add(F a, F b) { return _mm512_add_ps(a, b); }
  VO_SIMD_AVX512 static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  VO_SIMD_AVX512 static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  VO_SIMD_AVX512 static F div(F a, F b) { return _mm512_div_ps(a, b); }
  // a * b + c and c - a * b, rounded once.
  VO_SIMD_AVX512 static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  VO_SIMD_AVX512 static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  VO_SIMD_AVX512 static F fnmsub(F a, F b, F c) { return _mm512_fnmsub_ps(a, b, c); }  // -(a b) - c
  // a < b ? a : b and a > b ? a : b, as vo::min and vo::max (b where either is NaN).
  VO_SIMD_AVX512 static F min(F a, F b) { return _mm512_min_ps(a, b); }
  VO_SIMD_AVX512 static F max(F a, F b) { return _mm512_max_ps(a, b); }
  VO_SIMD_AVX512 static F neg(F a) {
    return _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(static_cast<int>(0x80000000u))));
  }
  // Ordered compares (false on NaN), as bits, of the lanes in m only.
  VO_SIMD_AVX512 static unsigned ge(F a, F b, unsigned m = 0xFFFFu) {
    return _mm512_mask_cmp_ps_mask(static_cast<__mmask16>(m), a, b, _CMP_GE_OQ);
  }
  VO_SIMD_AVX512 static unsigned gt(F a, F b, unsigned m = 0xFFFFu) {
    return _mm512_mask_cmp_ps_mask(static_cast<__mmask16>(m), a, b, _CMP_GT_OQ);
  }
  VO_SIMD_AVX512 static unsigned lt(F a, F b, unsigned m = 0xFFFFu) {
    return _mm512_mask_cmp_ps_mask(static_cast<__mmask16>(m), a, b, _CMP_LT_OQ);
  }
  // The lanes of m that are not NaN.
  VO_SIMD_AVX512 static unsigned ordered(F a, unsigned m = 0xFFFFu) {
    return _mm512_mask_cmp_ps_mask(static_cast<__mmask16>(m), a, a, _CMP_ORD_Q);
  }
  // Least and greatest of m's lanes (+inf and -inf for none).
  VO_SIMD_AVX512 static float reduce_min(unsigned m, F v) {
    return _mm512_mask_reduce_min_ps(static_cast<__mmask16>(m), v);
  }
  VO_SIMD_AVX512 static float reduce_max(unsigned m, F v) {
    return _mm512_mask_reduce_max_ps(static_cast<__mmask16>(m), v);
  }
  // Writes m's lanes of v, in order, to p[0, popcount(m)); p[popcount(m), 16)
  // may be overwritten.
  VO_SIMD_AVX512 static void compress_store(float* p, unsigned m, F v) {
    _mm512_storeu_ps(p, _mm512_maskz_compress_ps(static_cast<__mmask16>(m), v));
  }
  // 16 records of 4 fields (x1, y1, x2, y2 of 16 boxes), loaded as 4
  // vectors a, b, c, d, into 4 vectors of one field each (to_fields), and
  // back (to_records). The fields hold the records in an order of S's
  // choosing, the same for every field, so lane-wise math is unaffected.
  // Here a 4x4 transpose within each group of 4 lanes (lane 4g + i of
  // vector j to lane 4g + j of vector i), its own inverse: records 0, 4, 8,
  // 12, 1, 5, ... in the fields.
  VO_SIMD_AVX512 static void to_fields(F& a, F& b, F& c, F& d) {
    const F t0 = _mm512_unpacklo_ps(a, b), t1 = _mm512_unpackhi_ps(a, b);
    const F t2 = _mm512_unpacklo_ps(c, d), t3 = _mm512_unpackhi_ps(c, d);
    a = _mm512_shuffle_ps(t0, t2, 0x44);
    b = _mm512_shuffle_ps(t0, t2, 0xEE);
    c = _mm512_shuffle_ps(t1, t3, 0x44);
    d = _mm512_shuffle_ps(t1, t3, 0xEE);
  }
  VO_SIMD_AVX512 static void to_records(F& a, F& b, F& c, F& d) { to_fields(a, b, c, d); }
  // Selects on a compare, in one step: (a OP b) ? x : y, the compare
  // ordered (false on NaN), or, for unordered, isnan(a) ? x : y. Prefer these
  // to blend(ge(...)) where the mask is not needed as bits: on AVX2 the
  // compare then stays a vector and never goes through a general register.
  template <int kCmp>
  VO_SIMD_AVX512 static F select(F a, F b, F x, F y) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, kCmp), y, x);
  }
  VO_SIMD_AVX512 static F select_lt(F a, F b, F x, F y) { return select<_CMP_LT_OQ>(a, b, x, y); }
  VO_SIMD_AVX512 static F select_gt(F a, F b, F x, F y) { return select<_CMP_GT_OQ>(a, b, x, y); }
  VO_SIMD_AVX512 static F select_ge(F a, F b, F x, F y) { return select<_CMP_GE_OQ>(a, b, x, y); }
  VO_SIMD_AVX512 static F select_le(F a, F b, F x, F y) { return select<_CMP_LE_OQ>(a, b, x, y); }
  VO_SIMD_AVX512 static F select_eq(F a, F b, F x, F y) { return select<_CMP_EQ_OQ>(a, b, x, y); }
  VO_SIMD_AVX512 static F select_unordered(F a, F x, F y) { return select<_CMP_UNORD_Q>(a, a, x, y); }
  // Toward zero, to an integral float.
  VO_SIMD_AVX512 static F trunc(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
  // The float and integer views of the same bits, and conversions
  // (to_int truncates; NaN and out of range give INT_MIN).
  VO_SIMD_AVX512 static U bits(F a) { return _mm512_castps_si512(a); }
  VO_SIMD_AVX512 static F from_bits(U a) { return _mm512_castsi512_ps(a); }
  VO_SIMD_AVX512 static U to_int(F a) { return _mm512_cvttps_epi32(a); }
  VO_SIMD_AVX512 static F to_float(U a) { return _mm512_cvtepi32_ps(a); }
  VO_SIMD_AVX512 static U add(U a, U b) { return _mm512_add_epi32(a, b); }
  VO_SIMD_AVX512 static U sub(U a, U b) { return _mm512_sub_epi32(a, b); }
  VO_SIMD_AVX512 static U bit_and(U a, U b) { return _mm512_and_si512(a, b); }
  VO_SIMD_AVX512 static U bit_or(U a, U b) { return _mm512_or_si512(a, b); }
  template <int kBits>
  VO_SIMD_AVX512 static U shift_left(U a) {
    return _mm512_slli_epi32(a, kBits);
  }
  template <int kBits>
  VO_SIMD_AVX512 static U shift_right(U a) {  // logical
    return _mm512_srli_epi32(a, kBits);
  }
  // table8[i & 7] in each lane (i's other bits ignored): one permute of an
  // 8-entry table held in a register (broadcast twice into the 16 lanes).
  VO_SIMD_AVX512 static U lookup8(const uint32_t* table8, U i) {
    const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table8));
    return _mm512_permutexvar_epi32(i, _mm512_broadcast_i64x4(t));
  }
  // dst[j * ds + i] = src[i * ss + j] for i, j < 8 (floats).
  VO_SIMD_AVX512 static void transpose8x8_f32(const float* src, int64_t ss, float* dst, int64_t ds) {
    avx2_detail::transpose8x8_f32(src, ss, dst, ds);
  }
  // Bytes (uint8 or bool, 0 or 1 and up) as floats.
  VO_SIMD_AVX512 static F load_u8(const uint8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  // 16 bfloat16 and 16 half (by their bits) as floats, exactly; and floats
  // stored as them, rounded to nearest even with c10's NaN (0x7FC0 for
  // bfloat16, the sign and 0x7E00 for half): core/float16_bits.h's
  // bfloat16_bits and half_bits, lane by lane. The half conversions are
  // F16C's (x86-64-v3 has it), a NaN made 0x7FC00000 with its sign first.
  VO_SIMD_AVX512 static F load_bf16(const uint16_t* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  VO_SIMD_AVX512 static F load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  VO_SIMD_AVX512 static __m256i bf16_bits(F v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd), 16);
    r = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), r, _mm512_set1_epi32(0x7FC0));
    return _mm512_cvtepi32_epi16(r);
  }
  VO_SIMD_AVX512 static __m256i f16_bits(F v) {
    const __m512i quiet = _mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)),
                                          _mm512_set1_epi32(0x7FC00000));
    const F c = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v, _mm512_castsi512_ps(quiet));
    return _mm512_cvtps_ph(c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  VO_SIMD_AVX512 static void store_bf16(uint16_t* p, F v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), bf16_bits(v));
  }
  VO_SIMD_AVX512 static void store_f16(uint16_t* p, F v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), f16_bits(v));
  }

  VO_SIMD_AVX512 static U load(const uint32_t* p) { return _mm512_loadu_si512(p); }
  VO_SIMD_AVX512 static U load(const int32_t* p) { return _mm512_loadu_si512(p); }
  VO_SIMD_AVX512 static U set1(uint32_t x) { return _mm512_set1_epi32(static_cast<int>(x)); }
  VO_SIMD_AVX512 static U min(U a, U b) { return _mm512_min_epu32(a, b); }
  VO_SIMD_AVX512 static unsigned eq(U a, U b, unsigned m = 0xFFFFu) {
    return _mm512_mask_cmpeq_epu32_mask(static_cast<__mmask16>(m), a, b);
  }
  // Least of m's lanes (~0u for none).
  VO_SIMD_AVX512 static uint32_t reduce_min(unsigned m, U v) {
    return _mm512_mask_reduce_min_epu32(static_cast<__mmask16>(m), v);
  }
  VO_SIMD_AVX512 static void compress_store(uint32_t* p, unsigned m, U v) {
    _mm512_storeu_si512(p, _mm512_maskz_compress_epi32(static_cast<__mmask16>(m), v));
  }
  VO_SIMD_AVX512 static void compress_store(int32_t* p, unsigned m, U v) {
    _mm512_storeu_si512(p, _mm512_maskz_compress_epi32(static_cast<__mmask16>(m), v));
  }
};

namespace avx2_detail {

// For each 8-bit mask, the positions of its set bits, in order, as 3-bit
// lane indices in 4-bit fields (the permutation that compresses 8 lanes).
struct CompressTable {
  uint32_t perm[256];
  constexpr CompressTable() : perm() {
    for (unsigned m = 0; m < 256; ++m) {
      uint32_t packed = 0;
      int k = 0;
      for (unsigned lane = 0; lane < 8; ++lane) {
        if (m >> lane & 1u) packed |= lane << (4 * k++);
      }
      perm[m] = packed;
    }
  }
};
inline constexpr CompressTable kCompress{};

}  // namespace avx2_detail

struct Avx2 {
  struct F {
    __m256 lo, hi;  // lanes 0-7 and 8-15
  };
  struct U {
    __m256i lo, hi;
  };

  template <typename Fn>
  VO_SIMD_AVX2 __attribute__((flatten, noinline)) static void isolated(Fn& f) {
    f();
  }

  VO_SIMD_AVX2 static F load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  VO_SIMD_AVX2 static void store(float* p, F v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
  }
  VO_SIMD_AVX2 static void stream(float* p, F v) {  // p 64-byte aligned
    _mm256_stream_ps(p, v.lo);
    _mm256_stream_ps(p + 8, v.hi);
  }
  VO_SIMD_AVX2 static F set1(float x) {
    const __m256 v = _mm256_set1_ps(x);
    return {v, v};
  }
  VO_SIMD_AVX2 static F add(F a, F b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
  VO_SIMD_AVX2 static F sub(F a, F b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
  VO_SIMD_AVX2 static F mul(F a, F b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
  VO_SIMD_AVX2 static F div(F a, F b) { return {_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
  VO_SIMD_AVX2 static F fmadd(F a, F b, F c) {
    return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
  }
  VO_SIMD_AVX2 static F fnmadd(F a, F b, F c) {
    return {_mm256_fnmadd_ps(a.lo, b.lo, c.lo), _mm256_fnmadd_ps(a.hi, b.hi, c.hi)};
  }
  VO_SIMD_AVX2 static F fnmsub(F a, F b, F c) {  // -(a b) - c
    return {_mm256_fnmsub_ps(a.lo, b.lo, c.lo), _mm256_fnmsub_ps(a.hi, b.hi, c.hi)};
  }
  VO_SIMD_AVX2 static F min(F a, F b) { return {_mm256_min_ps(a.lo, b.lo), _mm256_min_ps(a.hi, b.hi)}; }
  VO_SIMD_AVX2 static F max(F a, F b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
  VO_SIMD_AVX2 static F neg(F a) {
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
    return {_mm256_xor_ps(a.lo, sign), _mm256_xor_ps(a.hi, sign)};
  }
  VO_SIMD_AVX2 static __m256 lanes8(unsigned m8) {  // 8 mask bits as all-ones lanes
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_castsi256_ps(
        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(m8)), bit), bit));
  }
  template <int kCmp>
  VO_SIMD_AVX2 static unsigned cmp(F a, F b) {
    return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a.lo, b.lo, kCmp))) |
           static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a.hi, b.hi, kCmp))) << 8;
  }
  VO_SIMD_AVX2 static unsigned ge(F a, F b, unsigned m = 0xFFFFu) { return m & cmp<_CMP_GE_OQ>(a, b); }
  VO_SIMD_AVX2 static unsigned gt(F a, F b, unsigned m = 0xFFFFu) { return m & cmp<_CMP_GT_OQ>(a, b); }
  VO_SIMD_AVX2 static unsigned lt(F a, F b, unsigned m = 0xFFFFu) { return m & cmp<_CMP_LT_OQ>(a, b); }
  VO_SIMD_AVX2 static unsigned ordered(F a, unsigned m = 0xFFFFu) { return m & cmp<_CMP_ORD_Q>(a, a); }
  VO_SIMD_AVX2 static float reduce_min(unsigned m, F v) {
    const __m256 inf = _mm256_set1_ps(__builtin_inff());
    __m256 r = _mm256_min_ps(_mm256_blendv_ps(inf, v.lo, lanes8(m & 0xFFu)),
                             _mm256_blendv_ps(inf, v.hi, lanes8(m >> 8 & 0xFFu)));
    __m128 q = _mm_min_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
    q = _mm_min_ps(q, _mm_movehl_ps(q, q));
    q = _mm_min_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
  }
  VO_SIMD_AVX2 static float reduce_max(unsigned m, F v) {
    const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
    __m256 r = _mm256_max_ps(_mm256_blendv_ps(ninf, v.lo, lanes8(m & 0xFFu)),
                             _mm256_blendv_ps(ninf, v.hi, lanes8(m >> 8 & 0xFFu)));
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    q = _mm_max_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
  }
  VO_SIMD_AVX2 static __m256i compress_perm(unsigned m8) {
    const __m256i shift = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    return _mm256_and_si256(
        _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(avx2_detail::kCompress.perm[m8])), shift),
        _mm256_set1_epi32(7));
  }
  VO_SIMD_AVX2 static void compress_store(float* p, unsigned m, F v) {
    const unsigned lo = m & 0xFFu, hi = m >> 8 & 0xFFu;
    _mm256_storeu_ps(p, _mm256_permutevar8x32_ps(v.lo, compress_perm(lo)));
    _mm256_storeu_ps(p + __builtin_popcount(lo), _mm256_permutevar8x32_ps(v.hi, compress_perm(hi)));
  }
  // As Avx512's, with the 4x4 transposes within each 4 lanes of a ymm
  // register: records 0-7 (a and b) make the fields' low halves, 8-15 the
  // high ones.
  VO_SIMD_AVX2 static void transpose4x4(__m256& w, __m256& x, __m256& y, __m256& z) {
    const __m256 t0 = _mm256_unpacklo_ps(w, x), t1 = _mm256_unpackhi_ps(w, x);
    const __m256 t2 = _mm256_unpacklo_ps(y, z), t3 = _mm256_unpackhi_ps(y, z);
    w = _mm256_shuffle_ps(t0, t2, 0x44);
    x = _mm256_shuffle_ps(t0, t2, 0xEE);
    y = _mm256_shuffle_ps(t1, t3, 0x44);
    z = _mm256_shuffle_ps(t1, t3, 0xEE);
  }
  VO_SIMD_AVX2 static void to_fields(F& a, F& b, F& c, F& d) {
    __m256 w0 = a.lo, x0 = a.hi, y0 = b.lo, z0 = b.hi;
    __m256 w1 = c.lo, x1 = c.hi, y1 = d.lo, z1 = d.hi;
    transpose4x4(w0, x0, y0, z0);
    transpose4x4(w1, x1, y1, z1);
    a = {w0, w1};
    b = {x0, x1};
    c = {y0, y1};
    d = {z0, z1};
  }
  VO_SIMD_AVX2 static void to_records(F& a, F& b, F& c, F& d) {
    __m256 w0 = a.lo, x0 = b.lo, y0 = c.lo, z0 = d.lo;
    __m256 w1 = a.hi, x1 = b.hi, y1 = c.hi, z1 = d.hi;
    transpose4x4(w0, x0, y0, z0);
    transpose4x4(w1, x1, y1, z1);
    a = {w0, x0};
    b = {y0, z0};
    c = {w1, x1};
    d = {y1, z1};
  }
  template <int kCmp>
  VO_SIMD_AVX2 static F select(F a, F b, F x, F y) {
    return {_mm256_blendv_ps(y.lo, x.lo, _mm256_cmp_ps(a.lo, b.lo, kCmp)),
            _mm256_blendv_ps(y.hi, x.hi, _mm256_cmp_ps(a.hi, b.hi, kCmp))};
  }
  VO_SIMD_AVX2 static F select_lt(F a, F b, F x, F y) { return select<_CMP_LT_OQ>(a, b, x, y); }
  VO_SIMD_AVX2 static F select_gt(F a, F b, F x, F y) { return select<_CMP_GT_OQ>(a, b, x, y); }
  VO_SIMD_AVX2 static F select_ge(F a, F b, F x, F y) { return select<_CMP_GE_OQ>(a, b, x, y); }
  VO_SIMD_AVX2 static F select_le(F a, F b, F x, F y) { return select<_CMP_LE_OQ>(a, b, x, y); }
  VO_SIMD_AVX2 static F select_eq(F a, F b, F x, F y) { return select<_CMP_EQ_OQ>(a, b, x, y); }
  VO_SIMD_AVX2 static F select_unordered(F a, F x, F y) { return select<_CMP_UNORD_Q>(a, a, x, y); }
  VO_SIMD_AVX2 static F trunc(F a) {
    return {_mm256_round_ps(a.lo, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC),
            _mm256_round_ps(a.hi, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)};
  }
  VO_SIMD_AVX2 static U bits(F a) { return {_mm256_castps_si256(a.lo), _mm256_castps_si256(a.hi)}; }
  VO_SIMD_AVX2 static F from_bits(U a) { return {_mm256_castsi256_ps(a.lo), _mm256_castsi256_ps(a.hi)}; }
  VO_SIMD_AVX2 static U to_int(F a) { return {_mm256_cvttps_epi32(a.lo), _mm256_cvttps_epi32(a.hi)}; }
  VO_SIMD_AVX2 static F to_float(U a) { return {_mm256_cvtepi32_ps(a.lo), _mm256_cvtepi32_ps(a.hi)}; }
  VO_SIMD_AVX2 static U add(U a, U b) { return {_mm256_add_epi32(a.lo, b.lo), _mm256_add_epi32(a.hi, b.hi)}; }
  VO_SIMD_AVX2 static U sub(U a, U b) { return {_mm256_sub_epi32(a.lo, b.lo), _mm256_sub_epi32(a.hi, b.hi)}; }
  VO_SIMD_AVX2 static U bit_and(U a, U b) { return {_mm256_and_si256(a.lo, b.lo), _mm256_and_si256(a.hi, b.hi)}; }
  VO_SIMD_AVX2 static U bit_or(U a, U b) { return {_mm256_or_si256(a.lo, b.lo), _mm256_or_si256(a.hi, b.hi)}; }
  template <int kBits>
  VO_SIMD_AVX2 static U shift_left(U a) {
    return {_mm256_slli_epi32(a.lo, kBits), _mm256_slli_epi32(a.hi, kBits)};
  }
  template <int kBits>
  VO_SIMD_AVX2 static U shift_right(U a) {
    return {_mm256_srli_epi32(a.lo, kBits), _mm256_srli_epi32(a.hi, kBits)};
  }
  VO_SIMD_AVX2 static U lookup8(const uint32_t* table8, U i) {
    const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table8));
    return {_mm256_permutevar8x32_epi32(t, i.lo), _mm256_permutevar8x32_epi32(t, i.hi)};
  }
  // dst[j * ds + i] = src[i * ss + j] for i, j < 8 (floats).
  VO_SIMD_AVX2 static void transpose8x8_f32(const float* src, int64_t ss, float* dst, int64_t ds) {
    avx2_detail::transpose8x8_f32(src, ss, dst, ds);
  }
  VO_SIMD_AVX2 static F load_u8(const uint8_t* p) {
    return {_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))),
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8))))};
  }
  VO_SIMD_AVX2 static __m256 load_bf16_8(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  VO_SIMD_AVX2 static F load_bf16(const uint16_t* p) { return {load_bf16_8(p), load_bf16_8(p + 8)}; }
  VO_SIMD_AVX2 static F load_f16(const uint16_t* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
  }
  VO_SIMD_AVX2 static __m256i bf16_bits8(__m256 v) {  // 8 rounded bfloat16 in 32-bit lanes
    const __m256i u = _mm256_castps_si256(v);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), odd), 16);
    return _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
  }
  VO_SIMD_AVX2 static __m256i bf16_bits(F v) {
    // packus interleaves the 128-bit halves (lo 0-3, hi 0-3, lo 4-7, hi
    // 4-7); the permute puts them in order. Values are below 2^16: exact.
    const __m256i packed = _mm256_packus_epi32(bf16_bits8(v.lo), bf16_bits8(v.hi));
    return _mm256_permute4x64_epi64(packed, 0xD8);
  }
  VO_SIMD_AVX2 static __m128i f16_bits8(__m256 v) {
    const __m256i quiet = _mm256_or_si256(_mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(INT32_MIN)),
                                          _mm256_set1_epi32(0x7FC00000));
    const __m256 c = _mm256_blendv_ps(v, _mm256_castsi256_ps(quiet), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_cvtps_ph(c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  VO_SIMD_AVX2 static __m256i f16_bits(F v) { return _mm256_set_m128i(f16_bits8(v.hi), f16_bits8(v.lo)); }
  VO_SIMD_AVX2 static void store_bf16(uint16_t* p, F v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), bf16_bits(v));
  }
  VO_SIMD_AVX2 static void store_f16(uint16_t* p, F v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), f16_bits(v));
  }

  VO_SIMD_AVX2 static U load(const uint32_t* p) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8))};
  }
  VO_SIMD_AVX2 static U load(const int32_t* p) { return load(reinterpret_cast<const uint32_t*>(p)); }
  VO_SIMD_AVX2 static U set1(uint32_t x) {
    const __m256i v = _mm256_set1_epi32(static_cast<int>(x));
    return {v, v};
  }
  VO_SIMD_AVX2 static U min(U a, U b) { return {_mm256_min_epu32(a.lo, b.lo), _mm256_min_epu32(a.hi, b.hi)}; }
  VO_SIMD_AVX2 static unsigned eq(U a, U b, unsigned m = 0xFFFFu) {
    const unsigned lo = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(a.lo, b.lo))));
    const unsigned hi = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(a.hi, b.hi))));
    return m & (lo | hi << 8);
  }
  VO_SIMD_AVX2 static uint32_t reduce_min(unsigned m, U v) {
    const __m256i ones = _mm256_set1_epi32(-1);
    __m256i r = _mm256_min_epu32(
        _mm256_blendv_epi8(ones, v.lo, _mm256_castps_si256(lanes8(m & 0xFFu))),
        _mm256_blendv_epi8(ones, v.hi, _mm256_castps_si256(lanes8(m >> 8 & 0xFFu))));
    __m128i q = _mm_min_epu32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    q = _mm_min_epu32(q, _mm_shuffle_epi32(q, 0x4E));
    q = _mm_min_epu32(q, _mm_shuffle_epi32(q, 0xB1));
    return static_cast<uint32_t>(_mm_cvtsi128_si32(q));
  }
  VO_SIMD_AVX2 static void compress_store(uint32_t* p, unsigned m, U v) {
    const unsigned lo = m & 0xFFu, hi = m >> 8 & 0xFFu;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_permutevar8x32_epi32(v.lo, compress_perm(lo)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + __builtin_popcount(lo)),
                        _mm256_permutevar8x32_epi32(v.hi, compress_perm(hi)));
  }
  VO_SIMD_AVX2 static void compress_store(int32_t* p, unsigned m, U v) {
    compress_store(reinterpret_cast<uint32_t*>(p), m, v);
  }
};

#pragma GCC diagnostic pop

// Kernels templated on S take and return vectors by value; GCC warns that
// such calls from code without AVX change the ABI. No such call is made:
// every one is inlined into its instruction set's wrapper.
#pragma GCC diagnostic ignored "-Wpsabi"

#endif  // VO_HAVE_SIMD16

}  // namespace simd

// Whether with_simd has a vector type to run with (the chosen instruction
// set is AVX2 or AVX-512).
inline bool simd_available() {
#ifdef VO_HAVE_SIMD16
  return cpu_isa() != CpuIsa::Portable;
#else
  return false;
#endif
}

// Calls f(S{}) for the chosen instruction set's vector type S, compiled for
// that set (core/cpu_isa.h's wrappers). Only where simd_available().
template <typename Fn>
inline void with_simd(Fn&& f) {
#ifdef VO_HAVE_SIMD16
  if (cpu_isa() == CpuIsa::Avx512) {
    auto g = [&] { f(simd::Avx512{}); };
    isa_detail::run_avx512(g);
  } else {
    auto g = [&] { f(simd::Avx2{}); };
    isa_detail::run_avx2(g);
  }
#else
  (void)f;
#endif
}

}  // namespace vo
