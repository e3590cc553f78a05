"""Small inputs, where fixed costs dominate, torchvision (or plain PyTorch)
against visionops: the cases of `python -m visionops.bench small`."""

from __future__ import annotations

import pytest
import torch

from visionops.bench import small

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = small.cases(small.ALL, sizes=small.DEFAULT_SIZES, elements=0, dtype=torch.float32, device=DEVICE)


@pytest.mark.parametrize("impl", ["baseline", "visionops"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.case.replace(' ', '_')}")
def test_small_inputs(time_case, case, impl):
    time_case(case, impl)
