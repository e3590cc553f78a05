"""Build visionops' native extension against the torch already installed.

    pip install --no-build-isolation -e .

Environment:
  VISIONOPS_CUDA        auto (default) | 0 | 1. auto builds the CUDA kernels when
                        a CUDA toolkit (nvcc) is found and this torch is a CUDA
                        build; whether a GPU is visible does not matter.
  TORCH_CUDA_ARCH_LIST  GPU targets. Unset: the visible GPUs' architectures,
                        or "9.0+PTX" when no GPU is visible.
  VISIONOPS_STRICT_FP   1: no FMA contraction in CUDA code either (bitwise
                        checks between CPU and GPU).
  VISIONOPS_SANITIZE    sanitizers for the C++ code, e.g. "address,undefined"
                        (make sanitize: CPU kernels, built out of place).
  MAX_JOBS              parallel compile jobs (ninja).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")  # includes name their family: "boxes/math.h", "core/checks.h"


def _find_cuda_home() -> str | None:
    """The CUDA toolkit: $CUDA_HOME, $CUDA_PATH, /usr/local/cuda, or nvcc's."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    if os.path.exists("/usr/local/cuda/bin/nvcc"):
        return "/usr/local/cuda"
    nvcc = shutil.which("nvcc")
    if nvcc:
        return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    return None


_cuda_home = _find_cuda_home()
if _cuda_home:
    # torch.utils.cpp_extension reads CUDA_HOME when it is imported; a wrapper
    # script named nvcc on the PATH would otherwise mislead it.
    os.environ.setdefault("CUDA_HOME", _cuda_home)

try:
    import torch
except ImportError:
    sys.exit(
        "setup.py: visionops builds against the torch already installed, and this Python has none. Install torch "
        "first (pip install torch), then build with `pip install --no-build-isolation -e .`: without "
        "--no-build-isolation pip builds in a fresh environment that has no torch."
    )
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension


