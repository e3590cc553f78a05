"""The box family, torchvision against visionops. The cases are those of
`python -m visionops.bench boxes`."""

from __future__ import annotations

import pytest
import torch

from visionops.bench import boxes

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = boxes.cases(boxes.ALL, sizes=[1000, 4000], elements=200_000, dtype=torch.float32, device=DEVICE)


@pytest.mark.parametrize("impl", ["baseline", "visionops"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.case.replace(' ', '_')}")
def test_box_ops(time_case, case, impl):
    time_case(case, impl)
