"""The training loop behind ``python -m visionops.train`` (see __init__)."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from visionops.train.progress import Progress, clock
from visionops.train.registry import MODELS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m visionops.train", description=__doc__)
    p.add_argument("model", choices=sorted(MODELS), help="the model to train")
    p.add_argument("--config", default="",
                   help="model configuration (default the first): faster_rcnn and mask_rcnn: small or "
                   "resnet50_fpn; unet: multiclass or binary (foreground against background)")
    p.add_argument("--data", default="synthetic",
                   help="'synthetic' (the built-in shapes) or a COCO-format folder (images/ + annotations.json); "
                   "a folder's held-out split is --val-data, or its last --val-images images")
    p.add_argument("--val-data", default="", help="a COCO-format folder to evaluate on")
    p.add_argument("--image-size", type=int, default=256, help="training and evaluation image side")
    p.add_argument("--train-images", type=int, default=4000, help="synthetic training images")
    p.add_argument("--val-images", type=int, default=200, help="held-out images evaluated")
    p.add_argument("--cache-mb", type=float, default=2048,
                   help="keep the synthetic training (and held-out) images in memory after their first draw when "
                   "they take at most this many MiB (about 26 bytes a pixel); 0: draw every time")
    p.add_argument("--batch-size", type=int, default=8, help="images per step (per process under torchrun)")
    p.add_argument("--steps", type=int, default=2000, help="training steps (the schedule's length)")
    p.add_argument("--minutes", type=float, default=0.0,
                   help="stop after this many minutes of training (the schedule then follows the clock)")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    p.add_argument("--lr", type=float, default=0.0, help="peak learning rate (default: 2e-3 adamw, 0.02 sgd)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps, then cosine decay to 0")
    p.add_argument("--eval-every", type=int, default=500, help="evaluate every N steps (0: only at the end)")
    p.add_argument("--flip", type=float, default=0.5, help="horizontal flip probability")
    p.add_argument("--scale-jitter", type=float, nargs=2, default=(0.8, 1.2), metavar=("LOW", "HIGH"))
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (default: torch's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="output folder (default runs/MODEL)")
    p.add_argument("--resume", default="", help="a checkpoint (last.pt) to continue from")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    args = p.parse_args(argv)
    args.config = args.config or MODELS[args.model].configs[0]
    if args.config not in MODELS[args.model].configs:
        p.error(f"--config {args.config!r}: {args.model} has {', '.join(MODELS[args.model].configs)}")
    if args.lr <= 0:
        args.lr = 2e-3 if args.optimizer == "adamw" else 0.02
    args.out = args.out or os.path.join("runs", args.model)
    return args


# ------------------------------------------------------------------ data


# A drawn synthetic image in memory: the float32 image (12 bytes a pixel),
# the int64 class map (8) and up to six uint8 instance masks.
_CACHED_BYTES_PER_PIXEL = 26


def datasets(args: argparse.Namespace) -> tuple[Dataset, Dataset, list[str]]:
    from visionops.data import CLASSES, CocoDetectionFolder, Compose, RandomHorizontalFlip, ScaleJitter, SyntheticShapes

    flip = RandomHorizontalFlip(args.flip)
    augment = Compose([ScaleJitter(tuple(args.scale_jitter)), flip] if MODELS[args.model].scale_jitter else [flip])
    if args.data == "synthetic":
        def fits(images: int) -> bool:
            return images * args.image_size**2 * _CACHED_BYTES_PER_PIXEL <= args.cache_mb * 2**20

        train = SyntheticShapes(args.train_images, args.image_size, split="train", seed=args.seed,
                                transforms=augment, cache=fits(args.train_images))
        val = SyntheticShapes(args.val_images, args.image_size, split="val", seed=args.seed,
                              cache=fits(args.val_images))
        return train, val, list(CLASSES)
    train = CocoDetectionFolder(args.data, transforms=augment)
    if args.val_data:
        val = CocoDetectionFolder(args.val_data)
    else:  # the folder's last images are held out
        n = min(args.val_images, len(train) // 5)
        val = torch.utils.data.Subset(CocoDetectionFolder(args.data), range(len(train) - n, len(train)))
        train = torch.utils.data.Subset(train, range(len(train) - n))
    categories = (train.dataset if isinstance(train, torch.utils.data.Subset) else train).categories
    return train, val, categories


def _to(target: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in target.items()}


def _forever(loader: DataLoader, sampler: DistributedSampler | None, epoch: int):
    while True:
        if sampler is not None:
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


# ------------------------------------------------------------------ schedule, evaluation


def lr_at(fraction: float, step: int, args: argparse.Namespace) -> float:
    """Linear warm-up over the first steps, then cosine to 0 over the run."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    return args.lr * 0.5 * (1 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))


