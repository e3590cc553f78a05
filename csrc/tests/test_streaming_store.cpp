// C++ tests of core/streaming_store.h: when an output is worth streaming
// (only into memory already mapped; a fresh mapping is not, see
// pages_resident) and that stream_copy copies exactly, at any alignment and
// length. Linux only (mincore); no torch needed; ctest.
#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "core/streaming_store.h"
#include "tests/check.h"

namespace {

using vo_test::check;

constexpr size_t kBytes = size_t{8} << 20;

void test_fresh_then_touched_mapping() {
  void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  check(p != MAP_FAILED, "mmap of 8 MiB");
  if (p == MAP_FAILED) return;
  // 4 KiB pages: where transparent huge pages are "always", touching the
  // first quarter could fault a 2 MiB page reaching past it, and the
  // quarter check below would depend on the mapping's alignment.
  madvise(p, kBytes, MADV_NOHUGEPAGE);
  check(!vo::pages_resident(p, kBytes), "a fresh mapping has no page in memory");
  check(!vo::worth_streaming(p, kBytes, 1), "so it is not streamed");
  std::memset(p, 1, kBytes / 4);
  check(!vo::pages_resident(p, kBytes), "a quarter touched: most samples still absent");
  std::memset(p, 1, kBytes);
  check(vo::pages_resident(p, kBytes), "every page touched");
  check(vo::worth_streaming(p, kBytes, kBytes), "at the threshold and mapped: streamed");
  check(!vo::worth_streaming(p, kBytes, kBytes + 1), "below the threshold: not streamed");
  check(vo::pages_resident(static_cast<char*>(p) + 100, 4096 * 3), "an unaligned range inside it");
  check(!vo::pages_resident(static_cast<char*>(p) + 100, 200), "less than a page: nothing to sample");
  madvise(p, kBytes, MADV_DONTNEED);
  check(!vo::pages_resident(p, kBytes), "after MADV_DONTNEED the pages are gone again");
  munmap(p, kBytes);
}

void test_stream_copy_exact() {
  std::vector<float> src(1000), dst(1040);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i) * 0.5f - 7.0f;
  for (int shift = 0; shift < 8; ++shift) {
    for (int n : {0, 1, 3, 4, 5, 17, 64, 999}) {
      std::fill(dst.begin(), dst.end(), -1.0f);
      vo::stream_copy(dst.data() + shift, src.data(), n);
      vo::stream_fence();
      bool ok = true;
      for (int i = 0; i < static_cast<int>(dst.size()); ++i) {
        const float want = (i >= shift && i < shift + n) ? src[i - shift] : -1.0f;
        ok = ok && dst[i] == want;
      }
      check(ok, "stream_copy writes exactly [shift, shift + n)", shift, n);
    }
  }
  std::vector<double> sd(37), dd(40, 0.0);
  for (size_t i = 0; i < sd.size(); ++i) sd[i] = 1.0 / (1.0 + static_cast<double>(i));
  vo::stream_copy(dd.data() + 1, sd.data(), 37);
  vo::stream_fence();
  bool ok = dd[0] == 0.0 && dd[38] == 0.0;
  for (int i = 0; i < 37; ++i) ok = ok && dd[i + 1] == sd[i];
  check(ok, "stream_copy of doubles at an odd offset");
}

}  // namespace

int main() {
  test_fresh_then_touched_mapping();
  test_stream_copy_exact();
  return vo_test::report("streaming_store");
}
