// Large CPU outputs that are mostly zeros, zeroed by the operating system.
//
// Fresh anonymous memory from mmap reads as zeros, and the kernel zeroes a
// page only when it is first written (calloc, and so numpy.zeros, work this
// way). An op whose output is mostly zeros (paste_masks: 100 images of
// 800 x 800 of which the boxes cover a few percent) then writes only its
// nonzero parts: the memset of the whole output, which costs more than all
// the op's arithmetic, is skipped. Pages are kept at 4 KiB (MADV_NOHUGEPAGE),
// so a written box zeroes the pages it touches and no more; pages never
// written stay unmapped, and reading them maps the shared zero page (the
// first read of each page costs a minor fault, which is less than zeroing it
// would have).
//
// Below kLazyZeroBytes, and where mmap is unavailable, this is at::zeros.
// The tensor owns its mapping (munmap on release); like a tensor made by
// from_blob its storage cannot be resized in place.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace vo {

constexpr int64_t kLazyZeroBytes = int64_t(8) << 20;

// A CPU tensor of zeros, zeroed page by page as it is written where it is large.
inline at::Tensor zeros_for_sparse_writes(at::IntArrayRef shape, const at::TensorOptions& options) {
  int64_t numel = 1;
  for (const int64_t s : shape) numel *= s;
  const int64_t bytes = numel * static_cast<int64_t>(c10::elementSize(c10::typeMetaToScalarType(options.dtype())));
#if defined(__linux__) && defined(MADV_NOHUGEPAGE)
  if (bytes >= kLazyZeroBytes) {
    void* p = mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
      madvise(p, static_cast<size_t>(bytes), MADV_NOHUGEPAGE);
      const size_t length = static_cast<size_t>(bytes);
      return at::from_blob(
          p, shape, [length](void* q) { munmap(q, length); }, options.device(at::kCPU));
    }
  }
#endif
  return at::zeros(shape, options);
}

// Maps the pages of [begin, end) of a tensor from zeros_for_sparse_writes
// before they are written: one system call instead of a page fault per page
// (about half the cost of faulting them one by one). Advice only: where the
// kernel lacks MADV_POPULATE_WRITE (Linux < 5.14) the writes fault as usual.
inline void populate_for_writes(void* begin, void* end) {
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
  constexpr uintptr_t kPage = 4096;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(begin) & ~(kPage - 1);
  const uintptr_t hi = reinterpret_cast<uintptr_t>(end);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_POPULATE_WRITE);
#else
  (void)begin;
  (void)end;
#endif
}

}  // namespace vo
