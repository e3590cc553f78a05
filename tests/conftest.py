"""Shared fixtures: devices (CUDA cases skip, with one reason, without a
GPU), the reference packages (a missing one fails the run unless allowed),
fixed seeds, and generators of random and adversarial boxes."""

from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys
import tempfile
from types import ModuleType

import pytest
import torch

import visionops
from visionops.bench import box_generators

_NO_CUDA = "no CUDA device visible" if not torch.cuda.is_available() else (
    "visionops was built without CUDA kernels (VISIONOPS_CUDA=0)" if not visionops.WITH_CUDA else None
)

# `make sanitize` runs the suite against the sanitized build of the
# extension; make sure that is the one imported.
if os.environ.get("VISIONOPS_SANITIZED"):
    _built = os.path.abspath(os.environ["VISIONOPS_SANITIZED"])
    if not os.path.abspath(visionops._extension._C.__file__).startswith(_built):
        raise RuntimeError(f"make sanitize: imported {visionops._extension._C.__file__}, not the build in {_built}")

#: The one way a CUDA case skips: this mark, or the `device` fixture that carries it.
requires_cuda = pytest.mark.skipif(_NO_CUDA is not None, reason=f"CUDA case: {_NO_CUDA}")

DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]

#: Set to 1 where a reference package may be missing (the GPU image has only
#: torch and torchvision); elsewhere, CI included, a missing one is an error.
ALLOW_MISSING = "VISIONOPS_ALLOW_MISSING_REFERENCES"


def require(module: str) -> ModuleType:
    """Import a reference package that tests compare against. If it is
    missing, the importing test module skips where $VISIONOPS_ALLOW_MISSING_REFERENCES
    is 1 and fails otherwise: a broken reference must not turn parity tests
    into skips and leave CI green."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if os.environ.get(ALLOW_MISSING) == "1":
            pytest.skip(f"reference {module} is missing ({e}); allowed by {ALLOW_MISSING}=1",
                        allow_module_level=True)
        raise ImportError(f"the tests' reference {module} is missing ({e}); install requirements-dev.txt, or set "
                          f"{ALLOW_MISSING}=1 where references may be missing") from e


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def random_boxes(n: int, *lead: int, size: float = 100.0, scale: float = 50.0, dtype=torch.float64, device="cpu",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """xyxy boxes with x1 < x2 and y1 < y2: corners in [0, size), sides in [1e-3, scale + 1e-3)."""
    return box_generators.random_boxes(n, *lead, image=(size, size), sides=(1e-3, scale + 1e-3), dtype=dtype,
                                       device=device, generator=generator)


def adversarial_boxes(dtype=torch.float64, device="cpu") -> torch.Tensor:
    """Zero-area, inverted, identical, shared-edge, huge, negative and NaN boxes."""
    nan = float("nan")
    rows = [
        [0, 0, 10, 10],
        [0, 0, 10, 10],  # identical to the first
        [10, 0, 20, 10],  # shares an edge with the first
        [5, 5, 5, 5],  # a point
        [3, 0, 3, 10],  # zero width
        [10, 10, 0, 0],  # inverted (x2 < x1, y2 < y1)
        [8, 2, 2, 8],  # inverted in x only
        [-50, -40, -10, -5],  # negative
        [-5, -5, 5, 5],  # straddles the origin
        [1e6, 1e6, 1e6 + 30, 1e6 + 20],  # huge
        [-1e6, -1e6, 1e6, 1e6],  # enormous
        [0, 0, 1e-3, 1e-3],  # tiny
        [nan, 0, 10, 10],  # NaN corner
        [0, 0, 10, nan],
    ]
    return torch.tensor(rows, dtype=torch.float64).to(dtype=dtype, device=device)


def torchvision_supports(fn_name: str, param: str) -> bool:
    """Whether the installed torchvision's ops.<fn_name> takes <param> (fmt= is
    new in 0.29; the GPU image carries an older torchvision)."""
    import inspect

    try:
        import torchvision.ops as tv_ops
    except ImportError:
        return False
    return param in inspect.signature(getattr(tv_ops, fn_name)).parameters


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Runs `code` in a new interpreter with extra environment variables,
    importing the same visionops build as this process (the sanitized one
    under `make sanitize`) and this checkout's tests package."""
    package_dir = pathlib.Path(visionops.__file__).resolve().parents[1]
    root = pathlib.Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(package_dir), str(root), *sys.path])
    # cwd outside the checkout: `python -c` puts its cwd first on the path.
    return subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=path, **env),
                          cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=600, check=False)


def detection_images_and_targets(kind: str, side: int, seed: int = 11) -> tuple[list, list]:
    """Two images near side x side (one shorter, one narrower) with three
    boxes each, labels 1, 2, 3 (all 1 for keypointrcnn), and box-shaped masks
    for maskrcnn or 17 keypoints for keypointrcnn: the training input of
    torchvision's detection models and ours."""
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, side - 16, side, generator=g), torch.rand(3, side, side - 40, generator=g)]
    targets = []
    for image in images:
        h, w = image.shape[1:]
        xy = torch.rand(3, 2, generator=g) * torch.tensor([w / 2, h / 2])
        wh = 20 + torch.rand(3, 2, generator=g) * torch.tensor([w / 2 - 20, h / 2 - 20])
        boxes = torch.cat([xy, xy + wh], dim=1)
        target = {"boxes": boxes, "labels": torch.tensor([1, 1, 1] if kind == "keypointrcnn" else [1, 2, 3])}
        if kind == "maskrcnn":
            masks = torch.zeros(3, h, w, dtype=torch.uint8)
            for i, (x1, y1, x2, y2) in enumerate(boxes.round().int().tolist()):
                masks[i, y1:y2, x1:x2] = 1
            target["masks"] = masks
        if kind == "keypointrcnn":
            kx = boxes[:, None, 0] + torch.rand(3, 17, generator=g) * (boxes[:, None, 2] - boxes[:, None, 0])
            ky = boxes[:, None, 1] + torch.rand(3, 17, generator=g) * (boxes[:, None, 3] - boxes[:, None, 1])
            target["keypoints"] = torch.stack([kx, ky, torch.ones_like(kx)], dim=2)
        targets.append(target)
    return images, targets


def assert_same_losses(ours: dict, theirs: dict) -> None:
    """The same loss names, each within float32 rounding of the other."""
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-4, atol=1e-6, msg=lambda m, key=key: f"{key}: {m}")
