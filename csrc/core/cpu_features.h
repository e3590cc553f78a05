// Run-time CPU dispatch for the hand-vectorized AVX-512 kernels.
#pragma once

#include <cstdlib>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__) && \
    !defined(VISIONOPS_NO_MULTIVERSION)
#include <immintrin.h>
#define VO_HAVE_AVX512_KERNELS 1
#endif

namespace vo {

// Whether the AVX-512 kernels are compiled in and this CPU can run them,
// whatever the environment says (visionops._C.has_avx512() reports it, so
// that tests comparing them with the portable loops skip where they cannot).
inline bool avx512_kernels_supported() {
#ifdef VO_HAVE_AVX512_KERNELS
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

#ifdef VO_HAVE_AVX512_KERNELS
// Whether to take the AVX-512 kernels: they are supported and the
// environment does not set VISIONOPS_DISABLE_AVX512 (which lets the tests
// run the portable loops, those of AVX2 machines, here too). Checked once.
inline bool cpu_has_avx512f() {
  static const bool has = avx512_kernels_supported() && std::getenv("VISIONOPS_DISABLE_AVX512") == nullptr;
  return has;
}
#endif

}  // namespace vo
