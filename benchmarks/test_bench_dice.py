"""The Dice loss against plain PyTorch, smp and MONAI:
the cases of `python -m visionops.bench dice` (binary and 21-class
softmax, forward+backward)."""

from __future__ import annotations

import pytest
import torch

from visionops.bench import dice

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = dice.cases(dice.ALL, sizes=[256], elements=0, dtype=torch.float32, device=DEVICE)


@pytest.mark.parametrize("impl", ["baseline", "visionops"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.case}-{c.baseline}".replace(" ", "_"))
def test_dice_ops(time_case, case, impl):
    time_case(case, impl)
