// Non-temporal (streaming) stores for outputs larger than the caches.
//
// A plain store to a line that is not in cache first reads the line (read
// for ownership). An N x M IoU matrix of 64 MB is written once and not read
// back by us, so that read is pure waste: streaming stores skip it and the
// write bandwidth goes further. That holds only for memory already mapped;
// worth_streaming() below says when.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define VO_HAVE_STREAMING_STORES 1
#endif

namespace vo {

// At or above this many bytes an output is streamed rather than cached (where
// its memory is already mapped: worth_streaming): about the last-level cache
// of current server parts.
constexpr int64_t kStreamingStoreBytes = int64_t(32) << 20;

// Whether the pages under [p, p + bytes) are already in memory, judged from
// up to 8 pages spread over it (mincore, one call each).
//
// Streaming pays only on memory that is already mapped: a buffer reused from
// the heap, whose lines a plain store would first read. A fresh mapping (what
// glibc gives for a block over its mmap threshold, and always over 32 MB) is
// zeroed by the kernel at the first touch of each page, which leaves the page
// in cache; plain stores then hit it, while streaming stores would write the
// same bytes to memory a second time. Measured here: a 64 MB box_iou into
// fresh memory took 17 ms streamed, 5.5 ms with plain stores; a 16 MB Dice
// gradient 5.7 ms streamed into fresh memory, 3.8 ms plain, but 2.7 ms
// streamed into reused memory against 2.9 ms plain. With transparent huge
// pages off, the 64 MB box_iou took 33 ms streamed and 22 ms plain.
inline bool pages_resident(const void* p, size_t bytes) {
#if defined(__linux__)
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (end <= begin) return false;
  const uintptr_t pages = (end - begin) / page;
  constexpr uintptr_t kSamples = 8;
  const uintptr_t samples = pages < kSamples ? pages : kSamples;
  uintptr_t resident = 0;
  for (uintptr_t k = 0; k < samples; ++k) {
    const uintptr_t at = begin + (pages * k / samples) * page;
    unsigned char in_core = 0;
    if (mincore(reinterpret_cast<void*>(at), page, &in_core) == 0 && (in_core & 1)) ++resident;
  }
  return 2 * resident >= samples;
#else
  (void)p;
  (void)bytes;
  return true;  // no way to tell: assume reused, as before
#endif
}

// Whether to stream an output of `bytes` at p: large enough, and reused.
inline bool worth_streaming(const void* p, size_t bytes, size_t threshold) {
  return bytes >= threshold && pages_resident(p, bytes);
}

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
