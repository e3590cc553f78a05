"""``patch_torchvision()``: torchvision's ops, and torchvision's own uses of
them, rebound to visionops'.

    import visionops
    visionops.patch_torchvision()            # for the rest of the process

    with visionops.patch_torchvision():      # or for a block: restored on exit
        detections = model(images)

What is rebound: every name below, in ``torchvision.ops`` and in every
loaded ``torchvision`` module that holds the same object under any name (for
example ``torchvision.ops.poolers.roi_align``,
``torchvision.models.detection.roi_heads.roi_align``,
``torchvision.models.detection.retinanet.sigmoid_focal_loss``), Mask R-CNN's
``paste_masks_in_image`` (which ``torchvision.models.detection.transform``
imports), and torchvision's detection ``BoxCoder`` and ``AnchorGenerator``. Only names
with the same signature and semantics are rebound (``batched_nms`` lists
tied scores in torchvision's order when patched: see
:func:`batched_nms_in_torchvision_order`); torchvision's other ops
(``deform_conv2d``, ``ps_roi_align``, ``clip_boxes_to_image``, ...) stay
theirs.

torchvision's detection code looks its ops up at call time (``box_ops.nms``,
``roi_align``), so models built before the patch use ours too. The classes
(``RoIAlign``, ``RoIPool``, ``MultiScaleRoIAlign``, ``BoxCoder``,
``AnchorGenerator``) are ours only in models built while patched. A model
scripted while patched compiles our ops; TorchScript's cache of compiled
torchvision module types is cleared on entry and exit so that a model
scripted before does not leak into one scripted after.

Calls nest: leaving the outermost restores everything, including names that
torchvision modules imported while patched.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

import visionops

__all__ = ["patch_torchvision"]


def batched_nms_in_torchvision_order(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """visionops.batched_nms, its kept boxes listed in the order torchvision's
    batched_nms lists them: what the patch binds to ``batched_nms``.

    Both keep the same boxes (each class's greedy pass takes tied scores in
    index order) and list them by decreasing score, but break ties
    differently: ours by index, torchvision's, above 4000 coordinates on the
    CPU (100,000 on CUDA), as ``torch.sort(descending=True)`` leaves them,
    which is not stable. Tied scores are common (padding gives many anchors
    the same objectness), and the detection models' samplers index into this
    list, so the patched models re-sort the kept indices as torchvision does
    to give its results exactly. Costs a sort of the kept boxes.
    """
    keep = visionops.batched_nms(boxes, scores, idxs, iou_threshold)
    if boxes.numel() > (4000 if boxes.device.type == "cpu" else 100_000) and not torch.jit.is_tracing():
        keep = keep.sort()[0]
        keep = keep[scores[keep].sort(descending=True)[1]]
    return keep


# (torchvision module, name, visionops name): the originals we replace.
_TARGETS = [
    ("torchvision.ops", "batched_nms", "batched_nms_in_torchvision_order"),
    *(("torchvision.ops", name, name) for name in (
        "nms", "box_area", "box_convert", "box_iou", "generalized_box_iou", "distance_box_iou",
        "complete_box_iou", "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss",
        "sigmoid_focal_loss", "masks_to_boxes", "roi_align", "roi_pool", "RoIAlign", "RoIPool",
        "MultiScaleRoIAlign",
    )),
    ("torchvision.models.detection.roi_heads", "paste_masks_in_image", "paste_masks_in_image"),
    ("torchvision.models.detection._utils", "BoxCoder", "BoxCoder"),
    ("torchvision.models.detection.anchor_utils", "AnchorGenerator", "AnchorGenerator"),
]

_lock = threading.RLock()
_depth = 0
_pairs: list[tuple[Any, Any]] = []  # (torchvision's object, ours) while patched


def _torchvision_modules() -> list[ModuleType]:
    return [m for name, m in list(sys.modules.items())
            if isinstance(m, ModuleType) and (name == "torchvision" or name.startswith("torchvision."))]


def _put(target: Any, key: str, value: Any) -> None:
    if isinstance(target, dict):
        target[key] = value
    else:
        setattr(target, key, value)


def _rebind(pairs: list[tuple[Any, Any]]) -> list[tuple[Any, str, Any]]:
    """Every torchvision module attribute that is one of pairs' first objects
    becomes the second, and so does every annotation of torchvision's classes
    and functions that names one (TorchScript types attributes and arguments
    by them: RetinaNet's heads annotate ``box_coder`` with torchvision's
    BoxCoder). Returns (module or annotations dict, name, old value) for each
    change, to undo."""
    replacement = {id(old): (old, new) for old, new in pairs}

    def swap(target: Any, items: list[tuple[str, Any]]) -> None:
        for key, value in items:
            hit = replacement.get(id(value))
            if hit is not None and hit[0] is value:
                _put(target, key, hit[1])
                changes.append((target, key, value))

    changes: list[tuple[Any, str, Any]] = []
    seen: set[int] = set()
    for module in _torchvision_modules():
        members = list(vars(module).items())
        swap(module, members)
        for _, member in members:
            if getattr(member, "__module__", None) != module.__name__ or id(member) in seen:
                continue
            seen.add(id(member))
            annotations = vars(member).get("__annotations__") if isinstance(member, type) else \
                getattr(member, "__annotations__", None)
            if isinstance(annotations, dict):
                swap(annotations, list(annotations.items()))
    return changes


def _forget_scripted_torchvision() -> None:
    """Drop TorchScript's caches of compiled torchvision module types and
    functions: they resolved torchvision's ops (or ours) when compiled."""
    recursive = sys.modules.get("torch.jit._recursive")
    store = getattr(getattr(recursive, "concrete_type_store", None), "type_store", None)
    if isinstance(store, dict):
        for cls in [c for c in store if getattr(c, "__module__", "").startswith("torchvision.")]:
            del store[cls]
    functions = getattr(sys.modules.get("torch.jit._state"), "_jit_caching_layer", None)
    if functions is not None:
        for fn in [f for f in list(functions.keys()) if getattr(f, "__module__", "").startswith("torchvision.")]:
            del functions[fn]


