"""The fused losses, torchvision against visionops:
the cases of `python -m visionops.bench losses` (sigmoid_focal_loss
forward and forward+backward)."""

from __future__ import annotations

import pytest
import torch

from visionops.bench import losses

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = losses.cases(losses.ALL, sizes=losses.DEFAULT_SIZES, elements=0, dtype=torch.float32, device=DEVICE)


@pytest.mark.parametrize("impl", ["baseline", "visionops"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.case.replace(' ', '_')}")
def test_loss_ops(time_case, case, impl):
    time_case(case, impl)
