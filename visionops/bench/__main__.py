"""``python -m visionops.bench``: visionops against torchvision, side by side.

    python -m visionops.bench                       # every suite (boxes, nms, roi, coding, losses, dice, yolo,
                                                    # map, hungarian, small), CPU, 1 and 2 threads
    python -m visionops.bench small                 # small inputs, where fixed costs dominate
    python -m visionops.bench map --sizes 5000      # COCO mAP over 5000 images (pycocotools: ~45 s a run)
    python -m visionops.bench hungarian             # DETR batch matching against scipy and DETR's matcher
    python -m visionops.bench boxes --ops box_iou --sizes 1000,4000 --threads 1,2 --json results/boxes.json
    python -m visionops.bench --device cuda --dtype float16
    python -m visionops.bench --ops nms,batched_nms --sizes 1000,20000,100000
    python -m visionops.bench nms-profile --help    # the NMS throughput profiler (sweeps, boxes/s, JSON, PNG)
    python -m visionops.bench models                # torchvision's detection models, patch_torchvision() on and off

Prints one row per (op, case, threads): the baseline's median time
(torchvision's op, or the implementation the case names: plain PyTorch,
segmentation_models_pytorch, MONAI, pycocotools, scipy), visionops' median time, and the
speedup. --json also writes the results with
the torch version, CPU or GPU name and git commit.
"""

from __future__ import annotations

import argparse
import sys

import torch

from visionops.bench import boxes, coding, dice, hungarian, losses, map, nms, roi, small, yolo
from visionops.bench.timing import Result, median_ms, print_header, print_row, write_json

SUITES = {"boxes": boxes, "nms": nms, "roi": roi, "coding": coding, "losses": losses, "dice": dice, "yolo": yolo,
          "map": map, "hungarian": hungarian, "small": small}

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m visionops.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suites", nargs="*", default=list(SUITES),
                   help=f"suites to run: {', '.join(SUITES)} (default: all)")
    p.add_argument("--ops", default="", help="comma-separated op names (default: every op of the suites)")
    p.add_argument("--sizes", type=_int_list, default=None,
                   help="N: the N x N pairwise ops (default 1000,4000), the boxes given to NMS (default 1000,20000), "
                   "the RoIs of the Faster R-CNN RoI cases (default 2000), the boxes coded (default 200000)")
    p.add_argument("--elements", type=int, default=200_000, help="boxes for area, convert and the losses")
    p.add_argument("--threads", type=_int_list, default=[1, 2], help="intra-op thread counts (CPU)")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="float32")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--min-run-time", type=float, default=0.3, help="seconds of timing per measurement")
    p.add_argument("--json", default="", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    for s in args.suites:
        if s not in SUITES:
            p.error(f"unknown suite {s!r}; choose from {', '.join(SUITES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["nms-profile"]:  # the NMS throughput profiler has its own sweep options
        from visionops.bench import nms_profile

        return nms_profile.main(argv[1:])
    if argv[:1] == ["models"]:  # torchvision's detection models, patched against unpatched
        from visionops.bench import models

        return models.main(argv[1:])
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("visionops.bench: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    dtype = _DTYPES[args.dtype]
    threads = args.threads if args.device == "cpu" else [torch.get_num_threads()]
    results: list[Result] = []
    print(f"visionops.bench: {', '.join(args.suites)} on {args.device}, {args.dtype}, threads {threads}; medians")
    print_header()
    wanted = [o for o in args.ops.split(",") if o]
    known = {op for name in args.suites for op in SUITES[name].ALL}
    if any(o not in known for o in wanted):
        bad = next(o for o in wanted if o not in known)
        print(f"visionops.bench: unknown op {bad!r}; choose from {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    for suite_name in args.suites:
        suite = SUITES[suite_name]
        ops = [o for o in wanted if o in suite.ALL] if wanted else suite.ALL
        if not ops:
            continue
        try:
            cases = suite.cases(ops, args.sizes or suite.DEFAULT_SIZES, args.elements, dtype, args.device)
        except ValueError as e:
            print(f"visionops.bench: {e}", file=sys.stderr)
            return 2
        for case in cases:
            for t in threads:
                ours = median_ms(case.visionops, t, args.device, args.min_run_time)
                theirs = None
                if case.run_baseline is not None:
                    theirs = median_ms(case.run_baseline, t, args.device, args.min_run_time, case.baseline_runs)
                r = Result(case.op, case.case, args.device, args.dtype, t, theirs, ours,
                           theirs / ours if theirs is not None else None, case.baseline)
                print_row(r)
                results.append(r)
    if args.json:
        write_json(args.json, results, args.device, argv)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
