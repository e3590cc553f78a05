"""RoI Align, RoI Pool and MultiScaleRoIAlign, torchvision against visionops:
the cases of `python -m visionops.bench roi` (Faster R-CNN and Mask R-CNN
shapes, a 4-level FPN)."""

from __future__ import annotations

import pytest
import torch

from visionops.bench import roi

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = roi.cases(roi.ALL, sizes=roi.DEFAULT_SIZES, elements=0, dtype=torch.float32, device=DEVICE)


@pytest.mark.parametrize("impl", ["baseline", "visionops"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.op}-{c.case.replace(' ', '_')}")
def test_roi_ops(time_case, case, impl):
    time_case(case, impl)