def _shard(data: Dataset, batch_size: int) -> DataLoader:
    """This process's share of `data` (every world-th image)."""
    from visionops.data import detection_collate

    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    return DataLoader(torch.utils.data.Subset(data, list(range(rank, len(data), world))), batch_size=batch_size,
                      collate_fn=detection_collate)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Held-out metrics of `model`: bbox (and segm) mAP for detectors, Dice
    and mean IoU for segmentation. Under torchrun each process takes a share
    and the results are gathered."""
    spec = MODELS[args.model]
    net = model.module if hasattr(model, "module") else model
    was_training = net.training
    net.eval()
    try:
        if spec.task == "segmentation":
            return evaluate_segmentation(net, data, args, device)
        return evaluate_detection(net, data, args, device)
    finally:
        net.train(was_training)


def evaluate_segmentation(net: nn.Module, data: Dataset, args: argparse.Namespace,
                          device: torch.device) -> dict[str, float]:
    """Dice (mean over the foreground classes) and mean IoU (over every
    class, background included), from the confusion counts of the whole
    held-out set (so each class's Dice pools all its pixels)."""
    from visionops.train.registry import _unet_targets

    classes = max(net.num_classes, 2)
    confusion = torch.zeros(classes, classes, dtype=torch.float64)
    for images, targets in _shard(data, args.batch_size):
        logits = net(torch.stack(images).to(device)).cpu()
        pred = (logits[:, 0] > 0).long() if net.num_classes == 1 else logits.argmax(1)
        truth = _unet_targets(net, targets)
        confusion += torch.bincount(truth.flatten() * classes + pred.flatten(),
                                    minlength=classes * classes).view(classes, classes).double()
    if dist.is_initialized():
        dist.all_reduce(confusion)
    tp = confusion.diag()
    fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp
    dice = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
    iou = tp / (tp + fp + fn).clamp(min=1)
    present = (tp + fn) > 0
    return {"dice": float(dice[1:][present[1:]].mean()), "miou": float(iou[present].mean())}


def evaluate_detection(net: nn.Module, data: Dataset, args: argparse.Namespace,
                       device: torch.device) -> dict[str, float]:
    from visionops.metrics import MeanAveragePrecision

    spec = MODELS[args.model]
    masks = spec.masks
    old_threshold = getattr(getattr(net, "transform", None), "mask_threshold", None)
    if masks:
        net.transform.mask_threshold = 0.5
    metrics = {"bbox": MeanAveragePrecision(iou_type="bbox")}
    if masks:
        metrics["segm"] = MeanAveragePrecision(iou_type="segm")
    for images, targets in _shard(data, args.batch_size):
        out = spec.detect(net, [im.to(device) for im in images])
        preds = [{k: v.cpu() for k, v in o.items()} for o in out]
        for p in preds:
            if "masks" in p:
                p["masks"] = p["masks"][:, 0]
        gts = [{"boxes": t["boxes"], "labels": t["labels"], "masks": t["masks"].bool()} for t in targets]
        for m in metrics.values():
            m.update(preds, gts)
    result = {}
    for kind, m in metrics.items():
        r = m.compute()
        result[f"{kind}_map"] = float(r["map"])
        result[f"{kind}_map_50"] = float(r["map_50"])
    if masks:
        net.transform.mask_threshold = old_threshold
    return result


def write_curves(path: str, history: dict[str, list]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [h["step"] for h in history["loss"]]
    ax_loss.plot(steps, [h["loss"] for h in history["loss"]], label="total")
    for key in sorted({k for h in history["loss"] for k in h if k.startswith("loss_")}):
        ax_loss.plot(steps, [h.get(key, float("nan")) for h in history["loss"]], label=key, lw=0.8)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=7)
    for key in sorted({k for h in history["eval"] for k in h if k != "step"}):
        ax_map.plot([h["step"] for h in history["eval"]], [h[key] for h in history["eval"]], marker="o", label=key)
    ax_map.set_xlabel("step")
    ax_map.set_ylabel("held-out metric")
    ax_map.set_ylim(0, 1)
    ax_map.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# ------------------------------------------------------------------ training


def _setup_distributed(device: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device(device)


def train(args: argparse.Namespace) -> dict[str, Any]:
    from visionops.data import detection_collate

    rank, world, device = _setup_distributed(args.device)
    main_process = rank == 0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed + rank)
    spec = MODELS[args.model]
    train_set, val_set, categories = datasets(args)
    num_classes = len(categories) + 1
    torch.manual_seed(args.seed)  # the same initial weights on every process
    model = spec.build(num_classes, args.image_size, args.config).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    step, spent, epoch = 0, 0.0, 0
    history: dict[str, list] = {"loss": [], "eval": []}
    if args.resume:
        state = torch.load(args.resume, map_location=device, weights_only=False)
        if state["model_name"] != args.model:
            raise SystemExit(f"visionops.train: {args.resume} is a {state['model_name']} checkpoint, not {args.model}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, spent, epoch, history = state["step"], state["elapsed"], state["epoch"], state["history"]
        torch.set_rng_state(state["rng"])
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    sampler = DistributedSampler(train_set, seed=args.seed) if world > 1 else None
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=args.workers, collate_fn=detection_collate, drop_last=True,
                        persistent_workers=args.workers > 0)
    batches = _forever(loader, sampler, epoch)
    os.makedirs(args.out, exist_ok=True)
    limit = args.minutes * 60
    # With a time limit the run ends by the clock; the step count is only a cap.
    progress = Progress(0 if limit > 0 else args.steps, every=50, enabled=main_process and not args.quiet)

    def fraction() -> float:
        by_steps = step / args.steps
        return max(by_steps, spent / limit) if limit > 0 else by_steps

    def save() -> None:
        if not main_process:
            return
        net = model.module if hasattr(model, "module") else model
        torch.save({"model_name": args.model, "config": args.config, "num_classes": num_classes,
                    "categories": categories, "image_size": args.image_size, "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(), "step": step, "elapsed": spent, "epoch": epoch,
                    "history": history, "rng": torch.get_rng_state(), "args": vars(args)},
                   os.path.join(args.out, "last.pt"))

    def run_eval() -> None:
        t = time.perf_counter()
        metrics = evaluate(model, val_set, args, device)
        history["eval"].append({"step": step, **metrics})
        progress.message(f"eval at step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                         + f" ({clock(time.perf_counter() - t)})")

    model.train()
    while step < args.steps and not (limit > 0 and spent >= limit):
        t0 = time.perf_counter()
        images, targets = next(batches)
        images = [im.to(device) for im in images]
        targets = [_to(t, device) for t in targets]
        lr = lr_at(fraction(), step, args)
        for group in optimizer.param_groups:
            group["lr"] = lr
        losses = spec.losses(model, images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"visionops.train: the loss is {loss.item()} at step {step}: "
                                     + ", ".join(f"{k} {v.item():.4g}" for k, v in losses.items()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optimizer.step()
        step += 1
        spent += time.perf_counter() - t0
        record = {"step": step, "loss": loss.item(), "lr": lr, **{k: v.item() for k, v in losses.items()}}
        if step % 10 == 0 or step == 1:
            history["loss"].append(record)
        progress.update(step, len(images) * world, {"loss": record["loss"], "lr": lr}, fraction=min(fraction(), 1.0),
                        elapsed=spent)
        if args.eval_every and step % args.eval_every == 0:
            run_eval()
            save()
    if not history["eval"] or history["eval"][-1]["step"] != step:
        run_eval()
    save()
    results = {"model": args.model, "config": args.config, "steps": step, "train_seconds": spent,
               "final": history["eval"][-1], "args": vars(args), "history": history,
               "environment": {"torch": torch.__version__, "processes": world, "device": str(device),
                               "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine()}}
    if main_process:
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        drew = write_curves(os.path.join(args.out, "curves.png"), history)
        progress.message(f"trained {step} steps in {clock(spent)}; final " +
                         ", ".join(f"{k} {v:.4f}" for k, v in history["eval"][-1].items() if k != "step") +
                         f"; wrote {args.out}/last.pt, results.json" + (", curves.png" if drew else
                                                                        " (no matplotlib: no curves.png)"))
    if dist.is_initialized():
        dist.barrier()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        train(args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
