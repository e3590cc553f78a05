"""linear_sum_assignment against scipy (optimal totals, rows, errors), the
batched and list forms, dtypes and layouts, and HungarianMatcher against a
DETR-style reference matcher; opcheck and compile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import visionops

from .. import references as _reference
from ..conftest import require, requires_cuda


def scipy_optimize():
    """scipy.optimize, required by the tests that compare with it (and only
    by them: the CUDA tests run on an image without scipy)."""
    return require("scipy.optimize")


INF = float("inf")


def _random_problem(kind: int, R: int, C: int, g: torch.Generator) -> torch.Tensor:
    if kind == 0:  # many exact ties
        return torch.randint(0, 4, (R, C), generator=g).double()
    if kind == 1:
        return torch.rand(R, C, generator=g, dtype=torch.float64)
    if kind == 2:  # huge and negative
        return torch.randn(R, C, generator=g, dtype=torch.float64) * 1e6
    c = torch.randint(-3, 3, (R, C), generator=g).double()  # forbidden pairs
    c[torch.rand(R, C, generator=g) < 0.3] = INF
    return c


def _scipy(cost: torch.Tensor, maximize: bool = False):
    try:
        return scipy_optimize().linear_sum_assignment(cost.double().cpu().numpy(), maximize=maximize)
    except ValueError as e:
        return str(e)


def _check_against_scipy(cost: torch.Tensor, maximize: bool = False, device: str = "cpu"):
    ref = _scipy(cost, maximize)
    if isinstance(ref, str):
        with pytest.raises(ValueError, match="visionops.linear_sum_assignment: cost matrix"):
            visionops.linear_sum_assignment(cost.to(device), maximize=maximize)
        return
    rows, cols = visionops.linear_sum_assignment(cost.to(device), maximize=maximize)
    assert rows.dtype == torch.int64 and rows.device.type == device
    rows, cols = rows.cpu().numpy(), cols.cpu().numpy()
    c = cost.double().numpy()
    assert len(rows) == min(cost.shape)
    assert np.all(np.diff(rows) > 0) and len(set(cols.tolist())) == len(cols)
    assert c[rows, cols].sum() == pytest.approx(c[ref].sum(), rel=1e-12, abs=1e-12)
    if cost.shape[0] <= cost.shape[1]:
        np.testing.assert_array_equal(rows, ref[0])  # every row is assigned


@pytest.mark.parametrize("kind", range(4))
def test_random_problems_match_scipy(kind, device):
    g = torch.Generator().manual_seed(kind)
    for case in range(300):
        R, C = (int(x) for x in torch.randint(0, 12, (2,), generator=g))
        _check_against_scipy(_random_problem(kind, R, C, g), maximize=case % 5 == 0 and kind != 3, device=device)


def test_maximize_with_forbidden_pairs(device):
    g = torch.Generator().manual_seed(7)
    for _ in range(200):
        c = torch.randint(-3, 3, (6, 8), generator=g).double()
        c[torch.rand(6, 8, generator=g) < 0.3] = -INF  # forbidden when maximizing
        _check_against_scipy(c, maximize=True, device=device)
        _check_against_scipy(c.T.contiguous(), maximize=True, device=device)


def test_larger_problems(device):
    g = torch.Generator().manual_seed(3)
    for R, C in ((200, 200), (50, 300), (300, 40)):
        _check_against_scipy(torch.rand(R, C, generator=g, dtype=torch.float64), device=device)
        _check_against_scipy(torch.randint(0, 10, (R, C), generator=g).double(), device=device)


def test_hand_example():
    # rows 0..2 (workers) to columns (jobs): 1 + 2 + 2 = 5 is the optimum.
    cost = torch.tensor([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    rows, cols = visionops.linear_sum_assignment(cost)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]
    rows, cols = visionops.linear_sum_assignment(cost, maximize=True)
    assert cost[rows, cols].sum().item() == 11.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
                                   torch.int8, torch.uint8])
def test_dtypes(dtype, device):
    # Integer costs are solved as float64 copies on the CPU; 9 x 7 is the
    # transposed problem (more rows than columns), which reads the input.
    g = torch.Generator().manual_seed(1)
    for shape in ((7, 9), (9, 7)):
        for _ in range(50):
            c = (torch.rand(*shape, generator=g) * 20).to(dtype)
            _check_against_scipy(c, device=device)  # scipy solves the same values in float64


def test_non_contiguous_and_transposed(device):
    g = torch.Generator().manual_seed(2)
    base = torch.rand(9, 14, generator=g, dtype=torch.float64)
    for c in (base.T, base[::2, 1::2], base.T[::3]):
        assert not c.is_contiguous()
        _check_against_scipy(c, device=device)


def test_empty(device):
    for shape in ((0, 0), (0, 5), (5, 0)):
        rows, cols = visionops.linear_sum_assignment(torch.zeros(shape, device=device))
        assert rows.numel() == 0 and cols.numel() == 0
    assert visionops.linear_sum_assignment([]) == []
    a = visionops.batched_linear_sum_assignment(torch.zeros(0, 3, 4, device=device))
    assert a.shape == (0, 3)


@pytest.mark.parametrize(
    "cost",
    [[[float("nan"), 1.0]], [[-INF, 1.0], [0.0, 2.0]], [[INF, INF], [1.0, 2.0]], [[INF, 1.0], [INF, 2.0]]],
    ids=["nan", "minus_inf", "forbidden_row", "infeasible"],
)
def test_invalid_and_infeasible_raise_like_scipy(cost, device):
    c = torch.tensor(cost, dtype=torch.float64)
    with pytest.raises(ValueError):
        scipy_optimize().linear_sum_assignment(c.numpy())
    with pytest.raises(ValueError, match="visionops.linear_sum_assignment: cost matrix (contains invalid|is infeasible)"):
        visionops.linear_sum_assignment(c.to(device))


@pytest.mark.parametrize("col", [0, 9, 16, 31, 35, 36])
@pytest.mark.parametrize("value", [float("nan"), -INF])
def test_invalid_entry_anywhere_in_a_wide_row(col, value, device):
    # The first phase reads each row 16 entries at a time, then a tail (37
    # columns: two blocks and 5): an invalid entry is found in either.
    g = torch.Generator().manual_seed(col)
    c = torch.rand(3, 37, generator=g, dtype=torch.float64)
    c[1, col] = value
    with pytest.raises(ValueError, match="visionops.linear_sum_assignment: cost matrix contains invalid"):
        visionops.linear_sum_assignment(c.to(device))
    # and the least entry of a row, wherever it is, is found
    c[1, col] = -5.0
    rows, cols = visionops.linear_sum_assignment(c.to(device))
    assert cols.cpu()[1] == col
    expected = scipy_optimize().linear_sum_assignment(c.numpy())
    assert c[rows.cpu(), cols.cpu()].sum() == c[expected].sum()


@pytest.mark.parametrize("ncol", [3, 5, 13])
@pytest.mark.parametrize("row", [0, 1, 2, 3, 34, 36])
@pytest.mark.parametrize("invalid", ["nan", "inf"])
@pytest.mark.parametrize("maximize", [False, True])
def test_invalid_entry_anywhere_in_a_tall_problem(row, ncol, invalid, maximize, device):
    # A problem with more rows than columns is solved over its columns: on the
    # CPU the first phase reads the rows as they lie, columns in lanes of 8 (a
    # last block shifted back to overlap the one before), 4 or 1, rows in two
    # interleaved sets and a remainder (37 rows: 18 pairs and row 36), and
    # looks for the greatest entries when maximizing (where +inf is invalid).
    sign = -1.0 if maximize else 1.0
    g = torch.Generator().manual_seed(row * 100 + ncol)
    c = torch.rand(37, ncol, generator=g, dtype=torch.float64)
    col = ncol - 2
    c[row, col] = float("nan") if invalid == "nan" else -sign * INF
    with pytest.raises(ValueError, match="visionops.linear_sum_assignment: cost matrix contains invalid"):
        visionops.linear_sum_assignment(c.to(device), maximize=maximize)
    # the best entry of a column, wherever it is, is found: two of them (the
    # first and the last row) tie, and the total is scipy's either way
    c[row, col] = -5.0 * sign
    c[36 if row != 36 else 0, col] = -5.0 * sign
    rows, cols = visionops.linear_sum_assignment(c.to(device), maximize=maximize)
    assert col in cols.tolist()
    expected = scipy_optimize().linear_sum_assignment(c.numpy(), maximize=maximize)
    assert c[rows.cpu(), cols.cpu()].sum() == c[expected].sum()


@pytest.mark.parametrize("maximize", [False, True])
def test_first_row_of_the_best_entry_wins_in_a_tall_problem(maximize):
    # Column j's best entry sits in rows j and j + ncol: the first phase
    # gives column j the first of them (row j), so no two columns collide and
    # that is the assignment. On the CPU the two rows fall in different sets
    # of interleaved rows (even and odd) when ncol is odd, in one otherwise.
    for nrow, ncol in ((9, 1), (9, 4), (17, 7), (41, 8), (41, 11), (100, 30)):
        c = torch.ones(nrow, ncol, dtype=torch.float64)
        j = torch.arange(ncol)
        c[j, j] = c[j + ncol, j] = 2.0 if maximize else 0.0
        rows, cols = visionops.linear_sum_assignment(c, maximize=maximize)
        assert rows.tolist() == j.tolist() and cols.tolist() == j.tolist()


def test_nan_wins_over_infeasible():
    c = torch.tensor([[INF, INF], [float("nan"), 1.0]])
    with pytest.raises(ValueError, match="invalid numeric entries"):
        visionops.linear_sum_assignment(c)
    with pytest.raises(ValueError, match="invalid numeric entries"):
        scipy_optimize().linear_sum_assignment(c.numpy())


def test_batched_with_counts_matches_per_problem_scipy(device):
    g = torch.Generator().manual_seed(5)
    B, Q, T = 16, 30, 12
    cost = torch.rand(B, Q, T, generator=g, dtype=torch.float64)
    cost[:, :, -1] = float("nan")  # padding beyond every count is never read
    cols = torch.randint(0, T, (B,), generator=g)
    rows = torch.randint(0, Q + 1, (B,), generator=g)
    a = visionops.batched_linear_sum_assignment(cost.to(device), rows.to(device), cols.to(device)).cpu()
    assert a.shape == (B, Q)
    for b in range(B):
        block = cost[b, : rows[b], : cols[b]]
        ref_r, ref_c = scipy_optimize().linear_sum_assignment(block.numpy())
        assigned = torch.nonzero(a[b] >= 0).flatten()
        assert (a[b, rows[b]:] == -1).all()
        assert len(assigned) == min(int(rows[b]), int(cols[b]))
        assert block[assigned, a[b, assigned]].sum().item() == pytest.approx(block.numpy()[ref_r, ref_c].sum())


def test_batched_validation(device):
    cost = torch.rand(3, 4, 4, device=device)
    cost[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="cost matrix 1 contains invalid"):
        visionops.batched_linear_sum_assignment(cost, validate=True)
    a = visionops.batched_linear_sum_assignment(cost, validate=False)
    assert (a[1] == -1).all() and (a[0] >= 0).all() and (a[2] >= 0).all()


def test_list_of_matrices(device):
    g = torch.Generator().manual_seed(6)
    mats = [torch.rand(int(r), int(c), generator=g) for r, c in torch.randint(0, 9, (20, 2), generator=g)]
    out = visionops.linear_sum_assignment([m.to(device) for m in mats])
    for m, (r, c) in zip(mats, out):
        ref = scipy_optimize().linear_sum_assignment(m.double().numpy())
        assert m.double()[r.cpu(), c.cpu()].sum().item() == pytest.approx(m.double().numpy()[ref].sum())


def test_bad_arguments():
    with pytest.raises(ValueError, match="cost must be a 2-D matrix, got shape \\[3\\]"):
        visionops.linear_sum_assignment(torch.zeros(3))
    with pytest.raises(ValueError, match="cost must have shape \\[B, R, C\\], got \\[3, 4\\]"):
        visionops.batched_linear_sum_assignment(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="col_counts must have shape \\[B\\] = \\[2\\], got \\[3\\]"):
        visionops.batched_linear_sum_assignment(torch.zeros(2, 3, 4), None, torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="row_counts\\[1\\] must be in \\[0, 3\\], got 4"):
        visionops.batched_linear_sum_assignment(torch.zeros(2, 3, 4), torch.tensor([1, 4]))
    with pytest.raises(RuntimeError, match="col_counts must be an int64 or int32 tensor, got Float"):
        visionops.batched_linear_sum_assignment(torch.zeros(2, 3, 4), None, torch.ones(2))
    with pytest.raises(RuntimeError, match="cost must be a floating point or integer tensor, got Bool"):
        visionops.linear_sum_assignment(torch.zeros(2, 2, dtype=torch.bool))


def test_opcheck_and_compile():
    g = torch.Generator().manual_seed(8)
    cost = torch.rand(4, 6, 5, generator=g)
    counts = torch.tensor([5, 0, 3, 2])
    torch.library.opcheck(torch.ops.visionops.linear_sum_assignment.default, (cost, None, counts, False))
    torch.library.opcheck(torch.ops.visionops.linear_sum_assignment.default, (cost, counts, None, True))
    torch._dynamo.reset()
    f = torch.compile(lambda c, n: torch.ops.visionops.linear_sum_assignment(c, None, n, False)[0], fullgraph=True,
                      backend="aot_eager")
    assert torch.equal(f(cost, counts), visionops.batched_linear_sum_assignment(cost, None, counts))
    torch._dynamo.reset()


# ---------------------------------------------------------------- DETR matcher


def _detr_batch(B: int, Q: int, K: int, g: torch.Generator, dtype=torch.float32):
    logits = torch.randn(B, Q, K, generator=g, dtype=torch.float64).to(dtype)
    pred = torch.cat([torch.rand(B, Q, 2, generator=g) * 0.8 + 0.1, torch.rand(B, Q, 2, generator=g) * 0.3 + 0.02],
                     -1).to(dtype)
    counts = torch.randint(0, 8, (B,), generator=g).tolist()
    targets = [
        {
            "labels": torch.randint(0, K - 1, (n,), generator=g),
            "boxes": torch.cat([torch.rand(n, 2, generator=g) * 0.8 + 0.1, torch.rand(n, 2, generator=g) * 0.3 + 0.02],
                               -1).to(dtype),
        }
        for n in counts
    ]
    return {"pred_logits": logits, "pred_boxes": pred}, targets


def test_matching_cost_matches_float64_reference():
    g = torch.Generator().manual_seed(9)
    outputs, targets = _detr_batch(5, 12, 6, g, dtype=torch.float64)
    counts = [len(t["labels"]) for t in targets]
    cost = visionops.detr_matching_cost(
        outputs["pred_logits"], outputs["pred_boxes"], torch.cat([t["labels"] for t in targets]),
        torch.cat([t["boxes"] for t in targets]), counts, 2.0, 5.0, 2.0,
    )
    assert cost.shape == (5, 12, max(counts)) and cost.dtype == torch.float64
    for b, t in enumerate(targets):
        ref = _reference.detr_matching_cost(outputs["pred_logits"][b], outputs["pred_boxes"][b], t["labels"],
                                            t["boxes"], 2.0, 5.0, 2.0)
        torch.testing.assert_close(cost[b, :, : counts[b]], ref, rtol=1e-12, atol=1e-12)
        assert (cost[b, :, counts[b]:] == 0).all()


def _detr_reference_indices(outputs, targets, w_class, w_bbox, w_giou):
    """DETR's matcher, the way its reference computes it: the whole [B*Q,
    sum T] cost, split per image, scipy per image."""
    B, Q = outputs["pred_logits"].shape[:2]
    prob = outputs["pred_logits"].flatten(0, 1).double().softmax(-1)
    boxes = outputs["pred_boxes"].flatten(0, 1).double()
    tgt_ids = torch.cat([t["labels"] for t in targets])
    tgt = torch.cat([t["boxes"] for t in targets]).double()
    cost = _reference.detr_matching_cost_from_probs(prob, boxes, tgt_ids, tgt, w_class, w_bbox, w_giou)
    cost = cost.view(B, Q, -1)
    sizes = [len(t["boxes"]) for t in targets]
    return cost, [scipy_optimize().linear_sum_assignment(c[i].numpy()) for i, c in enumerate(cost.split(sizes, -1))]


def test_hungarian_matcher_matches_detr_reference(device):
    g = torch.Generator().manual_seed(10)
    matcher = visionops.HungarianMatcher(cost_class=1.0, cost_bbox=5.0, cost_giou=2.0)
    assert "cost_bbox=5.0" in repr(matcher)
    for _ in range(5):
        outputs, targets = _detr_batch(6, 20, 9, g)
        full, ref = _detr_reference_indices(outputs, targets, 1.0, 5.0, 2.0)
        dev_out = {k: v.to(device) for k, v in outputs.items()}
        dev_tgt = [{k: v.to(device) for k, v in t.items()} for t in targets]
        got = matcher(dev_out, dev_tgt)
        sizes = [len(t["boxes"]) for t in targets]
        for b, ((i, j), (ri, rj), block) in enumerate(zip(got, ref, full.split(sizes, -1))):
            assert i.dtype == torch.int64 and len(i) == len(ri) == min(20, sizes[b])
            assert torch.all(i[1:] > i[:-1])
            c = block[b].numpy()
            assert c[i.numpy(), j.numpy()].sum() == pytest.approx(c[ri, rj].sum(), rel=1e-5, abs=1e-5)


def test_matcher_errors():
    with pytest.raises(ValueError, match="all costs can't be 0"):
        visionops.HungarianMatcher(0, 0, 0)
    g = torch.Generator().manual_seed(11)
    outputs, targets = _detr_batch(2, 5, 4, g)
    with pytest.raises(ValueError, match="one target dict per image \\(2\\), got 1"):
        visionops.HungarianMatcher()(outputs, targets[:1])
    bad = [{"labels": torch.tensor([4]), "boxes": torch.rand(1, 4)}, {"labels": torch.zeros(0, dtype=torch.long),
                                                                        "boxes": torch.zeros(0, 4)}]
    # A label outside [0, K): NaN costs in its column (as on CUDA, which cannot check without a
    # host sync), which the matcher reports.
    cost = visionops.detr_matching_cost(outputs["pred_logits"], outputs["pred_boxes"], torch.tensor([4, 1]),
                                        torch.rand(2, 4), [1, 1])
    assert cost[0, :, 0].isnan().all() and not cost[1].isnan().any()
    with pytest.raises(ValueError, match="NaN"):
        visionops.HungarianMatcher()(outputs, bad)
    with pytest.raises(RuntimeError, match="target_boxes must have shape \\[T, 4\\], got \\[2, 3\\]"):
        visionops.detr_matching_cost(outputs["pred_logits"], outputs["pred_boxes"], torch.zeros(2, dtype=torch.long),
                                     torch.zeros(2, 3), [1, 1])
    with pytest.raises(RuntimeError, match="target_counts must sum to the number of targets \\(2\\), got 3"):
        visionops.detr_matching_cost(outputs["pred_logits"], outputs["pred_boxes"], torch.zeros(2, dtype=torch.long),
                                     torch.zeros(2, 4), [1, 2])


def test_matching_cost_opcheck_and_compile():
    g = torch.Generator().manual_seed(12)
    outputs, targets = _detr_batch(3, 7, 5, g)
    labels = torch.cat([t["labels"] for t in targets])
    boxes = torch.cat([t["boxes"] for t in targets])
    counts = [len(t["labels"]) for t in targets]
    args = (outputs["pred_logits"], outputs["pred_boxes"], labels, boxes, counts, 1.0, 5.0, 2.0)
    torch.library.opcheck(torch.ops.visionops.detr_matching_cost.default, args)
    torch._dynamo.reset()
    f = torch.compile(visionops.detr_matching_cost, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(f(*args), visionops.detr_matching_cost(*args))
    torch._dynamo.reset()


@requires_cuda
def test_cuda_batch_never_synchronizes():
    cost = torch.rand(8, 12, 7, device="cuda", dtype=torch.float64)
    counts = torch.randint(0, 8, (8,), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        a = visionops.batched_linear_sum_assignment(cost, None, counts)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    ref = visionops.batched_linear_sum_assignment(cost.cpu(), None, counts.cpu())
    for b in range(8):
        got, exp = a[b].cpu(), ref[b]
        rows = torch.nonzero(got >= 0).flatten()
        assert len(rows) == len(torch.nonzero(exp >= 0))
        block = cost[b].cpu()
        assert block[rows, got[rows]].sum().item() == pytest.approx(
            block[torch.nonzero(exp >= 0).flatten(), exp[exp >= 0]].sum().item())


@requires_cuda
def test_cuda_matching_cost_does_not_sync():
    # The per-image offsets go from pinned memory, non-blocking: no host sync.
    g = torch.Generator().manual_seed(13)
    outputs, targets = _detr_batch(4, 30, 8, g)
    labels = torch.cat([t["labels"] for t in targets]).cuda()
    boxes = torch.cat([t["boxes"] for t in targets]).cuda()
    counts = [len(t["labels"]) for t in targets]
    logits, pred = outputs["pred_logits"].cuda(), outputs["pred_boxes"].cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        cost = visionops.detr_matching_cost(logits, pred, labels, boxes, counts)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    want = visionops.detr_matching_cost(logits.cpu(), pred.cpu(), labels.cpu(), boxes.cpu(), counts)
    torch.testing.assert_close(cost.cpu(), want, rtol=1e-5, atol=1e-5)
    # A label outside [0, K) gives NaN in its column, as on the CPU.
    bad = labels.clone()
    bad[0] = 8
    assert cost.shape[2] > 0
    c = visionops.detr_matching_cost(logits, pred, bad, boxes, counts).cpu()
    w = visionops.detr_matching_cost(logits.cpu(), pred.cpu(), bad.cpu(), boxes.cpu(), counts)
    assert torch.equal(c.isnan(), w.isnan()) and c.isnan().any()
