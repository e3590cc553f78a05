"""nms and batched_nms: exactly torchvision's kept indices, in order."""

from __future__ import annotations

import pytest
import torch

import visionops
from visionops._extension import _C

from ..conftest import require, requires_cuda, run_python

tv_ops = require("torchvision.ops")


def uniform_boxes(n: int, g: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """Detector-like boxes: centres uniform in a 1333 x 800 image, sides 10 to 300."""
    centre = torch.rand(n, 2, generator=g) * torch.tensor([1333.0, 800.0])
    size = 10 + torch.rand(n, 2, generator=g) * 290
    return torch.cat([centre - size / 2, centre + size / 2], dim=1).to(dtype)


def clustered_boxes(n: int, g: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """n // 20 objects with 20 jittered copies each (what a detector emits)."""
    objects = uniform_boxes((n + 19) // 20, g)
    copies = objects.repeat_interleave(20, dim=0)[:n]
    side = (copies[:, 2:] - copies[:, :2]).repeat(1, 2)
    return (copies + (torch.rand(copies.shape, generator=g) - 0.5) * 0.15 * side).to(dtype)


def random_case(seed: int):
    """One of the layouts below, with scores that may tie."""
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(0, 300, (1,), generator=g))
    kind = seed % 6
    if kind == 0:
        boxes = uniform_boxes(n, g)
    elif kind == 1:
        boxes = clustered_boxes(n, g)
    elif kind == 2:  # exact duplicates
        boxes = uniform_boxes(n // 4 + 1, g).repeat(4, 1)[:n]
    elif kind == 3:  # negative coordinates
        boxes = uniform_boxes(n, g) - torch.tensor([700.0, 400.0, 700.0, 400.0])
    elif kind == 4:  # huge coordinates, small boxes
        boxes = uniform_boxes(n, g) * 0.01 + 1e6
    else:  # a few boxes stacked on one spot, tiny to huge
        boxes = clustered_boxes(n, g) * (1 + 10 * torch.rand(n, 1, generator=g))
    scores = torch.rand(n, generator=g)
    if seed % 3 == 0:  # many tied scores
        scores = (scores * 5).round() / 5
    threshold = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0][seed % 7]
    return boxes, scores, threshold


def per_class_torchvision(boxes, scores, idxs, threshold):
    """torchvision's nms within each class, merged by score then index."""
    kept = []
    for c in idxs.unique():
        members = (idxs == c).nonzero().flatten()
        kept += members[tv_ops.nms(boxes[members], scores[members], threshold)].tolist()
    kept.sort(key=lambda i: (-scores[i].item(), i))
    return torch.tensor(kept, dtype=torch.int64)


# ----------------------------------------------------------------- golden


def test_lecture_notes_worked_example():
    # The lecture notes' NMS example: five boxes A-E on one car, scored 0.95 to 0.70: IoU(A,B)=0.8, IoU(A,C)=0.2,
    # IoU(A,D)=0.7, IoU(A,E)=0.1, IoU(C,E)=0.15. Threshold 0.5 keeps A, C, E.
    # Built as unit-height strips, where IoU is overlap / union of intervals.
    e0, e1 = 260 / 33, 700 / 33
    boxes = torch.tensor(
        [[0, 0, 10, 1], [0, 0, 8, 1], [8, 0, 10, 1], [0, 0, 7, 1], [e0, 0, e1, 1]], dtype=torch.float64
    )
    scores = torch.tensor([0.95, 0.90, 0.80, 0.75, 0.70], dtype=torch.float64)
    iou = visionops.box_iou(boxes, boxes)
    for (i, j), want in {(0, 1): 0.8, (0, 2): 0.2, (0, 3): 0.7, (0, 4): 0.1, (2, 4): 0.15}.items():
        assert iou[i, j].item() == pytest.approx(want, rel=1e-12)
    assert visionops.nms(boxes, scores, 0.5).tolist() == [0, 2, 4]
    assert visionops.nms(boxes.float(), scores.float(), 0.5).tolist() == [0, 2, 4]


def test_strictly_greater_suppresses():
    # IoU exactly 0.5 is not above 0.5: both boxes stay.
    boxes = torch.tensor([[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    scores = torch.tensor([0.9, 0.8])
    assert visionops.nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert visionops.nms(boxes, scores, 0.49).tolist() == [0]


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.3])
def test_borderline_overlaps_match_torchvision(threshold):
    # IoUs within a few ulps of the threshold, so that the vector scans'
    # float margins leave the decision to the exact test: per group, a box of
    # width 2 and unit-height strips of width 2t +- k ulps under it (IoU =
    # width / 2), the groups stacked at integer heights so widths stay exact.
    g = torch.Generator().manual_seed(5)
    rows = []
    for k in range(60):
        widths = torch.full((24,), 2 * threshold) + torch.randint(-40, 41, (24,), generator=g) * 2.0**-22
        x2 = torch.cat([torch.tensor([2.0]), widths.float()])
        y1 = torch.full_like(x2, 2.0 * k)
        rows.append(torch.stack([torch.zeros_like(x2), y1, x2, y1 + 1], dim=1))
    boxes = torch.cat(rows)
    scores = torch.rand(boxes.shape[0], generator=g)
    scores[:: 25] += 1  # each group's wide box first
    assert torch.equal(visionops.nms(boxes, scores, threshold), tv_ops.nms(boxes, scores, threshold))
    idxs = torch.randint(0, 3, (boxes.shape[0],), generator=g)
    assert torch.equal(visionops.batched_nms(boxes, scores, idxs, threshold),
                       per_class_torchvision(boxes, scores, idxs, threshold))


@pytest.mark.parametrize("scale", [1e-18, 1e-21, 1e15])
def test_tiny_and_huge_boxes_match_torchvision(scale):
    # Areas below 2^-80 (and subnormal) skip the float margins; huge ones
    # overflow the products: both must still decide exactly as torchvision.
    g = torch.Generator().manual_seed(9)
    boxes = torch.cat([clustered_boxes(400, g) * scale, clustered_boxes(200, g)])
    scores = torch.rand(600, generator=g)
    for threshold in (0.2, 0.5, 0.9):
        assert torch.equal(visionops.nms(boxes, scores, threshold), tv_ops.nms(boxes, scores, threshold))


@pytest.mark.parametrize("isa", ["avx2", "portable"])
def test_lower_isa_scans_match_torchvision(isa):
    # The loops of AVX2 and of baseline x86-64 CPUs against torchvision, on
    # every CPU that can run them: VISIONOPS_CPU_ISA makes a better machine
    # take them. The best path is the default and the other tests check it.
    if _C.cpu_isa_supported() == "portable" and isa != "portable":
        pytest.skip(f"the {isa} path: this CPU cannot run it")
    code = (
        "import torch, torchvision, visionops\n"
        "from tests.ops.test_nms import random_case, test_borderline_overlaps_match_torchvision, uniform_boxes\n"
        "from tests.ops.test_nms import test_batched_large_classes\n"
        "for seed in range(300):\n"
        "    b, s, t = random_case(seed)\n"
        "    assert torch.equal(visionops.nms(b, s, t), torchvision.ops.nms(b, s, t)), seed\n"
        "g = torch.Generator().manual_seed(1)\n"
        "b = uniform_boxes(6000, g); s = torch.rand(6000, generator=g)\n"
        "assert torch.equal(visionops.nms(b, s, 0.5), torchvision.ops.nms(b, s, 0.5))\n"
        "for t in (0.3, 0.5, 0.7):\n"
        "    test_borderline_overlaps_match_torchvision(t)\n"
        "test_batched_large_classes(torch.float32)\n"
        "print('ok')\n"
    )
    done = run_python(code, VISIONOPS_CPU_ISA=isa)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_ties_break_by_index():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 4 + [[50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.5, 0.7, 0.7, 0.7, 0.7])
    assert visionops.nms(boxes, scores, 0.5).tolist() == [1, 4]


# ----------------------------------------------------------------- torchvision parity


def test_matches_torchvision_on_1200_seeded_cases():
    mismatches = []
    for seed in range(1200):
        boxes, scores, threshold = random_case(seed)
        want = tv_ops.nms(boxes, scores, threshold)
        got = visionops.nms(boxes, scores, threshold)
        if not torch.equal(got, want):
            mismatches.append(seed)
    assert not mismatches, f"kept indices differ from torchvision for seeds {mismatches[:10]}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_large_inputs_match_torchvision(dtype):
    # Big enough for the spatial index and its levels (over 1,024 boxes kept;
    # the small cases above take the plain scan only).
    for seed, make in enumerate([uniform_boxes, clustered_boxes, uniform_boxes]):
        g = torch.Generator().manual_seed(100 + seed)
        boxes = make(6000, g, dtype)
        scores = torch.rand(6000, generator=g, dtype=dtype)
        for threshold in (0.0, 0.3, 0.5, 0.8):
            assert torch.equal(visionops.nms(boxes, scores, threshold), tv_ops.nms(boxes, scores, threshold))


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_index_at_the_edge_of_its_bounds(threshold):
    # Past 1,024 kept boxes the candidates search an index by size and by
    # where a suppressor's centre can lie. Pairs at the edge of both bounds,
    # IoU a hair either side of t: equal boxes shifted by (1 - t) / (1 + t)
    # of their width, boxes sharing a corner with sides sqrt(t) times as
    # long, and boxes sharing an edge t times as wide.
    g = torch.Generator().manual_seed(int(threshold * 10))
    n = 1500
    centre = torch.rand(n, 2, generator=g) * 4000
    side = 10 + torch.rand(n, 2, generator=g) * 30
    base = torch.cat([centre - side / 2, centre + side / 2], dim=1).double()
    w = base[:, 2] - base[:, 0]
    nudge = 1 + (torch.rand(n, generator=g).double() - 0.5) * 1e-6
    shifted = base.clone()
    shifted[:, [0, 2]] += ((1 - threshold) / (1 + threshold) * w * nudge)[:, None]
    small = base.clone()
    small[:, 2:] = base[:, :2] + (base[:, 2:] - base[:, :2]) * (threshold ** 0.5 * nudge)[:, None]
    narrow = base.clone()
    narrow[:, 2] = base[:, 0] + w * threshold * nudge
    kind = (torch.arange(n) % 3)[:, None]
    partner = torch.where(kind == 0, shifted, torch.where(kind == 1, small, narrow))
    boxes = torch.cat([base, partner]).float()
    scores = torch.rand(2 * n, generator=g)
    want = tv_ops.nms(boxes, scores, threshold)
    assert len(want) > 1100  # the index is in use
    assert torch.equal(visionops.nms(boxes, scores, threshold), want)


def test_index_open_top_level():
    # Boxes longer than 2^63 share the top size level, which has no upper
    # size: at t = 0 a suppressor's centre may lie any distance away.
    g = torch.Generator().manual_seed(12)
    n, m = 1200, 50
    centre = torch.rand(n, 2, generator=g) * 4000
    side = 10 + torch.rand(n, 2, generator=g) * 30
    spread = torch.cat([centre - side / 2, centre + side / 2], dim=1)  # kept: the index is in use
    y = torch.arange(m, dtype=torch.float32)[:, None] * 100 + 1e5
    wide = torch.cat([torch.full((m, 1), -1e21), y, torch.full((m, 1), 1e19), y + 10], dim=1)
    overlapped = torch.cat([torch.zeros(m, 1), y, torch.full((m, 1), 1.5e19), y + 10], dim=1)
    boxes = torch.cat([spread, wide, overlapped])
    scores = torch.cat([torch.rand(n, generator=g) + 2, torch.full((m,), 1.5), torch.ones(m)])
    want = tv_ops.nms(boxes, scores, 0.0)
    assert len(want) > 1100 and bool((want < n + m).all())  # index in use; every overlapped box goes
    assert torch.equal(visionops.nms(boxes, scores, 0.0), want)


def test_batched_matches_per_class_torchvision():
    mismatches = []
    for seed in range(400):
        boxes, scores, threshold = random_case(seed)
        g = torch.Generator().manual_seed(seed)
        idxs = torch.randint(-3, 5, (boxes.shape[0],), generator=g)  # negative ids are fine
        got = visionops.batched_nms(boxes, scores, idxs, threshold)
        if not torch.equal(got, per_class_torchvision(boxes, scores, idxs, threshold)):
            mismatches.append(seed)
    assert not mismatches, f"batched_nms differs from per-class nms for seeds {mismatches[:10]}"


def test_batched_large_many_classes():
    g = torch.Generator().manual_seed(7)
    boxes = clustered_boxes(4000, g)
    scores = torch.rand(4000, generator=g)
    idxs = torch.randint(0, 80, (4000,), generator=g)
    got = visionops.batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(got, per_class_torchvision(boxes, scores, idxs, 0.5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_batched_large_classes(dtype):
    # Classes of over 512 boxes take the per-class buckets (sorted per class,
    # merged by key): same result as per-class torchvision, with tied and
    # NaN scores, negative class ids, a score threshold and max_output.
    g = torch.Generator().manual_seed(21)
    n = 6000
    boxes = torch.cat([clustered_boxes(n // 2, g), uniform_boxes(n // 2, g)])
    scores = (torch.rand(n, generator=g) * 50).round() / 50  # many ties
    scores[torch.randint(0, n, (40,), generator=g)] = float("nan")
    idxs = torch.randint(0, 5, (n // 20,), generator=g).repeat_interleave(20) - 2
    boxes, scores = boxes.to(dtype), scores.to(dtype)
    kept = per_class_torchvision(boxes.float(), scores.float(), idxs, 0.5).tolist()
    # NaN scores rank first (as torch.sort puts them), by index; the others by score, then index
    # (sorted apart: a NaN key would upset the merge's sort)
    s = scores.float().tolist()
    want = torch.tensor(sorted(i for i in kept if s[i] != s[i]) +
                        sorted((i for i in kept if s[i] == s[i]), key=lambda i: (-s[i], i)))
    assert torch.equal(visionops.batched_nms(boxes, scores, idxs, 0.5), want)
    assert torch.equal(visionops.batched_nms(boxes, scores, idxs, 0.5, max_output=100), want[:100])
    kept = visionops.batched_nms(boxes, scores, idxs, 0.5, score_threshold=0.4)
    above = (scores.double() > 0.4).nonzero().flatten()  # the threshold compares in double
    sub = per_class_torchvision(boxes[above].float(), scores[above].float(), idxs[above], 0.5)
    assert torch.equal(kept, above[sub])


def test_batched_scattered_class_ids():
    # Ids far apart (no counting sort: the stable-sort grouping), in both
    # small and large classes, and the extremes of int64.
    g = torch.Generator().manual_seed(8)
    for n, per in ((300, 5), (3000, 1500)):
        boxes = clustered_boxes(n, g)
        scores = torch.rand(n, generator=g)
        ids = torch.tensor([-(2**63), 2**40, 7, 2**63 - 1])
        idxs = ids[torch.randint(0, 4, (n // per + 1,), generator=g)].repeat_interleave(per)[:n]
        dense = torch.unique(idxs, return_inverse=True)[1]
        assert torch.equal(visionops.batched_nms(boxes, scores, idxs, 0.5),
                           per_class_torchvision(boxes, scores, dense, 0.5))


def test_batched_is_not_fooled_by_offsets():
    # Coordinates near 1e4 with many classes: torchvision's offset trick adds
    # class * (max coordinate + 1) and rounds in float32; we never shift.
    g = torch.Generator().manual_seed(3)
    boxes = clustered_boxes(1000, g) * 8
    scores = torch.rand(1000, generator=g)
    idxs = torch.randint(0, 23, (1000,), generator=g)
    assert torch.equal(visionops.batched_nms(boxes, scores, idxs, 0.5),
                       per_class_torchvision(boxes, scores, idxs, 0.5))


# ----------------------------------------------------------------- options


def test_score_threshold_and_max_output():
    g = torch.Generator().manual_seed(11)
    boxes = clustered_boxes(500, g)
    scores = torch.rand(500, generator=g)
    full = visionops.nms(boxes, scores, 0.5)
    for k in (0, 1, 7, len(full), len(full) + 10):
        assert torch.equal(visionops.nms(boxes, scores, 0.5, max_output=k), full[:k])
    above = (scores > 0.4).nonzero().flatten()
    want = above[tv_ops.nms(boxes[above], scores[above], 0.5)]
    assert torch.equal(visionops.nms(boxes, scores, 0.5, score_threshold=0.4), want)
    idxs = torch.randint(0, 4, (500,), generator=g)
    fullb = visionops.batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(visionops.batched_nms(boxes, scores, idxs, 0.5, max_output=9), fullb[:9])


# ----------------------------------------------------------------- adversarial


def test_empty_and_single():
    empty = torch.zeros(0, 4)
    assert visionops.nms(empty, torch.zeros(0), 0.5).shape == (0,)
    assert visionops.nms(empty, torch.zeros(0), 0.5).dtype == torch.int64
    assert visionops.batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).shape == (0,)
    assert visionops.nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([0.3]), 0.5).tolist() == [0]


def test_batched_empty_with_none_arguments_as_torchvision():
    # torchvision returns before looking at scores, idxs or the threshold.
    for boxes in (torch.zeros(0, 4), torch.zeros(0, 4, dtype=torch.float64)):
        ours = visionops.batched_nms(boxes, None, None, None)
        theirs = tv_ops.batched_nms(boxes, None, None, None)
        assert ours.dtype == theirs.dtype == torch.int64
        assert ours.shape == theirs.shape == (0,)
        assert ours.device == boxes.device


def test_nan_scores_and_boxes_match_torchvision():
    # torchvision sorts NaN scores first (torch.sort's order) and a NaN box
    # never suppresses nor is suppressed; we document and keep both.
    g = torch.Generator().manual_seed(5)
    for seed in range(30):
        boxes = clustered_boxes(120, g)
        scores = torch.rand(120, generator=g)
        scores[torch.randint(0, 120, (5,), generator=g)] = float("nan")
        boxes[torch.randint(0, 120, (5,), generator=g), torch.randint(0, 4, (5,), generator=g)] = float("nan")
        assert torch.equal(visionops.nms(boxes, scores, 0.5), tv_ops.nms(boxes, scores, 0.5)), seed
    # With a score threshold, NaN scores are dropped.
    scores = torch.tensor([float("nan"), 0.9])
    boxes = torch.tensor([[0.0, 0, 1, 1], [5.0, 5, 6, 6]])
    assert visionops.nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert visionops.nms(boxes, scores, 0.5, score_threshold=0.0).tolist() == [1]


def test_degenerate_boxes_and_negative_threshold_match_torchvision():
    boxes = torch.tensor(
        [[0, 0, 10, 10], [5, 5, 5, 5], [10, 10, 0, 0], [0, 0, float("inf"), 10], [0, 0, 10, 10], [2, 2, 9, 9]],
        dtype=torch.float32,
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    for threshold in (-0.5, 0.0, 0.5, 1.0, 2.0):
        assert torch.equal(visionops.nms(boxes, scores, threshold), tv_ops.nms(boxes, scores, threshold)), threshold


def forward_case(seed: int, n: int):
    """Boxes for forward suppression (nms up to 4,096 boxes, batched_nms
    classes of over 512): copies of objects side by side in input order or
    shuffled, with NaN, infinite, empty, tiny (area below 2^-80) and huge
    boxes, tied and NaN scores, and thresholds on a pair's own IoU."""
    g = torch.Generator().manual_seed(seed)
    boxes = clustered_boxes(n, g)
    if seed % 2:  # no neighbours in input order: every word's bounds span the image
        boxes = boxes[torch.randperm(n, generator=g)]
    bad = torch.randint(0, n, (12,), generator=g)
    boxes[bad[:3], torch.randint(0, 4, (3,), generator=g)] = float("nan")
    boxes[bad[3:5], 2] = float("inf")
    boxes[bad[5:7], 0] = float("-inf")
    boxes[bad[7:9], 2:] = boxes[bad[7:9], :2]  # empty
    if seed % 3 == 0:  # a cluster of tiny boxes: the exact test, lane by lane
        boxes[: n // 4] = boxes[: n // 4] * 1e-21
    boxes[bad[9:]] = boxes[bad[9:]] * 1e30  # huge
    scores = torch.rand(n, generator=g)
    if seed % 4 < 2:
        scores = (scores * 20).round() / 20  # many ties
    scores[torch.randint(0, n, (6,), generator=g)] = float("nan")
    # A pair scored first among numbers (of one class in the test's classes,
    # away from the other boxes), its IoU t or one float step above t:
    # the float margins cannot settle it, the exact test keeps or drops the
    # second box.
    boxes[0] = torch.tensor([5000.0, 5000.0, 5100.0, 5080.0])
    boxes[3] = torch.tensor([5010.0, 5005.0, 5105.0, 5090.0])
    scores[0], scores[3] = 3.0, 2.0
    pair = tv_ops.box_iou(boxes[0:1], boxes[3:4]).flatten()  # float32
    below = float(torch.nextafter(pair, torch.zeros(1)))
    threshold = [0.5, 0.3, float(pair), below][seed % 4]
    return boxes, scores, threshold


@pytest.mark.parametrize("seed", range(8))
def test_forward_suppression_adversarial(seed):
    boxes, scores, threshold = forward_case(seed, 1500)
    assert torch.equal(visionops.nms(boxes, scores, threshold), tv_ops.nms(boxes, scores, threshold))
    want = tv_ops.nms(boxes, scores, threshold)
    assert torch.equal(visionops.nms(boxes, scores, threshold, max_output=25), want[:25])
    # Three classes of 2,000 boxes (the per-class buckets) against
    # per-class torchvision; NaN scores first, by index, as torch.sort has them.
    boxes, scores, threshold = forward_case(100 + seed, 6000)
    idxs = torch.arange(6000) % 3 if seed % 2 else torch.arange(6000) // 2000
    kept = per_class_torchvision(boxes, scores, idxs, threshold).tolist()
    s = scores.tolist()
    want = torch.tensor(sorted(i for i in kept if s[i] != s[i]) +
                        sorted((i for i in kept if s[i] == s[i]), key=lambda i: (-s[i], i)))
    assert torch.equal(visionops.batched_nms(boxes, scores, idxs, threshold), want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_computes_in_float(dtype):
    # Half boxes are compared in float: the same as float32 boxes holding the
    # same (rounded) values.
    g = torch.Generator().manual_seed(9)
    boxes = clustered_boxes(600, g).to(dtype)
    scores = torch.rand(600, generator=g).to(dtype)
    want = tv_ops.nms(boxes.float(), scores.float(), 0.5)
    assert torch.equal(visionops.nms(boxes, scores, 0.5), want)


def test_non_contiguous():
    g = torch.Generator().manual_seed(2)
    boxes = clustered_boxes(400, g).t().contiguous().t()
    scores = torch.rand(800, generator=g)[::2]
    assert not boxes.is_contiguous() and not scores.is_contiguous()
    assert torch.equal(visionops.nms(boxes, scores, 0.5), tv_ops.nms(boxes.contiguous(), scores.contiguous(), 0.5))


def test_deterministic_across_threads():
    g = torch.Generator().manual_seed(4)
    boxes = uniform_boxes(5000, g)
    scores = torch.rand(5000, generator=g)
    idxs = torch.randint(0, 30, (5000,), generator=g)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(visionops.batched_nms(boxes, scores, idxs, 0.5))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0], results[1])


# ----------------------------------------------------------------- registration


def test_opcheck():
    g = torch.Generator().manual_seed(1)
    boxes = clustered_boxes(200, g)
    scores = torch.rand(200, generator=g)
    idxs = torch.randint(0, 3, (200,), generator=g)
    utils = ("test_schema", "test_faketensor")  # data-dependent size: no autograd, no aot dispatch
    torch.library.opcheck(torch.ops.visionops.nms.default, (boxes, scores, 0.5), test_utils=utils)
    torch.library.opcheck(torch.ops.visionops.nms.default, (boxes, scores, 0.5),
                          {"score_threshold": 0.2, "max_output": 10}, test_utils=utils)
    torch.library.opcheck(torch.ops.visionops.batched_nms.default, (boxes, scores, idxs, 0.5), test_utils=utils)


def test_compile_fullgraph_with_data_dependent_size():
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(6)
    boxes = clustered_boxes(300, g)
    scores = torch.rand(300, generator=g)

    @torch.compile(fullgraph=True, backend="aot_eager")
    def postprocess(b, s):
        keep = visionops.nms(b, s, 0.5, max_output=50)
        return b[keep], s[keep]

    kept_boxes, kept_scores = postprocess(boxes, scores)
    keep = tv_ops.nms(boxes, scores, 0.5)[:50]
    assert torch.equal(kept_boxes, boxes[keep]) and torch.equal(kept_scores, scores[keep])
    torch._dynamo.reset()


# ----------------------------------------------------------------- CUDA


@pytest.fixture(params=[pytest.param("cuda", marks=requires_cuda)])
def cuda(request) -> str:
    return request.param


def test_cuda_matches_cpu_exactly(cuda):
    for seed in range(400):
        boxes, scores, threshold = random_case(seed)
        g = torch.Generator().manual_seed(seed)
        idxs = torch.randint(0, 5, (boxes.shape[0],), generator=g)
        want = visionops.nms(boxes, scores, threshold)
        assert torch.equal(visionops.nms(boxes.cuda(), scores.cuda(), threshold).cpu(), want), seed
        want = visionops.batched_nms(boxes, scores, idxs, threshold)
        got = visionops.batched_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), threshold).cpu()
        assert torch.equal(got, want), seed


def test_cuda_options_and_large(cuda):
    g = torch.Generator().manual_seed(21)
    boxes = clustered_boxes(20000, g)
    scores = torch.rand(20000, generator=g)
    idxs = torch.randint(0, 80, (20000,), generator=g)
    for kw in ({}, {"score_threshold": 0.3}, {"max_output": 100}, {"score_threshold": 0.5, "max_output": 10}):
        assert torch.equal(visionops.nms(boxes.cuda(), scores.cuda(), 0.5, **kw).cpu(),
                           visionops.nms(boxes, scores, 0.5, **kw))
        assert torch.equal(visionops.batched_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), 0.5, **kw).cpu(),
                           visionops.batched_nms(boxes, scores, idxs, 0.5, **kw))
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        b, s = boxes.to(dtype), scores.to(dtype)
        assert torch.equal(visionops.nms(b.cuda(), s.cuda(), 0.5).cpu(), visionops.nms(b, s, 0.5))
    nan_scores = scores.clone()
    nan_scores[::97] = float("nan")
    assert torch.equal(visionops.nms(boxes.cuda(), nan_scores.cuda(), 0.5).cpu(),
                       visionops.nms(boxes, nan_scores, 0.5))


# ----------------------------------------------------------------- padded_nms


def padded_reference(boxes, scores, threshold, max_output, idxs=None, score_threshold=None):
    """A loop of nms / batched_nms per image, padded with -1."""
    B = boxes.shape[0]
    keep = torch.full((B, max_output), -1, dtype=torch.int64)
    counts = torch.zeros(B, dtype=torch.int64)
    for b in range(B):
        if idxs is None:
            k = visionops.nms(boxes[b], scores[b], threshold, score_threshold=score_threshold, max_output=max_output)
        else:
            k = visionops.batched_nms(boxes[b], scores[b], idxs[b], threshold, score_threshold=score_threshold,
                                      max_output=max_output)
        keep[b, : len(k)] = k
        counts[b] = len(k)
    return keep, counts


def padded_batch(B, N, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    boxes = torch.stack([clustered_boxes(N, g) if b % 2 else uniform_boxes(N, g) for b in range(B)]).to(dtype)
    scores = torch.rand(B, N, generator=g).to(dtype)
    scores = (scores * 20).round() / 20  # many ties
    idxs = torch.randint(0, 6, (B, N), generator=g)
    return boxes, scores, idxs


@pytest.mark.parametrize("with_classes", [False, True])
def test_padded_matches_per_image_loop(with_classes):
    for seed, (B, N, max_output) in enumerate([(4, 300, 50), (3, 100, 200), (1, 1, 1), (5, 64, 0), (2, 1000, 100)]):
        boxes, scores, idxs = padded_batch(B, N, seed)
        idxs = idxs if with_classes else None
        for score_threshold in (None, 0.5):
            keep, counts = visionops.padded_nms(boxes, scores, 0.5, max_output, idxs=idxs,
                                                score_threshold=score_threshold)
            want_keep, want_counts = padded_reference(boxes, scores, 0.5, max_output, idxs, score_threshold)
            assert keep.shape == (B, max_output) and counts.shape == (B,)
            assert torch.equal(keep, want_keep) and torch.equal(counts, want_counts)


def test_padded_against_torchvision():
    boxes, scores, _ = padded_batch(3, 500, 99)
    keep, counts = visionops.padded_nms(boxes, scores, 0.6, 500)
    for b in range(3):
        want = tv_ops.nms(boxes[b], scores[b], 0.6)
        assert counts[b].item() == len(want)
        assert torch.equal(keep[b, : len(want)], want) and (keep[b, len(want):] == -1).all()


def test_padded_empty_batch_and_images():
    keep, counts = visionops.padded_nms(torch.zeros(0, 10, 4), torch.zeros(0, 10), 0.5, 5)
    assert keep.shape == (0, 5) and counts.shape == (0,)
    keep, counts = visionops.padded_nms(torch.zeros(3, 0, 4), torch.zeros(3, 0), 0.5, 5)
    assert (keep == -1).all() and keep.shape == (3, 5) and (counts == 0).all()


def test_padded_opcheck_and_compile():
    boxes, scores, idxs = padded_batch(2, 200, 5)
    torch.library.opcheck(torch.ops.visionops.padded_nms.default, (boxes, scores, 0.5, 30),
                          {"idxs": idxs, "score_threshold": 0.1})
    torch._dynamo.reset()

    @torch.compile(fullgraph=True)
    def postprocess(b, s, c):
        keep, counts = visionops.padded_nms(b, s, 0.5, 30, idxs=c)
        return keep, counts

    keep, counts = postprocess(boxes, scores, idxs)
    want_keep, want_counts = padded_reference(boxes, scores, 0.5, 30, idxs)
    assert torch.equal(keep, want_keep) and torch.equal(counts, want_counts)
    torch._dynamo.reset()


def test_cuda_padded_matches_cpu(cuda):
    for seed, (B, N, max_output) in enumerate([(4, 300, 50), (2, 3000, 100), (1, 64, 64)]):
        boxes, scores, idxs = padded_batch(B, N, seed)
        for c in (None, idxs):
            for st in (None, 0.4):
                want = visionops.padded_nms(boxes, scores, 0.5, max_output, idxs=c, score_threshold=st)
                got = visionops.padded_nms(boxes.cuda(), scores.cuda(), 0.5, max_output,
                                           idxs=None if c is None else c.cuda(), score_threshold=st)
                assert torch.equal(got[0].cpu(), want[0]) and torch.equal(got[1].cpu(), want[1])


# ----------------------------------------------------------------- soft-NMS


def soft_nms_reference(boxes, scores, iou_threshold, sigma, score_threshold, method):
    """Soft-NMS in float64, one pick at a time (highest score, lowest index)."""
    import math

    b = boxes.double().tolist()
    s = scores.double().tolist()
    alive = [i for i in range(len(s)) if s[i] >= score_threshold]
    picked, picked_scores = [], []
    while alive:
        best = max(alive, key=lambda i: (s[i], -i))
        picked.append(best)
        picked_scores.append(s[best])
        alive.remove(best)
        x1, y1, x2, y2 = b[best]
        survivors = []
        for i in alive:
            u1, v1, u2, v2 = b[i]
            inter = max(min(x2, u2) - max(x1, u1), 0) * max(min(y2, v2) - max(y1, v1), 0)
            union = (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter
            iou = inter / union if union != 0 else float("nan")
            if not math.isnan(iou):
                if method == "linear":
                    s[i] *= (1 - iou) if iou > iou_threshold else 1.0
                else:
                    s[i] *= math.exp(-(iou * iou) / sigma)
            if s[i] >= score_threshold:
                survivors.append(i)
        alive = survivors
    return torch.tensor(picked, dtype=torch.int64), torch.tensor(picked_scores, dtype=torch.float64)


def test_soft_nms_hand_computed():
    # B overlaps A with IoU 0.5: linear (threshold 0.3) halves B's score;
    # gaussian (sigma 0.5) scales it by exp(-0.25 / 0.5).
    boxes = torch.tensor([[0.0, 0, 2, 1], [0.0, 0, 1, 1], [5.0, 5, 6, 6]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8, 0.3], dtype=torch.float64)
    keep, s = visionops.soft_nms(boxes, scores, 0.3, 0.5, 0.001, "linear")
    assert keep.tolist() == [0, 1, 2] and s.tolist() == pytest.approx([0.9, 0.4, 0.3])
    keep, s = visionops.soft_nms(boxes, scores, 0.3, 0.5, 0.001, "gaussian")
    assert keep.tolist() == [0, 1, 2] and s.tolist() == pytest.approx([0.9, 0.8 * 0.6065306597126334, 0.3])
    # Below the score threshold: dropped.
    keep, _ = visionops.soft_nms(boxes, scores, 0.3, 0.5, 0.35, "linear")
    assert keep.tolist() == [0, 1]


@pytest.mark.parametrize("method", ["linear", "gaussian"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_soft_nms_matches_float64_reference(method, dtype):
    for seed in range(25):
        g = torch.Generator().manual_seed(seed)
        n = int(torch.randint(0, 150, (1,), generator=g))
        boxes = (clustered_boxes(n, g) if seed % 2 else uniform_boxes(n, g)).to(dtype)
        scores = torch.rand(n, generator=g, dtype=torch.float64).to(dtype)
        keep, s = visionops.soft_nms(boxes, scores, 0.3, 0.5, 0.05, method)
        want_keep, want_s = soft_nms_reference(boxes, scores, 0.3, 0.5, 0.05, method)
        assert torch.equal(keep, want_keep), seed
        torch.testing.assert_close(s.double(), want_s, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-7)


def test_soft_nms_nan_and_ties_and_errors():
    boxes = torch.tensor([[0.0, 0, 1, 1], [0.0, 0, 1, 1], [3.0, 3, 4, 4], [float("nan"), 0, 1, 1]])
    scores = torch.tensor([0.5, 0.5, float("nan"), 0.7])
    keep, s = visionops.soft_nms(boxes, scores, 0.3, 0.5, 0.001, "linear")
    # The NaN score is dropped; the NaN box decays nothing and is kept; the
    # tie goes to index 0, whose twin (IoU 1) then decays to 0 and drops.
    assert keep.tolist() == [3, 0] and s.tolist() == pytest.approx([0.7, 0.5])
    with pytest.raises(ValueError, match="method must be 'linear' or 'gaussian', got 'hard'"):
        visionops.soft_nms(boxes, scores, method="hard")
    with pytest.raises(ValueError, match="sigma must be > 0, got -1"):
        visionops.soft_nms(boxes, scores, sigma=-1.0, method="gaussian")


def test_soft_nms_opcheck_and_compile():
    g = torch.Generator().manual_seed(8)
    boxes, scores = clustered_boxes(100, g), torch.rand(100, generator=g)
    torch.library.opcheck(torch.ops.visionops.soft_nms.default, (boxes, scores, 0.3, 0.5, 0.01, "gaussian"),
                          test_utils=("test_schema", "test_faketensor"))
    torch._dynamo.reset()
    fn = torch.compile(lambda b, s: visionops.soft_nms(b, s, 0.3, 0.5, 0.01, "linear"), fullgraph=True,
                       backend="aot_eager")
    keep, s = fn(boxes, scores)
    want_keep, want_s = visionops.soft_nms(boxes, scores, 0.3, 0.5, 0.01, "linear")
    assert torch.equal(keep, want_keep) and torch.equal(s, want_s)
    torch._dynamo.reset()


def test_cuda_soft_nms_matches_cpu(cuda):
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        boxes, scores = clustered_boxes(500, g), torch.rand(500, generator=g)
        for method in ("linear", "gaussian"):
            want = visionops.soft_nms(boxes, scores, 0.3, 0.5, 0.01, method)
            got = visionops.soft_nms(boxes.cuda(), scores.cuda(), 0.3, 0.5, 0.01, method)
            assert torch.equal(got[0].cpu(), want[0]), (seed, method)
            torch.testing.assert_close(got[1].cpu(), want[1], rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------- signed zeros and NaN, every device


# A quiet NaN with the sign bit set, by its bits (conversions may drop the sign).
_NEGATIVE_NAN_BITS = {torch.float32: (torch.int32, -0x400000), torch.float64: (torch.int64, -0x8000000000000),
                      torch.float16: (torch.int16, -0x200), torch.bfloat16: (torch.int16, -0x40)}


def _signed_scores(dtype, device):
    int_type, bits = _NEGATIVE_NAN_BITS[dtype]
    s = torch.tensor([0.0, -0.0, float("nan"), 0.0, 0.5, -0.0, 0.0], dtype=dtype)
    s[3] = torch.tensor([bits], dtype=int_type).view(dtype)[0]
    assert torch.signbit(s[3]) and s[3].isnan() and torch.signbit(s[1]) and not torch.signbit(s[2])
    return s.to(device)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_signed_zero_and_nan_scores_order_alike_on_every_device(dtype, device):
    # -0.0 ties with +0.0 (then by index) and a NaN is first whatever its sign
    # bit, on the CPU and on CUDA, in nms, batched_nms and padded_nms. The
    # boxes do not overlap, so the output is the score order itself.
    boxes = torch.tensor([[20.0 * i, 0, 20.0 * i + 10, 10] for i in range(7)], dtype=dtype, device=device)
    scores = _signed_scores(dtype, device)
    want = [2, 3, 4, 0, 1, 5, 6]
    assert visionops.nms(boxes, scores, 0.5).tolist() == want
    assert visionops.batched_nms(boxes, scores, torch.zeros(7, dtype=torch.long, device=device), 0.5).tolist() == want
    keep, count = visionops.padded_nms(boxes[None], scores[None], 0.5, 7)
    assert keep[0].tolist() == want and count.tolist() == [7]


@requires_cuda
def test_cuda_padded_nms_chunks_large_batches():
    # 20,000 boxes an image: a 50 MB mask each, so 12 images go through the
    # 256 MB mask buffer in chunks. Each image's result is its own.
    g = torch.Generator().manual_seed(31)
    boxes = torch.stack([clustered_boxes(20000, g) for _ in range(12)])
    scores = torch.rand(12, 20000, generator=g)
    keep, counts = visionops.padded_nms(boxes.cuda(), scores.cuda(), 0.5, 300)
    for b in (0, 5, 11):
        want = visionops.nms(boxes[b], scores[b], 0.5, max_output=300)
        assert counts[b].item() == want.numel()
        assert torch.equal(keep[b, : want.numel()].cpu(), want)
    with pytest.raises(RuntimeError, match="at most 4194240 boxes per image on CUDA"):
        visionops.padded_nms(torch.zeros(1, 4194241, 4, device="cuda"), torch.zeros(1, 4194241, device="cuda"), 0.5, 1)
