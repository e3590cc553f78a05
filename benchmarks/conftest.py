"""pytest-benchmark suites: visionops and torchvision on the same inputs in
the same run. Not part of the test suite (speed is reported, not asserted):

    .venv/bin/python -m pytest benchmarks --benchmark-group-by=group
"""

import pytest
import torch


@pytest.fixture(params=[1, 2], ids=lambda t: f"{t}thr")
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)
