"""Loading the package: visionops works without torchvision, and a missing or
mismatched extension is explained, with the command that fixes it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, check=False,
                          timeout=300)


def test_import_without_torchvision():
    out = run("""
        import sys
        sys.modules["torchvision"] = None  # any import of torchvision now fails
        import torch, visionops
        a = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
        b = torch.tensor([[50.0, 50.0, 150.0, 150.0]])
        print(visionops.box_iou(a, b).item())
    """)
    assert out.returncode == 0, out.stderr
    assert abs(float(out.stdout.strip().splitlines()[-1]) - 1 / 7) < 1e-6


def test_missing_extension_is_explained():
    out = run("""
        import sys
        sys.modules["visionops._C"] = None  # as if the extension was never built
        import visionops
    """)
    assert out.returncode != 0
    assert "visionops: the compiled extension visionops._C could not be loaded" in out.stderr
    assert "pip install --no-build-isolation -e ." in out.stderr


def test_other_torch_is_explained():
    out = run("""
        import sys, types
        fake = types.ModuleType("visionops._C")
        fake.TORCH_VERSION = "1.0.0"
        sys.modules["visionops._C"] = fake
        import visionops
    """)
    assert out.returncode != 0
    assert "built against torch 1.0.0, but torch" in out.stderr
    assert "pip install --no-build-isolation -e ." in out.stderr


def test_cuda_flag_matches_registered_kernels():
    import torch

    import visionops

    for op in ("box_iou", "generalized_box_iou_loss", "box_area", "box_convert"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"visionops::{op}", "CPU")
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"visionops::{op}", "CUDA") == visionops.WITH_CUDA


def test_has_avx512_reports_this_cpu():
    # The AVX-512 kernels are compiled in on x86-64 Linux builds; has_avx512()
    # must then say whether the CPU has AVX-512, whatever VISIONOPS_CPU_ISA
    # says (tests use it to decide what to compare).
    import platform

    from visionops._extension import _C

    if platform.machine() != "x86_64" or not os.path.exists("/proc/cpuinfo"):
        assert _C.has_avx512() is False
        return
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    assert _C.has_avx512() is ("avx512f" in flags)