def _decide_cuda() -> tuple[bool, str]:
    mode = os.environ.get("VISIONOPS_CUDA", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        sys.exit(f"setup.py: VISIONOPS_CUDA must be auto, 0 or 1, got {mode!r}")
    has_nvcc = bool(_cuda_home) and os.path.exists(os.path.join(_cuda_home, "bin", "nvcc"))
    torch_cuda = torch.version.cuda
    if mode == "0":
        return False, "VISIONOPS_CUDA=0"
    if not has_nvcc or torch_cuda is None:
        why = "no CUDA toolkit (nvcc) found" if not has_nvcc else f"torch {torch.__version__} is not a CUDA build"
        if mode == "1":
            sys.exit(f"setup.py: VISIONOPS_CUDA=1 but {why}")
        return False, f"VISIONOPS_CUDA=auto and {why}"
    nvcc_cuda = _nvcc_version()
    if nvcc_cuda is None or nvcc_cuda.split(".")[0] != torch_cuda.split(".")[0]:
        why = (
            f"nvcc in {_cuda_home} is CUDA {nvcc_cuda or 'of an unknown version'} but torch {torch.__version__} "
            f"was built with CUDA {torch_cuda}; the major versions must match (install the matching toolkit and "
            "point CUDA_HOME at it)"
        )
        if mode == "1":
            sys.exit(f"setup.py: VISIONOPS_CUDA=1 but {why}")
        return False, f"VISIONOPS_CUDA=auto and {why}"
    return True, f"VISIONOPS_CUDA={mode}, nvcc {nvcc_cuda} in {_cuda_home}, torch CUDA {torch_cuda}"


def _nvcc_version() -> str | None:
    """The CUDA version of the toolkit's nvcc ("13.0"), or None."""
    try:
        out = subprocess.run(
            [os.path.join(_cuda_home, "bin", "nvcc"), "--version"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else None


def _nvidia_wheel_includes() -> list[str]:
    """cuBLAS and cuSPARSE headers from torch's nvidia-* wheels, when the
    toolkit lacks them: torch's CUDA headers include them."""
    if os.path.exists(os.path.join(_cuda_home or "", "include", "cublas_v2.h")):
        return []
    dirs = []
    for base in sys.path:
        for d in sorted(glob.glob(os.path.join(base, "nvidia", "*", "include"))):
            if any(os.path.exists(os.path.join(d, h)) for h in ("cublas_v2.h", "cusparse.h")):
                dirs.append(d)
    return list(dict.fromkeys(dirs))


# One folder per op family under csrc/ (boxes, nms, roi, ...), each holding
# its kernels; core/ holds headers only, tests/ the C++ tests (CMake's), and
# python/ the module stub, which only this build adds.
_NOT_KERNELS = ("tests", "python")


def _sources(ext: str) -> list[str]:
    found = sorted(glob.glob(os.path.join("csrc", f"*.{ext}")))
    for path in sorted(glob.glob(os.path.join("csrc", "*", f"*.{ext}"))):
        if path.split(os.sep)[1] not in _NOT_KERNELS:
            found.append(path)
    return found


def _extension():
    with_cuda, why = _decide_cuda()
    sources = _sources("cpp") + [os.path.join("csrc", "python", "module.cpp")]
    define = [
        ("VISIONOPS_TORCH_VERSION", f'"{torch.__version__}"'),
        ("VISIONOPS_WITH_CUDA", "1" if with_cuda else "0"),
    ]
    # -ffp-contract=off: no silent FMA contraction, so float32 results are
    # bitwise torchvision's where the formula is the same.
    # -fno-trapping-math: we never read floating-point exception flags, so the
    # compiler may compute both sides of a select; without it, loops holding
    # a conditional (exp, log, the losses) do not vectorize for AVX2. Results
    # are unchanged: no reassociation, no contraction.
    # -fopenmp: at::parallel_for is OpenMP in torch's builds, and without the
    # flag its pragma compiles to a serial loop.
    # -g0: no debug information (Python's flags ask for -g). It was a third
    # of the compile time of a kernel file, and the build is most of CI's time.
    cxx = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fvisibility=hidden", "-fopenmp", "-g0"]
    link = ["-fopenmp"]
    sanitize = os.environ.get("VISIONOPS_SANITIZE", "")
    if sanitize:
        # -O2 -g1: reports with stacks and lines (-g1: line tables only, a
        # third less compile time than -g). Not -O1: GCC forms multiply-
        # adds only from -O2, and the Dice loops that allow them must round
        # as in the normal build (tests compare the portable loops with the
        # AVX-512 ones bit for bit).
        flags = [f"-fsanitize={sanitize}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g1"]
        cxx = ["-O2", *cxx[1:-1], *flags]
        link += flags
        print(f"visionops: building with -fsanitize={sanitize}", flush=True)
    if not with_cuda:
        print(f"visionops: building CPU kernels only ({why})", flush=True)
        return CppExtension(
            "visionops._C",
            sources,
            include_dirs=[CSRC],
            define_macros=define,
            extra_compile_args={"cxx": cxx},
            extra_link_args=link,
        )
    sources += _sources("cu")
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0+PTX"
    nvcc = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]
    if os.environ.get("VISIONOPS_STRICT_FP") == "1":
        nvcc.append("--fmad=false")
    print(
        f"visionops: building CPU and CUDA kernels ({why}; TORCH_CUDA_ARCH_LIST="
        f"{os.environ.get('TORCH_CUDA_ARCH_LIST', 'visible GPUs')})",
        flush=True,
    )
    return CUDAExtension(
        "visionops._C",
        sources,
        define_macros=define,
        include_dirs=[CSRC] + _nvidia_wheel_includes(),
        extra_compile_args={"cxx": cxx, "nvcc": nvcc},
        extra_link_args=link,
    )


setup(
    packages=find_packages(include=["visionops", "visionops.*"]),
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
