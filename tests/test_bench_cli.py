"""The benchmark CLI (the README's main job) on a tiny case: its table, its
JSON (with the environment) and its plot. Times are not checked."""

from __future__ import annotations

import json

import pytest

from visionops.bench.__main__ import main
from visionops.bench.plot import plot


def test_bench_writes_table_json_and_plot(tmp_path, capsys):
    pytest.importorskip("torchvision", reason="the benchmark compares against torchvision")
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib")
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
    assert all(r["visionops_ms"] > 0 and r["speedup"] > 0 for r in data["results"])
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
    import json

    ops = {r["op"] for r in json.loads(out.read_text())["results"]}
    assert ops == {"box_area", "nms"}


def test_map_and_hungarian_suites_run(tmp_path):
    import json

    out = tmp_path / "m.json"
    assert main(["map", "hungarian", "--sizes", "8", "--threads", "1", "--min-run-time", "0.01", "--json",
                 str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert {r["op"] for r in rows} == {"mean_average_precision", "linear_sum_assignment", "hungarian_matcher"}
    assert {r["baseline"] for r in rows} >= {"pycocotools", "scipy loop", "DETR matcher"}
    assert all(r["speedup"] > 0 for r in rows)
