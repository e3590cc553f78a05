"""NMS, torchvision against visionops: the cases of `python -m visionops.bench
--ops nms,batched_nms` (uniform and clustered detector boxes, 80 classes for
batched_nms)."""

from __future__ import annotations

import pytest
import torch

from visionops.bench import nms

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = nms.cases(nms.ALL, sizes=[1000, 20000], elements=0, dtype=torch.float32, device=DEVICE)


@pytest.mark.parametrize("impl", ["baseline", "visionops"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.case.replace(' ', '_')}")
def test_nms_ops(time_case, case, impl):
    time_case(case, impl)