def _ours(name: str) -> Any:
    return getattr(visionops, name) if hasattr(visionops, name) else globals()[name]


class _Patch:
    """What patch_torchvision() returns: a context manager whose exit (or
    ``restore()``) undoes this call's rebinding."""

    def __init__(self, changes: list[tuple[Any, str, Any]]) -> None:
        self._changes = changes
        self._active = True

    def __enter__(self) -> _Patch:  # noqa: PYI034 (typing.Self is 3.11; we support 3.10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.restore()

    @property
    def names(self) -> list[str]:
        """The rebound bindings, as 'module.name'."""
        return [f"{m.__name__}.{n}" for m, n, _ in self._changes if isinstance(m, ModuleType)]

    def restore(self) -> None:
        global _depth
        with _lock:
            if not self._active:
                return
            self._active = False
            for target, name, value in reversed(self._changes):
                _put(target, name, value)
            _depth -= 1
            if _depth == 0:
                # Modules imported while patched took ours from torchvision.ops.
                _rebind([(new, old) for old, new in _pairs])
                _pairs.clear()
            _forget_scripted_torchvision()


def patch_torchvision() -> _Patch:
    """Rebind torchvision's ops (and torchvision's own uses of them) to
    visionops'. Returns a context manager; leaving it, or calling its
    ``restore()``, puts torchvision's back. See the module docstring for what
    is and is not rebound."""
    global _depth
    with _lock:
        for module_name in {module for module, _, _ in _TARGETS} | {"torchvision.models.detection"}:
            importlib.import_module(module_name)
        if _depth == 0:
            _pairs[:] = [(getattr(sys.modules[module], name), _ours(name_ours)) for module, name, name_ours in _TARGETS]
        changes = _rebind(_pairs)
        _depth += 1
        _forget_scripted_torchvision()
        return _Patch(changes)
