"""Hungarian matching on a DETR batch: batched linear_sum_assignment against
a scipy loop, HungarianMatcher against DETR's reference matcher (the cases
of `python -m visionops.bench hungarian`)."""

from __future__ import annotations

import pytest
import torch

from visionops.bench import hungarian

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = hungarian.cases(hungarian.ALL, sizes=[64], elements=0, dtype=torch.float32, device=DEVICE)


@pytest.mark.parametrize("impl", ["baseline", "visionops"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.case}-{c.baseline}".replace(" ", "_"))
def test_hungarian(time_case, case, impl):
    time_case(case, impl)
