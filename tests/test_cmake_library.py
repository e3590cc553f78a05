"""The CMake build (libvisionops.so for libtorch users) registers the same ops
when loaded with torch.ops.load_library, without the Python package."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.environ.get("VISIONOPS_CMAKE_LIB", os.path.join(ROOT, "build", "cmake", "libvisionops.so"))


@pytest.mark.skipif(not os.path.exists(LIBRARY),
                    reason=f"the CMake library is not built ({LIBRARY}); `make cmake` builds it")
def test_load_library_registers_ops():
    # A fresh interpreter: the Python package registers the same library name,
    # so the two cannot be loaded into one process.
    code = textwrap.dedent(f"""
        import torch
        torch.ops.load_library({LIBRARY!r})
        a = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
        b = torch.tensor([[50.0, 50.0, 150.0, 150.0]])
        iou = torch.ops.visionops.box_iou(a, b, "xyxy")
        assert abs(iou.item() - 1 / 7) < 1e-7, iou
        loss = torch.ops.visionops.generalized_box_iou_loss(a, b, "sum", 1e-7)
        assert loss.dim() == 0
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
