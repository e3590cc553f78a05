// For the C++ tests of core/simd.h's users: f(S{}, name) for each of its
// vector types this CPU runs, compiled for that instruction set (inside
// core/cpu_isa.h's wrapper), and a line naming each set it skips.
#pragma once

#include <cstdio>

#include "core/cpu_isa.h"
#include "core/simd.h"
#include "tests/check.h"

namespace vo_test {

template <typename F>
void for_each_simd_isa(F&& f) {
#ifdef VO_HAVE_SIMD16
  const vo::CpuIsa isa = vo::cpu_isa_supported();
  if (isa == vo::CpuIsa::Avx512) {
    auto g = [&] { f(vo::simd::Avx512{}, "avx512"); };
    vo::isa_detail::run_avx512(g);
  } else {
    std::printf("skipped: avx512 (this CPU does not run x86-64-v4)\n");
  }
  if (isa != vo::CpuIsa::Portable) {
    auto g = [&] { f(vo::simd::Avx2{}, "avx2"); };
    vo::isa_detail::run_avx2(g);
  } else {
    std::printf("skipped: avx2 (this CPU does not run x86-64-v3)\n");
  }
#else
  (void)f;
  std::printf("skipped: avx512 and avx2 (no x86-64 vector type in this build)\n");
#endif
}

}  // namespace vo_test

// The main() of a test written as check_isa<S>(name), defined where
// VO_HAVE_SIMD16 is: runs it on each vector type, then reports the suite.
#ifdef VO_HAVE_SIMD16
#define VO_TEST_MAIN_EACH_SIMD_ISA(suite)                                                           \
  int main() {                                                                                      \
    vo_test::for_each_simd_isa([](auto s, const char* name) { check_isa<decltype(s)>(name); });     \
    return vo_test::report(suite);                                                                  \
  }
#else
#define VO_TEST_MAIN_EACH_SIMD_ISA(suite)                 \
  int main() {                                            \
    vo_test::for_each_simd_isa([](auto, const char*) {}); \
    return vo_test::report(suite);                        \
  }
#endif
