"""Hungarian matching: scipy's ``linear_sum_assignment`` as a native op,
batched, and DETR's ``HungarianMatcher`` on top of it.

The solver (csrc/matching/math.h) is the shortest augmenting path method
scipy uses, run in double precision whatever the input dtype; it finds the
same optimal total cost as scipy, and the same assignment except possibly
where several assignments are optimal. A batch of problems is one native call
(parallel over problems on the CPU, one launch and no host sync on CUDA).

Entries, as scipy: NaN and -inf (+inf when maximizing) are invalid; +inf
(-inf when maximizing) forbids a pair, and a problem that cannot avoid a
forbidden pair is infeasible. Both raise ValueError, except in
``batched_linear_sum_assignment`` on CUDA without ``validate``, which does
not synchronize and leaves such problems' rows at -1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from visionops._checks import LIB, check_same_dtype_device, dtype_name

__all__ = [
    "HungarianMatcher",
    "batched_linear_sum_assignment",
    "detr_matching_cost",
    "linear_sum_assignment",
]

_OP = "visionops.linear_sum_assignment"
_STATUS_MESSAGES = {
    1: "contains invalid numeric entries (NaN, or -inf when minimizing, +inf when maximizing)",
    2: "is infeasible (every complete assignment uses a forbidden entry)",
}


def _raise_on_status(status: Tensor, batched: bool) -> None:
    if bool(status.any()):
        b = int(torch.nonzero(status)[0, 0])
        which = f"cost matrix {b}" if batched else "cost matrix"
        raise ValueError(f"{_OP}: {which} {_STATUS_MESSAGES[int(status[b])]}")


def _as_tensor(cost) -> Tensor:
    return cost if isinstance(cost, Tensor) else torch.as_tensor(cost)


def batched_linear_sum_assignment(
    cost: Tensor,
    row_counts: Tensor | None = None,
    col_counts: Tensor | None = None,
    *,
    maximize: bool = False,
    validate: bool | None = None,
) -> Tensor:
    """Solves a batch of rectangular assignment problems in one call.

    Args:
        cost (Tensor[B, R, C]): the cost matrices, any floating point or
            integer dtype, padded: problem b is ``cost[b, :row_counts[b],
            :col_counts[b]]``.
        row_counts, col_counts (Tensor[B], int64 or int32, optional): the rows
            and columns of each problem (all of them when None). A DETR batch
            passes the number of targets of each image as ``col_counts``.
        maximize (bool): find the assignment of largest total instead.
        validate (bool, optional): raise ValueError for a problem with invalid
            entries or no feasible assignment. Default: True on the CPU, False
            on CUDA, where checking would synchronize with the host; unchecked,
            such a problem's rows are all -1.

    Returns:
        Tensor[B, R] (int64): the column assigned to each row, -1 for rows
        left unassigned (a problem with more rows than columns assigns only
        ``col_counts[b]`` of them).
    """
    if not isinstance(cost, Tensor):
        cost = torch.as_tensor(cost)
    # The overload itself, not the packet: this is called every training step.
    assignment, status = torch.ops.visionops.linear_sum_assignment.default(cost, row_counts, col_counts, maximize)
    if validate if validate is not None else not cost.is_cuda:
        _raise_on_status(status, batched=True)
    return assignment


def _pairs(assignment: Tensor) -> tuple[Tensor, Tensor]:
    rows = torch.nonzero(assignment >= 0).flatten()
    return rows, assignment[rows]


def linear_sum_assignment(
    cost: Tensor | Sequence[Tensor], maximize: bool = False
) -> tuple[Tensor, Tensor] | list[tuple[Tensor, Tensor]]:
    """scipy.optimize.linear_sum_assignment on tensors.

    Args:
        cost (Tensor[R, C], or a list of them): the cost matrix; a list of
            matrices of any shapes is solved in one native call.
        maximize (bool): find the assignment of largest total instead.

    Returns:
        (row_ind, col_ind), int64 tensors of min(R, C) entries on cost's
        device, rows ascending, as scipy returns them; a list of such pairs
        for a list of matrices. ``cost[row_ind, col_ind].sum()`` is the
        optimal total.

    Raises:
        ValueError: a matrix that is not 2-D, has invalid entries or no
        feasible assignment.
    """
    if isinstance(cost, (list, tuple)):
        mats = [_as_tensor(c) for c in cost]
        for k, c in enumerate(mats):
            if c.dim() != 2:
                raise ValueError(f"{_OP}: cost matrix {k} must be 2-D, got shape {list(c.shape)}")
        if not mats:
            return []
        rows = torch.tensor([c.shape[0] for c in mats], dtype=torch.long)
        cols = torch.tensor([c.shape[1] for c in mats], dtype=torch.long)
        R, C = int(rows.max()), int(cols.max())
        padded = mats[0].new_zeros((len(mats), R, C), dtype=torch.result_type(mats[0], mats[0]))
        for k, c in enumerate(mats):
            padded[k, : c.shape[0], : c.shape[1]] = c
        device = padded.device
        assignment = batched_linear_sum_assignment(
            padded, rows.to(device), cols.to(device), maximize=maximize, validate=True
        )
        return [_pairs(assignment[k, : c.shape[0]]) for k, c in enumerate(mats)]
    cost = _as_tensor(cost)
    if cost.dim() != 2:
        raise ValueError(f"{_OP}: cost must be a 2-D matrix, got shape {list(cost.shape)}")
    assignment, status = torch.ops.visionops.linear_sum_assignment(cost.unsqueeze(0), None, None, maximize)
    _raise_on_status(status, batched=False)
    return _pairs(assignment[0])


def detr_matching_cost(
    logits: Tensor,
    pred_boxes: Tensor,
    target_labels: Tensor,
    target_boxes: Tensor,
    target_counts: Sequence[int],
    class_weight: float = 1.0,
    bbox_weight: float = 1.0,
    giou_weight: float = 1.0,
) -> Tensor:
    """DETR's matching cost of each image's queries against its own targets.

    ``class_weight * -softmax(logits)[label] + bbox_weight * L1 +
    giou_weight * -GIoU``, boxes in (cx, cy, w, h).

    Args:
        logits (Tensor[B, Q, K]): class logits (K includes DETR's no-object
            class).
        pred_boxes (Tensor[B, Q, 4]): predicted boxes, (cx, cy, w, h).
        target_labels (Tensor[T], int64): every image's target classes,
            concatenated. A label outside [0, K) gives NaN costs in its
            column, on every device (CUDA could not check it without a host
            sync), so linear_sum_assignment and HungarianMatcher report the
            problem (ValueError) instead of matching it.
        target_boxes (Tensor[T, 4]): their boxes, (cx, cy, w, h).
        target_counts (list of B ints): targets per image.

    Returns:
        Tensor[B, Q, max(target_counts)]: image b's cost block in
        ``[b, :, :target_counts[b]]``, zeros beyond; float32, or float64 for
        float64 inputs.
    """
    return torch.ops.visionops.detr_matching_cost(
        logits, pred_boxes, target_labels, target_boxes, list(target_counts), class_weight, bbox_weight,
        giou_weight,
    )


class HungarianMatcher(nn.Module):
    """DETR's HungarianMatcher: a one-to-one assignment of queries to targets
    per image, minimizing the weighted class, L1 and GIoU costs.

    Only each image's own [Q, T_b] block of the cost is computed (DETR's
    reference builds the whole [B*Q, sum T_b] matrix), and every image is
    solved in the same native call.

    Args:
        cost_class, cost_bbox, cost_giou (float): the weights of the terms.
    """

    def __init__(self, cost_class: float = 1.0, cost_bbox: float = 1.0, cost_giou: float = 1.0):
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("visionops.HungarianMatcher: all costs can't be 0")
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou

    @torch.no_grad()
    def forward(self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]]) -> list[tuple[Tensor, Tensor]]:
        """outputs: ``pred_logits`` [B, Q, K] and ``pred_boxes`` [B, Q, 4]
        (cx, cy, w, h); targets: B dicts of ``labels`` [T_b] and ``boxes``
        [T_b, 4]. Returns B pairs (query indices, target indices), int64 on
        the CPU, min(Q, T_b) entries each, queries ascending (as DETR)."""
        logits, pred_boxes = outputs["pred_logits"], outputs["pred_boxes"]
        if len(targets) != logits.shape[0]:
            raise ValueError(
                f"visionops.HungarianMatcher: one target dict per image ({logits.shape[0]}), got {len(targets)}"
            )
        counts = [int(t["boxes"].shape[0]) for t in targets]
        labels = torch.cat([t["labels"] for t in targets]) if targets else logits.new_zeros(0, dtype=torch.long)
        boxes = torch.cat([t["boxes"] for t in targets]) if targets else logits.new_zeros(0, 4)
        cost = detr_matching_cost(
            logits, pred_boxes, labels.to(logits.device), boxes.to(logits.device, logits.dtype), counts,
            self.cost_class, self.cost_bbox, self.cost_giou,
        )
        col_counts = torch.tensor(counts, dtype=torch.long).to(cost.device)
        assignment = batched_linear_sum_assignment(cost, None, col_counts, validate=True).cpu()
        return [_pairs(a) if c else (a.new_zeros(0), a.new_zeros(0)) for a, c in zip(assignment, counts)]

    def extra_repr(self) -> str:
        return f"cost_class={self.cost_class}, cost_bbox={self.cost_bbox}, cost_giou={self.cost_giou}"


# ================================================================= dispatcher registrations
# Fake kernels run csrc/matching/args.h's checks with the same messages.


@torch.library.register_fake(LIB + "linear_sum_assignment")
def _linear_sum_assignment_fake(cost, row_counts=None, col_counts=None, maximize=False):
    op = "visionops.linear_sum_assignment"
    torch._check_value(cost.dim() == 3, lambda: f"{op}: cost must have shape [B, R, C], got {list(cost.shape)}")
    torch._check(
        cost.dtype.is_floating_point or (not cost.dtype.is_complex and cost.dtype != torch.bool),
        lambda: f"{op}: cost must be a floating point or integer tensor, got {dtype_name(cost.dtype)}",
    )
    for name, c in (("row_counts", row_counts), ("col_counts", col_counts)):
        if c is None:
            continue
        torch._check_value(
            c.dim() == 1 and c.shape[0] == cost.shape[0],
            lambda name=name, c=c: f"{op}: {name} must have shape [B] = [{cost.shape[0]}], got {list(c.shape)}",
        )
        torch._check(
            c.dtype in (torch.int64, torch.int32),
            lambda name=name, c=c: f"{op}: {name} must be an int64 or int32 tensor, got {dtype_name(c.dtype)}",
        )
        torch._check(
            c.device == cost.device,
            lambda name=name, c=c: f"{op}: {name} and cost must be on the same device, got {c.device} and "
            f"{cost.device}",
        )
    B, R = cost.shape[0], cost.shape[1]
    return cost.new_empty((B, R), dtype=torch.long), cost.new_empty((B,), dtype=torch.int32)


@torch.library.register_fake(LIB + "detr_matching_cost")
def _detr_matching_cost_fake(logits, pred_boxes, target_labels, target_boxes, target_counts, class_weight=1.0,
                             bbox_weight=1.0, giou_weight=1.0):
    name = "detr_matching_cost"
    op = "visionops." + name
    torch._check(
        logits.dim() == 3 and logits.shape[2] > 0,
        lambda: f"{op}: logits must have shape [B, Q, K] with K >= 1, got {list(logits.shape)}",
    )
    torch._check(
        logits.dtype.is_floating_point,
        lambda: f"{op}: logits must be a floating point tensor, got {dtype_name(logits.dtype)}",
    )
    B, Q = logits.shape[0], logits.shape[1]
    torch._check(
        pred_boxes.dim() == 3 and pred_boxes.shape[0] == B and pred_boxes.shape[1] == Q and pred_boxes.shape[2] == 4,
        lambda: f"{op}: pred_boxes must have shape [B, Q, 4] = [{B}, {Q}, 4], got {list(pred_boxes.shape)}",
    )
    check_same_dtype_device(logits, pred_boxes, name, "logits", "pred_boxes")
    torch._check(
        target_boxes.dim() == 2 and target_boxes.shape[1] == 4,
        lambda: f"{op}: target_boxes must have shape [T, 4], got {list(target_boxes.shape)}",
    )
    check_same_dtype_device(logits, target_boxes, name, "logits", "target_boxes")
    T = target_boxes.shape[0]
    torch._check(
        target_labels.dim() == 1 and target_labels.shape[0] == T,
        lambda: f"{op}: target_labels must have shape [T] = [{T}], got {list(target_labels.shape)}",
    )
    torch._check(
        target_labels.dtype in (torch.int64, torch.int32),
        lambda: f"{op}: target_labels must be an int64 or int32 tensor, got {dtype_name(target_labels.dtype)}",
    )
    torch._check(
        target_labels.device == logits.device,
        lambda: f"{op}: target_labels and logits must be on the same device, got {target_labels.device} and "
        f"{logits.device}",
    )
    torch._check(
        len(target_counts) == B,
        lambda: f"{op}: target_counts must have one count per image ({B}), got {len(target_counts)}",
    )
    for c in target_counts:
        torch._check(c >= 0, lambda c=c: f"{op}: target_counts must be non-negative, got {c}")
    total = sum(target_counts)
    torch._check(
        total == T, lambda: f"{op}: target_counts must sum to the number of targets ({T}), got {total}"
    )
    most = max(target_counts, default=0)
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    return logits.new_empty((B, Q, most), dtype=dtype)
