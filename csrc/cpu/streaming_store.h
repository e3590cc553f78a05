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

inline void stream_copy(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
#ifdef VO_HAVE_STREAMING_STORES
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15) != 0; ++i) dst[i] = src[i];
  for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
#endif
  for (; i < n; ++i) dst[i] = src[i];
}

inline void stream_copy(double* dst, const double* src, int64_t n) {
  int64_t i = 0;
#ifdef VO_HAVE_STREAMING_STORES
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15) != 0; ++i) dst[i] = src[i];
  for (; i + 2 <= n; i += 2) _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
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
