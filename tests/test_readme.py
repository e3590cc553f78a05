"""The README's quickstart runs as written: its Python blocks, in order, in
one namespace (a reader copies them into one session)."""

from __future__ import annotations

import pathlib
import re

import pytest
import torch

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 4, "the README lost its quickstart"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    # The evaluation block's one detection matches its one ground truth.
    assert float(namespace["metric"].compute()["map_50"]) == pytest.approx(1.0)
    # The export block gives fixed-size results.
    assert namespace["keep"].shape == (1, 100) and namespace["kept"].shape == (1,)
    assert namespace["pooled"].shape == (2, 256, 7, 7)
    assert torch.is_tensor(namespace["loss"]) and namespace["loss"].dim() == 0
    # The patched torchvision model ran, and the patch is gone after the block.
    assert namespace["detections"][0]["boxes"].shape[1] == 4
    import torchvision.ops

    assert torchvision.ops.nms is not namespace["visionops"].nms
