"""YOLO decoding against plain PyTorch:
the cases of `python -m visionops.bench yolo` (a YOLOv5 head,
640 x 640, batch 16, 80 classes)."""

from __future__ import annotations

import pytest
import torch

from visionops.bench import yolo

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = yolo.cases(yolo.ALL, sizes=[320], elements=0, dtype=torch.float32, device=DEVICE)


@pytest.mark.parametrize("impl", ["baseline", "visionops"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.case}-{c.baseline}".replace(" ", "_"))
def test_yolo_ops(time_case, case, impl):
    time_case(case, impl)
