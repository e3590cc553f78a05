// The little harness of the C++ math tests: counts of passed and failed
// checks, a line for each failure, and a closing line "N passed, N failed".
#pragma once

#include <cmath>
#include <cstdio>

namespace vo_test {

inline int g_passed = 0;
inline int g_failed = 0;

inline void check(bool ok, const char* what, double got = 0, double want = 0) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL: %s (got %.17g, want %.17g)\n", what, got, want);
  }
}

// |got - want| within tol relative to 1 + |want|.
inline void check_close(double got, double want, double tol, const char* what) {
  check(std::fabs(got - want) <= tol * (1.0 + std::fabs(want)), what, got, want);
}

// The closing line and the exit status.
inline int report(const char* suite) {
  std::printf("%s: %d passed, %d failed\n", suite, g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}

}  // namespace vo_test
