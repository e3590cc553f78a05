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


@pytest.fixture
def time_case(benchmark, threads):
    """Times one side of a `visionops.bench` case: impl 'visionops' or
    'baseline' (torchvision's op, or the implementation the case names)."""

    def run(case, impl: str) -> None:
        fn = case.visionops if impl == "visionops" else case.run_baseline
        if fn is None:
            pytest.skip(f"{case.baseline} is not installed or does not support this case")
        benchmark.group = f"{case.op} {case.case} vs {case.baseline} {threads} thread(s)"
        timed = fn
        if torch.cuda.is_available():  # the suites run on the GPU where there is one
            # Synchronize inside the timed function: otherwise each round
            # measures only the launches, and the kernels run on unmeasured.
            def timed():
                fn()
                torch.cuda.synchronize()

            torch.cuda.synchronize()
        if impl == "baseline" and case.baseline_runs:
            # pycocotools takes seconds a run: a few rounds, not autoranging.
            benchmark.pedantic(timed, rounds=case.baseline_runs, iterations=1)
        else:
            benchmark(timed)

    return run
