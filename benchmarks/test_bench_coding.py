"""Box coding and anchors, torchvision against visionops:
the cases of `python -m visionops.bench coding` (BoxCoder decode and
encode, AnchorGenerator on a 5-level FPN)."""

from __future__ import annotations

import pytest
import torch

from visionops.bench import coding

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = coding.cases(coding.ALL, sizes=coding.DEFAULT_SIZES, elements=0, dtype=torch.float32, device=DEVICE)


@pytest.mark.parametrize("impl", ["baseline", "visionops"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.case.replace(' ', '_')}")
def test_coding_ops(time_case, case, impl):
    time_case(case, impl)
