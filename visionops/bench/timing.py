"""Timing, tables and JSON for the benchmark CLI.

Each case times torchvision and visionops on the same inputs in the same run,
at each thread count, and reports medians (torch.utils.benchmark). The ratio
is the figure that matters; absolute times depend on the machine.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
import torch.utils.benchmark as tbench


@dataclass
class Result:
    op: str
    case: str
    device: str
    dtype: str
    threads: int
    baseline_ms: float | None  # the baseline's time (torchvision unless `baseline` says otherwise)
    visionops_ms: float
    speedup: float | None
    baseline: str = "torchvision"


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to n inside the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def median_ms(fn: Callable[[], object], threads: int, device: str, min_run_time: float, runs: int = 0) -> float:
    """Median wall time of fn() in milliseconds, at `threads` intra-op threads;
    with runs > 0, the median of that many plain runs (no warm-up): for
    baselines too slow to repeat."""
    if runs > 0:
        times = []
        with intra_op_threads(threads):
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)
    fn()  # warm-up: first-touch allocations, lazy init, autotuning
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10,
                             check=False)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                   capture_output=True, text=True, timeout=10, check=False).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def environment(device: str) -> dict:
    try:
        import torchvision

        tv_version = torchvision.__version__
    except ImportError:
        tv_version = None
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "torchvision": tv_version,
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "git_commit": git_commit(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


_HEADER = f"{'op':<26} {'case':<32} {'threads':>7} {'baseline ms':>15} {'visionops ms':>13} {'speedup':>8}"


def print_header() -> None:
    print(_HEADER)
    print("-" * len(_HEADER), flush=True)


def print_row(r: Result) -> None:
    tv = f"{r.baseline_ms:15.3f}" if r.baseline_ms is not None else f"{'-':>15}"
    sp = f"{r.speedup:7.1f}x" if r.speedup is not None else f"{'-':>8}"
    case = r.case if r.baseline == "torchvision" else f"{r.case} vs {r.baseline}"
    print(f"{r.op:<26} {case:<32} {r.threads:>7} {tv} {r.visionops_ms:13.3f} {sp}", flush=True)


def write_json(path: str, results: list[Result], device: str, argv: list[str]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"environment": environment(device), "argv": argv, "results": [asdict(r) for r in results]}, f,
                  indent=2)
