// Run-time CPU dispatch for the hand-vectorized AVX-512 kernels: they run
// where core/cpu_isa.h's choice is AVX-512 (the CPU has it and
// $VISIONOPS_CPU_ISA does not ask for less).
#pragma once

#include "core/cpu_isa.h"

#if defined(VO_HAVE_X86_ISA_DISPATCH)
#define VO_HAVE_AVX512_KERNELS 1
#endif

namespace vo {

#ifdef VO_HAVE_AVX512_KERNELS
// Whether to take the AVX-512 kernels. Checked once (cpu_isa() is cached).
inline bool cpu_has_avx512f() { return cpu_isa() == CpuIsa::Avx512; }
#endif

}  // namespace vo
