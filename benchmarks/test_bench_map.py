"""COCO mAP end to end from per-image tensors against pycocotools,
faster-coco-eval and torchmetrics: the cases of `python -m visionops.bench
map` on a 500-image synthetic set (the CLI's --sizes 5000, COCO val2017's
size, gives the README's figure)."""

from __future__ import annotations

import pytest
import torch

from visionops.bench import map as map_suite

CASES = map_suite.cases(map_suite.ALL, sizes=[500], elements=0, dtype=torch.float32, device="cpu")


@pytest.mark.parametrize("impl", ["baseline", "visionops"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.case}-{c.baseline}".replace(" ", "_"))
def test_map(time_case, case, impl):
    time_case(case, impl)
