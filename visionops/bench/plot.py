"""Draw a benchmark JSON as a PNG: the speedup over torchvision of each case,
one bar per thread count.

    python -m visionops.bench.plot results/bench.json [--out results/bench.png]
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def import_pyplot():
    """matplotlib's pyplot (headless), or a SystemExit that says what to install."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "visionops.bench: drawing a PNG needs matplotlib, which is not installed: "
            "pip install 'visionops[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(path: str, out: str) -> str:
    plt = import_pyplot()

    with open(path) as f:
        data = json.load(f)
    rows = [r for r in data["results"] if r.get("speedup")]
    if not rows:
        raise SystemExit(f"{path}: no results with a torchvision time to compare")
    cases = list(dict.fromkeys(f"{r['op']}\n{r['case']}" for r in rows))
    threads = sorted({r["threads"] for r in rows})
    width = 0.8 / len(threads)
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(cases)), 5))
    for k, t in enumerate(threads):
        by_case = {f"{r['op']}\n{r['case']}": r["speedup"] for r in rows if r["threads"] == t}
        xs = [i + k * width for i, c in enumerate(cases) if c in by_case]
        ax.bar(xs, [by_case[c] for c in cases if c in by_case], width, label=f"{t} thread(s)")
    ax.set_xticks([i + width * (len(threads) - 1) / 2 for i in range(len(cases))])
    ax.set_xticklabels(cases, rotation=60, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel("speedup over torchvision (x, log scale)")
    env = data.get("environment", {})
    ax.set_title(f"visionops vs torchvision {env.get('torchvision')} on {env.get('gpu') or env.get('cpu')}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m visionops.bench.plot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", help="a JSON file written by python -m visionops.bench --json")
    p.add_argument("--out", default="", help="the PNG to write (default: next to the JSON)")
    args = p.parse_args(argv)
    out = args.out or os.path.splitext(args.json)[0] + ".png"
    print(f"wrote {plot(args.json, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
