// Portability macros shared by every kernel, host and device.
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define VO_HOST_DEVICE_INLINE __host__ __device__ __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
// Forced: the CPU loops vectorize only once the whole per-element formula,
// backward included, is inlined into them.
#define VO_HOST_DEVICE_INLINE inline __attribute__((always_inline))
#else
#define VO_HOST_DEVICE_INLINE inline
#endif

// A loop whose iterations are independent except for a min reduction: lets
// the compiler use vector min instructions (IEEE min is not associative, so
// without the pragma it keeps the loop scalar). A no-op on the GPU and
// without OpenMP.
#define VO_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP) && !defined(__CUDACC__) && !defined(__HIPCC__)
#define VO_SIMD_MIN_REDUCTION(var) VO_PRAGMA(omp simd reduction(min : var))
#define VO_SIMD_OR_REDUCTION(var) VO_PRAGMA(omp simd reduction(| : var))
#define VO_SIMD VO_PRAGMA(omp simd)
#else
#define VO_SIMD
#define VO_SIMD_MIN_REDUCTION(var)
#define VO_SIMD_OR_REDUCTION(var)
#endif

namespace vo {

// Plain min/max that compile to one instruction on host and device. With a NaN
// operand they return the second argument; every formula that uses them also
// carries the NaN through another path (an area, a centre), so a NaN
// coordinate always yields NaN, as in torchvision. See boxes/math.h.
template <typename T>
VO_HOST_DEVICE_INLINE T min(T a, T b) {
  return a < b ? a : b;
}

template <typename T>
VO_HOST_DEVICE_INLINE T max(T a, T b) {
  return a > b ? a : b;
}

template <typename T>
VO_HOST_DEVICE_INLINE T clamp_min(T v, T lo) {
  return v < lo ? lo : v;  // NaN stays NaN, like torch.clamp
}

}  // namespace vo

#if defined(__CUDACC__) || defined(__HIPCC__)
// A grid-stride loop with a 64-bit index: outputs of N x M boxes pass 2^31
// elements long before they run out of memory.
#define VO_CUDA_1D_KERNEL_LOOP(i, n)                                                      \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
#endif
