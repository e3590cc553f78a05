"""The NMS throughput profiler: ``python -m visionops.bench nms-profile``.

Sweeps the number of boxes, the layout, the IoU threshold, the number of
classes (1: ``nms``; more: ``batched_nms``), dtype, threads and device, and
prints boxes per second for torchvision and visionops side by side with the
speedup. ``--json`` writes the results, ``--png`` draws throughput against N
(log-log, one line per implementation and layout).

    python -m visionops.bench nms-profile --sizes 100,1000,10000,100000,1000000 --layouts uniform,clustered,detector \\
        --json results/nms.json --png results/nms.png

Layouts (boxes in a 1333 x 800 image, sides 10 to 300 px): ``uniform``;
``clustered``, N/20 objects with 20 jittered copies each; ``detector``,
clustered copies with high scores plus a uniform background of
low-scored boxes, as a detector head emits them.
torchvision is skipped (shown as -) where its quadratic time would pass
``--torchvision-budget`` seconds, judged from the previous size.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial

import torch

import visionops
from visionops.bench.box_generators import clustered_boxes, detector_boxes, layout_classes
from visionops.bench.plot import import_pyplot
from visionops.bench.timing import environment

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Row:
    layout: str
    n: int
    iou_threshold: float
    classes: int
    dtype: str
    device: str
    threads: int
    kept: int
    torchvision_s: float | None
    visionops_s: float
    torchvision_boxes_per_s: float | None
    visionops_boxes_per_s: float
    speedup: float | None


def make_inputs(layout: str, n: int, classes: int, dtype, device, g: torch.Generator):
    if layout == "uniform":
        boxes = detector_boxes(n, torch.float32, "cpu", g)
        scores = torch.rand(n, generator=g)
        idxs = layout_classes("uniform", n, classes, g)
    elif layout == "clustered":
        boxes = clustered_boxes(n, torch.float32, "cpu", g)
        scores = torch.rand(n, generator=g)
        idxs = layout_classes("clustered", n, classes, g)
    elif layout == "detector":
        # 70 % copies around objects, scored 0.3 to 1; 30 % background, 0 to 0.3.
        n_obj = (n * 7) // 10
        boxes_obj = clustered_boxes(n_obj, torch.float32, "cpu", g)
        scores_obj = 0.3 + 0.7 * torch.rand(n_obj, generator=g)
        boxes_bg = detector_boxes(n - n_obj, torch.float32, "cpu", g)
        scores_bg = 0.3 * torch.rand(n - n_obj, generator=g)
        boxes, scores = torch.cat([boxes_obj, boxes_bg]), torch.cat([scores_obj, scores_bg])
        idxs = torch.cat([layout_classes("clustered", n_obj, classes, g),
                          layout_classes("uniform", n - n_obj, classes, g)])
    else:
        raise ValueError(f"unknown layout {layout!r}; choose from uniform, clustered, detector")
    return boxes.to(dtype=dtype, device=device), scores.to(dtype=dtype, device=device), idxs.to(device)


def _time(fn, device: str, min_time: float) -> tuple[float, object]:
    """Median seconds of fn(), repeated until min_time has passed (at least 3 runs, 1 for slow ones)."""
    out = fn()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    times = []
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
        if (len(times) >= 3 and time.perf_counter() - start > min_time) or times[-1] > 2 * min_time:
            break
    times.sort()
    return times[len(times) // 2], out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m visionops.bench nms-profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: [int(float(v)) for v in s.split(",") if v]
    floats = lambda s: [float(v) for v in s.split(",") if v]
    p.add_argument("--sizes", type=ints, default=[100, 1000, 10000, 100000])
    p.add_argument("--layouts", default="uniform,clustered,detector")
    p.add_argument("--thresholds", type=floats, default=[0.5])
    p.add_argument("--classes", type=ints, default=[1], help="1: nms; more: batched_nms with that many classes")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="float32")
    p.add_argument("--threads", type=ints, default=[1])
    p.add_argument("--device", default="cpu")
    p.add_argument("--min-run-time", type=float, default=0.2)
    p.add_argument("--torchvision-budget", type=float, default=5.0, help="seconds one torchvision call may take")
    p.add_argument("--json", default="")
    p.add_argument("--png", default="")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> list[Row]:
    try:
        import torchvision.ops as tv_ops
    except ImportError:
        tv_ops = None
    dtype = _DTYPES[args.dtype]
    rows: list[Row] = []
    print(f"{'layout':<10} {'N':>8} {'iou':>5} {'cls':>4} {'thr':>3} {'kept':>7} {'torchvision box/s':>18} "
          f"{'visionops box/s':>16} {'speedup':>8}")
    before = torch.get_num_threads()
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            for layout in [x for x in args.layouts.split(",") if x]:
                for thr in args.thresholds:
                    for classes in args.classes:
                        tv_last: tuple[int, float] | None = None
                        for n in args.sizes:
                            g = torch.Generator().manual_seed(n)
                            boxes, scores, idxs = make_inputs(layout, n, classes, dtype, args.device, g)
                            if classes == 1:
                                ours = partial(visionops.nms, boxes, scores, thr)
                                theirs = tv_ops and partial(tv_ops.nms, boxes, scores, thr)
                            else:
                                ours = partial(visionops.batched_nms, boxes, scores, idxs, thr)
                                theirs = tv_ops and partial(tv_ops.batched_nms, boxes, scores, idxs, thr)
                            t_ours, kept = _time(ours, args.device, args.min_run_time)
                            t_theirs = None
                            if theirs is not None:
                                predicted = tv_last[1] * (n / tv_last[0]) ** 2 if tv_last else 0.0
                                if predicted <= args.torchvision_budget:
                                    t_theirs, _ = _time(theirs, args.device, args.min_run_time)
                                    tv_last = (n, t_theirs)
                            row = Row(layout, n, thr, classes, args.dtype, args.device, threads, int(kept.numel()),
                                      t_theirs, t_ours, n / t_theirs if t_theirs else None, n / t_ours,
                                      t_theirs / t_ours if t_theirs else None)
                            rows.append(row)
                            tv = f"{row.torchvision_boxes_per_s:18.3e}" if t_theirs else f"{'-':>18}"
                            sp = f"{row.speedup:7.1f}x" if t_theirs else f"{'-':>8}"
                            print(f"{layout:<10} {n:>8} {thr:>5} {classes:>4} {threads:>3} {row.kept:>7} {tv} "
                                  f"{row.visionops_boxes_per_s:16.3e} {sp}", flush=True)
    finally:
        torch.set_num_threads(before)
    return rows


def plot(rows: list[Row], path: str, title: str) -> None:
    plt = import_pyplot()

    fig, ax = plt.subplots(figsize=(8, 5))
    series = sorted({(r.layout, r.iou_threshold, r.classes, r.threads) for r in rows})
    for layout, thr, classes, threads in series:
        sel = [r for r in rows if (r.layout, r.iou_threshold, r.classes, r.threads) == (layout, thr, classes, threads)]
        label = f"{layout}, iou {thr}, {classes} cls, {threads} thr"
        line = ax.plot([r.n for r in sel], [r.visionops_boxes_per_s for r in sel], marker="o",
                       label=f"visionops: {label}")[0]
        tv = [r for r in sel if r.torchvision_boxes_per_s]
        if tv:
            ax.plot([r.n for r in tv], [r.torchvision_boxes_per_s for r in tv], marker="x", linestyle="--",
                    color=line.get_color(), label=f"torchvision: {label}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("boxes (N)")
    ax.set_ylabel("boxes per second")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(True, which="both", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    import json
    import os

    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("visionops.bench nms-profile: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    if args.png:
        import_pyplot()  # before the sweeps: say now, not after minutes, that matplotlib is missing
    rows = run(args)
    env = environment(args.device)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"environment": env, "argv": argv, "results": [asdict(r) for r in rows]}, f, indent=2)
        print(f"wrote {args.json}")
    if args.png:
        os.makedirs(os.path.dirname(os.path.abspath(args.png)), exist_ok=True)
        plot(rows, args.png, f"NMS throughput on {env.get('gpu') or env['cpu']} (torch {env['torch']})")
        print(f"wrote {args.png}")
    return 0
