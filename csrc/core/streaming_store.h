// Non-temporal (streaming) stores for outputs larger than the caches.
//
// A plain store to a line that is not in cache first reads the line (read
// for ownership). An N x M IoU matrix of 64 MB is written once and not read
// back by us, so that read is pure waste: streaming stores skip it and the
// write bandwidth, which bounds box_iou, goes further.
#pragma once

#include <cstdint>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define VO_HAVE_STREAMING_STORES 1
#endif

namespace vo {

// At or above this many bytes an output is streamed rather than cached: about
// the last-level cache of current server parts.
constexpr int64_t kStreamingStoreBytes = int64_t(32) << 20;

#ifdef VO_HAVE_STREAMING_STORES
inline void stream_16_bytes(float* dst, const float* src) { _mm_stream_ps(dst, _mm_loadu_ps(src)); }
inline void stream_16_bytes(double* dst, const double* src) { _mm_stream_pd(dst, _mm_loadu_pd(src)); }
#endif

// dst[0, n) = src[0, n), streaming the 16-byte-aligned middle of dst.
template <typename T>
inline void stream_copy(T* dst, const T* src, int64_t n) {
  int64_t i = 0;
#ifdef VO_HAVE_STREAMING_STORES
  constexpr int64_t kLanes = 16 / sizeof(T);
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15) != 0; ++i) dst[i] = src[i];
  for (; i + kLanes <= n; i += kLanes) stream_16_bytes(dst + i, src + i);
#endif
  for (; i < n; ++i) dst[i] = src[i];
}

// Orders this thread's streaming stores before whatever follows (the end of
// a parallel region, after which other threads read the output).
inline void stream_fence() {
#ifdef VO_HAVE_STREAMING_STORES
  _mm_sfence();
#endif
}

}  // namespace vo
