"""torchvision's detection models, patched against unpatched:
``python -m visionops.bench models``.

    python -m visionops.bench models                          # the five models, 800x800, batch 2, 1 and 2 threads
    python -m visionops.bench models --models fasterrcnn,retinanet --threads 2 --json results/models.json
    python -m visionops.bench models --models '' --rcnn faster,mask   # only visionops.models against torchvision

Builds each model with random weights (no download) in eval mode, runs
inference on a batch of random images, and prints the end-to-end median time
with torchvision's ops and with ours (``visionops.patch_torchvision()``), the
speedup, and the share of each run spent in the detection ops (the ops and
classes the patch rebinds: NMS, RoI Align and pooling, box coding, anchors,
IoU), timed around each outermost call. The backbone's convolutions are the
same in both and dominate, so the end-to-end speedup is bounded by that share.

Then visionops.models' own Faster R-CNN and Mask R-CNN against torchvision's
with the same weights, split into backbone, heads and detection work, and a
training step (bench/rcnn.py); then YOLO, DETR and U-Net with our ops against
the same pipelines with plain PyTorch, torchvision and scipy swapped in,
inference and training (bench/zoo.py).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch

from visionops.bench.timing import environment, intra_op_threads

MODELS = ["fasterrcnn", "maskrcnn", "retinanet", "fcos", "keypointrcnn"]


@dataclass
class Row:
    model: str
    threads: int
    torchvision_ms: float
    visionops_ms: float
    speedup: float
    torchvision_ops_share: float  # of torchvision_ms, in the detection ops
    visionops_ops_share: float


def build(name: str, side: int) -> torch.nn.Module:
    from torchvision.models import detection

    builders = {"fasterrcnn": detection.fasterrcnn_resnet50_fpn, "maskrcnn": detection.maskrcnn_resnet50_fpn,
                "retinanet": detection.retinanet_resnet50_fpn, "fcos": detection.fcos_resnet50_fpn,
                "keypointrcnn": detection.keypointrcnn_resnet50_fpn}
    torch.manual_seed(0)
    return builders[name](weights=None, weights_backbone=None, min_size=side, max_size=side).eval()


class OpTimer:
    """Wall time inside the detection ops: every callable the patch rebinds
    (torchvision's or ours, whichever is bound) and the forward or coding
    methods of the classes it rebinds, counted at the outermost call only."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0

    def wrap(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds += time.perf_counter() - start

        return timed

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from visionops import patch

        functions, classes = [], []
        for module, name, _ in patch._TARGETS:
            obj = getattr(sys.modules[module], name)
            (classes if isinstance(obj, type) else functions).append(obj)
        methods = [(cls, m) for cls in classes for m in ("forward", "encode_single", "decode_single")
                   if m in vars(cls)]
        changes = patch._rebind([(fn, self.wrap(fn)) for fn in functions])
        for cls, m in methods:
            setattr(cls, m, self.wrap(vars(cls)[m]))
        try:
            yield
        finally:
            for cls, m in methods:
                setattr(cls, m, vars(cls)[m].__wrapped__)
            for target, key, value in reversed(changes):
                patch._put(target, key, value)


def time_model(model: torch.nn.Module, images: list[torch.Tensor], repeats: int) -> tuple[float, float]:
    """(median ms, share of the time in the detection ops) over `repeats` runs after one warm-up."""
    timer = OpTimer()
    times, shares = [], []
    with torch.no_grad(), timer.installed():
        model(images)
        for _ in range(repeats):
            timer.seconds = 0.0
            start = time.perf_counter()
            model(images)
            elapsed = time.perf_counter() - start
            times.append(elapsed * 1e3)
            shares.append(timer.seconds / elapsed)
    return statistics.median(times), statistics.median(shares)


def run(names: list[str], threads: list[int], side: int, batch: int, repeats: int) -> list[Row]:
    import visionops

    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, side, side, generator=g) for _ in range(batch)]
    rows = []
    print(f"visionops.bench models: batch {batch} of {side}x{side}, eval, random weights; medians of {repeats}")
    print(f"{'model':<14}{'threads':>8}{'torchvision ms':>16}{'visionops ms':>14}{'speedup':>9}"
          f"{'ops share tv':>14}{'ops share vo':>14}")
    for name in names:
        theirs = build(name, side)
        with visionops.patch_torchvision():
            ours = build(name, side)
        for t in threads:
            with intra_op_threads(t):
                tv_ms, tv_share = time_model(theirs, images, repeats)
                with visionops.patch_torchvision():
                    vo_ms, vo_share = time_model(ours, images, repeats)
            row = Row(name, t, tv_ms, vo_ms, tv_ms / vo_ms, tv_share, vo_share)
            rows.append(row)
            print(f"{name:<14}{t:>8}{tv_ms:>16.1f}{vo_ms:>14.1f}{row.speedup:>8.2f}x"
                  f"{100 * tv_share:>13.1f}%{100 * vo_share:>13.1f}%", flush=True)
    return rows


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m visionops.bench models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--threads", default="1,2", help="intra-op thread counts")
    p.add_argument("--size", type=int, default=800, help="image side (the models resize to it)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement, after one warm-up")
    p.add_argument("--rcnn", default="faster,mask",
                   help="visionops.models against torchvision with the same weights: faster, mask ('' for none)")
    p.add_argument("--no-train-step", action="store_true", help="skip the R-CNN training-step comparison")
    p.add_argument("--zoo", default="yolo,detr,unet",
                   help="YOLO, DETR and U-Net against plain PyTorch and torchvision ops swapped in ('' for none)")
    p.add_argument("--zoo-size", type=int, default=256, help="image side of the YOLO, DETR and U-Net runs")
    p.add_argument("--zoo-batch", type=int, default=8, help="batch of the YOLO, DETR and U-Net runs")
    p.add_argument("--json", default="", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    rcnn_names = [m for m in args.rcnn.split(",") if m]
    from visionops.bench import rcnn

    if any(m not in rcnn.RCNN for m in rcnn_names):
        p.error(f"--rcnn: choose from {', '.join(rcnn.RCNN)}")
    from visionops.bench import zoo

    zoo_names = [m for m in args.zoo.split(",") if m]
    if any(m not in zoo.ZOO for m in zoo_names):
        p.error(f"--zoo: choose from {', '.join(zoo.ZOO)}")
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        p.error(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        print("visionops.bench models: needs torchvision (pip install torchvision)", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        threads = [int(t) for t in args.threads.split(",") if t]
        rows = run(names, threads, args.size, args.batch, args.repeats) if names else []
        rcnn_rows = rcnn.run(rcnn_names, threads, args.size, args.batch, args.repeats,
                             not args.no_train_step) if rcnn_names else []
        zoo_rows = zoo.run(zoo_names, threads, max(args.repeats, 3), args.zoo_size, args.zoo_batch) if zoo_names else []
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"environment": environment("cpu"), "argv": argv, "rows": [asdict(r) for r in rows],
                       "rcnn_rows": [asdict(r) for r in rcnn_rows], "zoo_rows": [asdict(r) for r in zoo_rows]},
                      f, indent=2)
        print(f"\nwrote {args.json}")
    return 0
