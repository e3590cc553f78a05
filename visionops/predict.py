"""``python -m visionops.predict``: a trained model's detections (and masks,
or U-Net's class map) drawn on images, one PNG each.

    python -m visionops.predict runs/mask_rcnn/last.pt image1.png image2.jpg --out predictions/
    python -m visionops.predict runs/faster_rcnn/last.pt --synthetic 8 --score 0.5

The checkpoint is what ``python -m visionops.train`` writes (it names the
model, its configuration, classes and image size). Images are resized to the
model's image size for the model and drawn at their own size.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from torch import Tensor

from visionops.train.registry import MODELS

_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def predict(name: str, model: torch.nn.Module, image: Tensor, size: int) -> dict[str, Tensor]:
    """One image's predictions at its own size. R-CNN models resize inside;
    the others see the image resized to the training size, and their boxes
    (or class map) are scaled back."""
    import torch.nn.functional as F

    spec = MODELS[name]
    if name in ("faster_rcnn", "mask_rcnn"):
        return spec.detect(model, [image])[0]
    h, w = image.shape[-2:]
    small = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    if spec.task == "segmentation":
        logits = model(small[None])
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)[0]
        classes = (logits[0] > 0).long() if logits.shape[0] == 1 else logits.argmax(0)
        return {"semantic": classes}
    pred = spec.detect(model, [small])[0]
    pred["boxes"] = pred["boxes"] * torch.tensor([w / size, h / size, w / size, h / size])
    return pred


def draw_semantic(image: Tensor, classes: Tensor, categories: list[str]) -> Tensor:
    """uint8 [3, H, W]: `image` with each non-background class of `classes` [H, W] tinted."""
    from torchvision.utils import draw_segmentation_masks

    out = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    present = [int(c) for c in classes.unique() if int(c) > 0]
    if not present:
        return out
    masks = torch.stack([classes == c for c in present])
    return draw_segmentation_masks(out, masks, alpha=0.5, colors=[_PALETTE[c % len(_PALETTE)] for c in present])


def load_model(path: str, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    state = torch.load(path, map_location=device, weights_only=False)
    spec = MODELS[state["model_name"]]
    model = spec.build(state["num_classes"], state["image_size"], state["config"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


def draw(image: Tensor, pred: dict[str, Tensor], categories: list[str], score: float) -> Tensor:
    """uint8 [3, H, W]: `image` (float [3, H, W] in [0, 1]) with the boxes,
    labels, scores and masks of `pred` above `score`."""
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    keep = pred["scores"] >= score
    boxes, labels, scores = pred["boxes"][keep], pred["labels"][keep], pred["scores"][keep]
    colours = [_PALETTE[int(lab) % len(_PALETTE)] for lab in labels]
    out = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    if "masks" in pred and keep.any():
        masks = pred["masks"][keep][:, 0]
        out = draw_segmentation_masks(out, masks > 0.5 if masks.dtype != torch.bool else masks, alpha=0.45,
                                      colors=colours)
    names = [f"{categories[int(lab) - 1] if 0 < int(lab) <= len(categories) else int(lab)} {float(s):.2f}"
             for lab, s in zip(labels, scores)]
    if len(boxes):
        out = draw_bounding_boxes(out, boxes, labels=names, colors=colours, width=2)
    return out


def _read(path: str) -> Tensor:
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB")
        data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
        return data.view(rgb.height, rgb.width, 3).permute(2, 0, 1).float() / 255


def _write(path: str, image: Tensor) -> None:
    from PIL import Image

    Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m visionops.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint written by python -m visionops.train")
    p.add_argument("images", nargs="*", help="image files")
    p.add_argument("--synthetic", type=int, default=0, help="also draw this many held-out synthetic images")
    p.add_argument("--score", type=float, default=0.5, help="draw detections scoring at least this")
    p.add_argument("--out", default="predictions", help="folder for the PNGs")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.images and not args.synthetic:
        p.error("give image files, --synthetic N, or both")
    model, state = load_model(args.checkpoint, args.device)
    categories = list(state.get("categories", []))
    items: list[tuple[str, Tensor]] = [(os.path.splitext(os.path.basename(f))[0], _read(f)) for f in args.images]
    if args.synthetic:
        from visionops.data import SyntheticShapes

        val = SyntheticShapes(args.synthetic, state["image_size"], split="test", seed=state["args"].get("seed", 0))
        items += [(f"synthetic_{i:04d}", val[i][0]) for i in range(args.synthetic)]
    os.makedirs(args.out, exist_ok=True)
    with torch.no_grad():
        for name, image in items:
            pred = predict(state["model_name"], model, image.to(args.device), state["image_size"])
            pred = {k: v.cpu() for k, v in pred.items()}
            path = os.path.join(args.out, f"{name}.png")
            if "semantic" in pred:
                _write(path, draw_semantic(image, pred["semantic"], categories))
                print(f"{path}: classes {sorted(set(pred['semantic'].unique().tolist()) - {0})}")
            else:
                _write(path, draw(image, pred, categories, args.score))
                print(f"{path}: {int((pred['scores'] >= args.score).sum())} detections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
