"""The benchmark CLI (the README's main job) on a tiny case: its table, its
JSON (with the environment) and its plot. Times are not checked."""

from __future__ import annotations

import builtins
import json

import pytest

from visionops.bench.__main__ import main
from visionops.bench.plot import plot

from .conftest import require


def _check_ratios(rows: list[dict]) -> None:
    # Every row with a baseline reports speedup = baseline time / our time.
    for r in rows:
        assert r["visionops_ms"] > 0
        assert r["baseline_ms"] is not None and r["baseline_ms"] > 0, r
        assert r["speedup"] == pytest.approx(r["baseline_ms"] / r["visionops_ms"], rel=1e-9), r


def test_bench_writes_table_json_and_plot(tmp_path, capsys):
    require("torchvision")
    require("matplotlib")
    out = tmp_path / "bench.json"
    code = main(["boxes", "--ops", "box_iou,complete_box_iou_loss", "--sizes", "40", "--elements", "100",
                 "--threads", "1", "--min-run-time", "0.01", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "baseline ms" in table and "box_iou" in table and "40x40" in table
    data = json.loads(out.read_text())
    env = data["environment"]
    assert env["torch"] and env["cpu"] and env["git_commit"]
    ops = {(r["op"], r["case"]) for r in data["results"]}
    assert ("box_iou", "40x40") in ops and ("complete_box_iou_loss", "100 fwd+bwd") in ops
    _check_ratios(data["results"])
    png = plot(str(out), str(tmp_path / "bench.png"))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_unknown_suite_and_op_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["no-such-suite"])
    assert main(["boxes", "--ops", "nms2", "--threads", "1"]) == 2
    assert "unknown op 'nms2'" in capsys.readouterr().err


def test_ops_pick_their_suites(tmp_path):
    # --ops names ops of any suite; each suite runs those that are its own.
    out = tmp_path / "b.json"
    assert main(["--ops", "box_area,nms", "--sizes", "50", "--elements", "100", "--threads", "1",
                 "--min-run-time", "0.01", "--json", str(out)]) == 0

    rows = json.loads(out.read_text())["results"]
    assert {r["op"] for r in rows} == {"box_area", "nms"}
    _check_ratios(rows)


def test_map_and_hungarian_suites_run(tmp_path):
    out = tmp_path / "m.json"
    assert main(["map", "hungarian", "--sizes", "8", "--threads", "1", "--min-run-time", "0.01", "--json",
                 str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert {r["op"] for r in rows} == {"mean_average_precision", "linear_sum_assignment", "hungarian_matcher"}
    assert {r["baseline"] for r in rows} >= {"pycocotools", "scipy loop", "DETR matcher"}
    _check_ratios([r for r in rows if r["baseline_ms"] is not None])


def test_small_suite_runs_every_op(tmp_path):
    # The small-input cases: every op of the suite, each against its baseline,
    # at the suite's fixed sizes whatever --sizes says.
    require("torchvision")
    from visionops.bench import small

    out = tmp_path / "s.json"
    assert main(["small", "--sizes", "500", "--threads", "1", "--min-run-time", "0.01", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert {r["op"] for r in rows} == set(small.ALL)
    assert all(r["case"].startswith("small ") and "500" not in r["case"] for r in rows), rows
    _check_ratios(rows)


def test_png_without_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(SystemExit, match=r"pip install 'visionops\[plot\]'"):
        main(["nms-profile", "--sizes", "10", "--png", str(tmp_path / "nms.png")])


def test_bench_models_runs_every_part(tmp_path, capsys):
    """python -m visionops.bench models on tiny images: the R-CNN parts and
    the YOLO, DETR and U-Net swaps each give a row and land in the JSON."""
    require("torchvision")
    require("scipy")
    out = tmp_path / "models.json"
    code = main(["models", "--models", "", "--rcnn", "faster", "--zoo", "yolo,detr,unet", "--threads", "1",
                 "--size", "64", "--batch", "1", "--repeats", "1", "--zoo-size", "64", "--zoo-batch", "2",
                 "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "detection work" in table and "training step" in table
    data = json.loads(out.read_text())
    parts = {r["part"] for r in data["rcnn_rows"]}
    assert parts == {"total", "backbone+FPN", "after backbone", "detection work", "training step"}
    zoo = {(r["model"], r["part"]) for r in data["zoo_rows"]}
    assert zoo == {(m, p) for m in ("yolo", "detr", "unet") for p in ("inference", "training step")}
    for r in data["rcnn_rows"] + data["zoo_rows"]:
        assert r["speedup"] > 0
