"""python -m visionops.train and python -m visionops.predict: a few steps of
each R-CNN model on synthetic data and on a COCO-format folder, the outputs
they promise, --resume, DistributedDataParallel with 2 CPU processes
(gloo), and predict's PNGs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from ..conftest import require

require("torchvision.models.detection")

from visionops.train import main as train_main

TINY = ["--steps", "4", "--train-images", "16", "--val-images", "4", "--batch-size", "2", "--image-size", "96",
        "--eval-every", "2", "--warmup", "2", "--quiet", "--threads", "1"]


def _results(out) -> dict:
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("model", ["faster_rcnn", "mask_rcnn"])
def test_train_writes_checkpoint_results_and_curves(model, tmp_path):
    out = tmp_path / model
    assert train_main([model, *TINY, "--out", str(out)]) == 0
    r = _results(out)
    assert r["steps"] == 4 and [e["step"] for e in r["history"]["eval"]] == [2, 4]
    keys = {"bbox_map", "bbox_map_50"} | ({"segm_map", "segm_map_50"} if model == "mask_rcnn" else set())
    assert keys <= set(r["final"]) and all(0 <= r["final"][k] <= 1 for k in keys)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in r["history"]["loss"])
    assert (out / "last.pt").exists()
    pytest.importorskip("matplotlib", reason="curves.png needs matplotlib")
    assert (out / "curves.png").stat().st_size > 0


def test_resume_continues_the_run(tmp_path):
    out = tmp_path / "run"
    train_main(["faster_rcnn", *TINY, "--out", str(out)])
    first = torch.load(out / "last.pt", weights_only=False)
    args = [a if a != "4" else "6" for a in TINY]  # --steps 6
    train_main(["faster_rcnn", *args, "--out", str(out), "--resume", str(out / "last.pt")])
    r = _results(out)
    assert r["steps"] == 6
    assert [e["step"] for e in r["history"]["eval"]] == [2, 4, 6]
    second = torch.load(out / "last.pt", weights_only=False)
    assert (first["step"], second["step"]) == (4, 6)
    assert second["history"]["eval"][:2] == first["history"]["eval"]  # the first run's history carried on
    with pytest.raises(SystemExit, match="is a faster_rcnn checkpoint, not mask_rcnn"):
        train_main(["mask_rcnn", *args, "--out", str(tmp_path / "x"), "--resume", str(out / "last.pt")])


def test_train_on_a_coco_folder(tmp_path):
    from visionops.data import SyntheticShapes, export_coco

    export_coco(SyntheticShapes(12, 96, seed=3), tmp_path / "coco")
    out = tmp_path / "run"
    assert train_main(["mask_rcnn", *TINY, "--data", str(tmp_path / "coco"), "--out", str(out)]) == 0
    assert "segm_map" in _results(out)["final"]


@pytest.mark.parametrize("model", ["faster_rcnn", "yolo", "detr", "unet"])
def test_distributed_two_cpu_processes(model, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:  # a free port for the rendezvous (torchrun does not take 0)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           "-m", "visionops.train", model, *TINY, "--out", str(out), "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    r = _results(out)
    assert r["environment"]["processes"] == 2 and r["steps"] == 4
    assert ("dice" if model == "unet" else "bbox_map_50") in r["final"]


@pytest.mark.parametrize("model", ["mask_rcnn", "yolo", "detr", "unet"])
def test_predict_draws_pngs(model, tmp_path):
    from PIL import Image

    from visionops.data import SyntheticShapes
    from visionops.predict import _write
    from visionops.predict import main as predict_main

    out = tmp_path / "run"
    train_main([model, *TINY, "--out", str(out)])
    image = SyntheticShapes(1, (80, 120), seed=9)[0][0]
    _write(str(tmp_path / "own.png"), (image * 255).round().to(torch.uint8))
    pngs = tmp_path / "png"
    args = [str(out / "last.pt"), str(tmp_path / "own.png"), "--synthetic", "2", "--score", "0.0", "--out", str(pngs)]
    assert predict_main(args) == 0
    files = sorted(os.listdir(pngs))
    assert files == ["own.png", "synthetic_0000.png", "synthetic_0001.png"]
    with Image.open(pngs / files[1]) as im:
        assert im.size == (96, 96) and im.mode == "RGB"
    with Image.open(pngs / "own.png") as im:  # drawn at the image's own size
        assert im.size == (120, 80)


@pytest.mark.parametrize("model", ["yolo", "detr", "unet"])
def test_train_the_other_models(model, tmp_path):
    out = tmp_path / model
    assert train_main([model, *TINY, "--out", str(out)]) == 0
    final = _results(out)["final"]
    keys = {"dice", "miou"} if model == "unet" else {"bbox_map", "bbox_map_50"}
    assert keys <= set(final) and all(0 <= final[k] <= 1 for k in keys)
