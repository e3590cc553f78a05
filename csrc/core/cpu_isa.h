// Which x86-64 instruction set the CPU kernels run with, and running a
// kernel compiled for it.
//
// Each hot loop is written once (portable C++ that the compiler vectorizes,
// or core/simd.h's vector type where a loop needs masks) and compiled three
// times at its call site: for AVX-512 (x86-64-v4), for AVX2 with FMA
// (x86-64-v3) and for baseline x86-64 (SSE2). with_cpu_isa(f) runs f() in
// the copy for the instruction set chosen once per process: the best this
// CPU has, unless $VISIONOPS_CPU_ISA asks for a lower one ("avx2" or
// "portable"; "avx512" is the default where available). Forcing a lower path
// is how the tests run, on an AVX-512 machine, the code an AVX2-only CPU
// runs. (VISIONOPS_DISABLE_AVX512=1, the older switch, means "avx2".)
//
// Why not GCC's target_clones, which did this before: its choice is made by
// the loader from the CPU alone, so no test could run a lower path on a
// machine that has a higher one. Why not three builds of whole files with
// different -m flags (PyTorch's way): inline functions from headers (ATen,
// the standard library) compiled with AVX-512 in one file could be the copy
// the linker keeps for all, and crash a CPU without it. Here the copies are
// made by inlining into the wrappers below, whose instances are unique to
// each call site; nothing compiled for a higher ISA is shared.
#pragma once

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__) && \
    !defined(VISIONOPS_NO_MULTIVERSION)
#define VO_HAVE_X86_ISA_DISPATCH 1
#include <immintrin.h>
#endif

namespace vo {

enum class CpuIsa : int { Portable = 0, Avx2 = 1, Avx512 = 2 };

inline const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512:
      return "avx512";
    case CpuIsa::Avx2:
      return "avx2";
    default:
      return "portable";
  }
}

// The highest instruction set this build and CPU can run, ignoring the
// environment (what the tests ask before running a path).
inline CpuIsa cpu_isa_supported() {
#ifdef VO_HAVE_X86_ISA_DISPATCH
  __builtin_cpu_init();
  // x86-64-v4 and v3 as GCC defines them (the wrappers' targets).
  if (__builtin_cpu_supports("x86-64-v4")) return CpuIsa::Avx512;
  if (__builtin_cpu_supports("x86-64-v3")) return CpuIsa::Avx2;
#endif
  return CpuIsa::Portable;
}

// The instruction set the kernels run with: the supported one, capped by
// $VISIONOPS_CPU_ISA. Chosen once; an unknown value is ignored.
inline CpuIsa cpu_isa() {
  static const CpuIsa chosen = [] {
    CpuIsa isa = cpu_isa_supported();
    CpuIsa cap = CpuIsa::Avx512;
    if (const char* env = std::getenv("VISIONOPS_CPU_ISA")) {
      if (std::strcmp(env, "avx2") == 0) cap = CpuIsa::Avx2;
      if (std::strcmp(env, "portable") == 0) cap = CpuIsa::Portable;
    }
    if (std::getenv("VISIONOPS_DISABLE_AVX512") != nullptr && cap == CpuIsa::Avx512) cap = CpuIsa::Avx2;
    return static_cast<int>(isa) < static_cast<int>(cap) ? isa : cap;
  }();
  return chosen;
}

namespace isa_detail {

// flatten: every call inside, f's body and what it calls, is inlined here and
// compiled for the wrapper's target. A callee that cannot be inlined stays a
// call to its baseline copy (correct, only slower).
#ifdef VO_HAVE_X86_ISA_DISPATCH
template <typename F>
__attribute__((target("arch=x86-64-v4"), flatten)) void run_avx512(F& f) {
  f();
}
template <typename F>
__attribute__((target("arch=x86-64-v3"), flatten)) void run_avx2(F& f) {
  f();
}
#endif
template <typename F>
__attribute__((flatten)) void run_portable(F& f) {
  f();
}

}  // namespace isa_detail

// Runs f() compiled for cpu_isa(). f is called once; pass a lambda that
// calls the kernel (its arguments captured by reference).
template <typename F>
inline void with_cpu_isa(F&& f) {
#ifdef VO_HAVE_X86_ISA_DISPATCH
  switch (cpu_isa()) {
    case CpuIsa::Avx512:
      isa_detail::run_avx512(f);
      return;
    case CpuIsa::Avx2:
      isa_detail::run_avx2(f);
      return;
    default:
      break;
  }
#endif
  isa_detail::run_portable(f);
}

}  // namespace vo
