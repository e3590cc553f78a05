// exp and log that vectorize on the CPU.
//
// libm's expf and logf are calls the compiler cannot vectorize (without
// -ffast-math), and they dominate fused kernels such as box decoding. These
// are branch-free Cephes-style versions (range reduction, a short
// polynomial, exponent arithmetic on the bits), within 2 ulp of the exact
// value over the whole float range, with inf, NaN, zero and denormal inputs
// handled as libm does. Coefficients are Cephes' expf and logf (Stephen L.
// Moshier, public domain). On CUDA the device's own expf and logf are used.
// double arguments use libm.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/macros.h"

namespace vo {

VO_HOST_DEVICE_INLINE float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

VO_HOST_DEVICE_INLINE uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// exp(r) for |r| <= ln 2 / 2: Cephes' polynomial.
VO_HOST_DEVICE_INLINE float exp_poly_(float r) {
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r2 + r + 1.0f;
}

// z = n ln 2 + r with n = round(z / ln 2) and |r| <= ln 2 / 2, for z within
// [-104, 88.8] (or NaN): returns r, and t = 1.5 * 2^23 + n, the rounding sum
// (t - 1.5 * 2^23 is n, and t's last bits are n's).
VO_HOST_DEVICE_INLINE float exp_reduce_(float z, float& t) {
  t = z * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23: rounds to an integer
  const float n = t - 12582912.0f;
  const float r = z - n * 0.693359375f;  // ln 2 in two parts (Cody and Waite)
  return r - n * -2.12194440e-4f;
}

// The shared part of exp_ and exp_nonpositive_: for x already clamped to
// [-104, 88.8] (or NaN), exp(x) = 2^n * exp(r); returns exp(r) and n (0 for
// NaN: any n will do, the result is NaN).
VO_HOST_DEVICE_INLINE float exp_reduced_(float xc, int32_t& n_out) {
  float t;
  const float r = exp_reduce_(xc, t);
  const float n = t - 12582912.0f;
  n_out = static_cast<int32_t>(n == n ? n : 0.0f);
  return exp_poly_(r);
}

// exp(z) for z already in [-86, 88] (or NaN), cheaper than exp_: n is read
// from the bits of the rounding sum (t = 1.5 * 2^23 + n, whose last bits are
// n), 2^n (n in [-124, 127]) is a normal float built from those bits, and
// exp(r) * 2^n is exact: no second factor, no overflow or denormal to guard,
// no conversion. For NaN, t's bits are no number but exp(r) is NaN, and so
// is the product. The losses' sigmoid and softmax clamp into this range
// (losses/math.h).
VO_HOST_DEVICE_INLINE float exp_normal_range_(float z) {
  float t;
  const float r = exp_reduce_(z, t);
  // (0x4B400000 + n + 127 - 0x4B400000) << 23, in wrapping unsigned arithmetic
  const float scale = bits_to_float((float_to_bits(t) + (127u - 0x4B400000u)) << 23);
  return exp_poly_(r) * scale;
}

VO_HOST_DEVICE_INLINE float exp_(float x) {
#if defined(__CUDA_ARCH__)
  return ::expf(x);
#else
  const float xc = x > 88.8f ? 88.8f : (x < -104.0f ? -104.0f : x);  // NaN stays NaN
  int32_t ni;
  const float e = exp_reduced_(xc, ni);
  // 2^n as two factors, so that results in the denormal range and up to
  // 2^128 (overflow to inf) come out right.
  const int32_t n1 = ni / 2, n2 = ni - ni / 2;
  const float s1 = bits_to_float(static_cast<uint32_t>(n1 + 127) << 23);
  const float s2 = bits_to_float(static_cast<uint32_t>(n2 + 127) << 23);
  const float y = e * s1 * s2;
  return x > 88.8f ? INFINITY : y;  // NaN: y is NaN
#endif
}

// exp(x) for x <= 0 (or NaN), as exp_ but cheaper: no overflow to guard,
// and 2^n (n in [-150, 0]) as one exact factor 2^(n + 64) and a final 2^-64,
// which rounds once, exactly where exp_'s second factor does: the results are
// exp_'s, bit for bit.
VO_HOST_DEVICE_INLINE float exp_nonpositive_(float x) {
#if defined(__CUDA_ARCH__)
  return ::expf(x);
#else
  const float xc = x < -104.0f ? -104.0f : x;  // NaN stays NaN
  int32_t ni;
  const float e = exp_reduced_(xc, ni);
  const float s = bits_to_float(static_cast<uint32_t>(ni + 64 + 127) << 23);
  return (e * s) * 0x1p-64f;
#endif
}

VO_HOST_DEVICE_INLINE float log_(float x) {
#if defined(__CUDA_ARCH__)
  return ::logf(x);
#else
  // x = m * 2^k with m in [sqrt(1/2), sqrt(2)); log x = k ln 2 + log m.
  const bool denormal = x < 1.17549435e-38f;
  const float xs = denormal ? x * 16777216.0f : x;  // 2^24: denormals become normal
  const uint32_t u = float_to_bits(xs);
  int32_t k = static_cast<int32_t>((u >> 23) & 0xFFu) - 126;
  float m = bits_to_float((u & 0x007FFFFFu) | 0x3F000000u);  // in [0.5, 1)
  const bool small = m < 0.707106781186547524f;
  k = small ? k - 1 : k;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float fk = static_cast<float>(k) - (denormal ? 24.0f : 0.0f);
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m + -1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m + -1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m + -1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m + -2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float y = p * m * z;
  y = y + fk * -2.12194440e-4f;
  y = y - 0.5f * z;
  y = m + y + fk * 0.693359375f;
  // Special values as libm: log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays NaN.
  y = x == 0.0f ? -INFINITY : y;
  y = x < 0.0f ? NAN : y;
  y = x == INFINITY ? INFINITY : y;
  return x != x ? x : y;
#endif
}

VO_HOST_DEVICE_INLINE double exp_(double x) { return std::exp(x); }
VO_HOST_DEVICE_INLINE double exp_nonpositive_(double x) { return std::exp(x); }
VO_HOST_DEVICE_INLINE double log_(double x) { return std::log(x); }

// sigmoid(x) without overflow for any x.
template <typename T>
VO_HOST_DEVICE_INLINE T stable_sigmoid(T x) {
  const T e = exp_nonpositive_(x < T(0) ? x : -x);  // exp(-|x|)
  const T r = T(1) / (T(1) + e);
  const T er = e * r;
  return x >= T(0) ? r : er;
}

}  // namespace vo
