"""MeanAveragePrecision under torch.distributed (gloo, 2 processes): every
rank gets exactly the single-process result over all images (rank 0's
images first, then rank 1's)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.metrics.test_mean_ap import KEYS, random_set
from visionops.metrics import MeanAveragePrecision

WORLD = 2


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        preds, targets = random_set(torch.Generator().manual_seed(21), n_images=30)
        half = len(preds) // WORLD
        lo, hi = rank * half, (rank + 1) * half if rank < WORLD - 1 else len(preds)
        m = MeanAveragePrecision(class_metrics=True, extended_summary=True)
        for i in range(lo, hi, 4):  # several updates per rank
            m.update(preds[i : min(i + 4, hi)], targets[i : min(i + 4, hi)])
        torch.save(m.compute(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")
def test_two_ranks_get_the_single_process_result(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    preds, targets = random_set(torch.Generator().manual_seed(21), n_images=30)
    single = MeanAveragePrecision(class_metrics=True, extended_summary=True)
    single.update(preds, targets)
    expected = single.compute()
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert set(got) == set(expected)
        for k in KEYS + ["map_per_class", "mar_100_per_class", "classes", "precision", "recall", "scores"]:
            assert torch.equal(got[k], expected[k]), (rank, k)
