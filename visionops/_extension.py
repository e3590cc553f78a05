"""Loads visionops' compiled library, and says clearly why when it cannot."""

from __future__ import annotations

import importlib

import torch

_REBUILD = "rebuild it against the installed torch: `pip install --no-build-isolation -e .` (or `make build`)"


def load_extension():
    """Import visionops._C, whose loading registers the ops with the dispatcher."""
    try:
        ext = importlib.import_module("visionops._C")
    except ImportError as e:
        raise ImportError(
            f"visionops: the compiled extension visionops._C could not be loaded ({e}). It is missing, or was "
            f"built against another torch than the installed torch {torch.__version__}; {_REBUILD}."
        ) from e
    built = getattr(ext, "TORCH_VERSION", "unknown")
    if built != torch.__version__:
        raise ImportError(
            f"visionops: the compiled extension was built against torch {built}, but torch {torch.__version__} "
            f"is installed; {_REBUILD}."
        )
    return ext


_C = load_extension()

#: True when the CUDA kernels were compiled in.
WITH_CUDA: bool = bool(getattr(_C, "WITH_CUDA", 0))
