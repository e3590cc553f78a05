"""YOLO decoding: a hand example, the float64 definition over several scales
and thresholds, ties, padding, dtypes, gradients, the hand-off to
padded_nms, opcheck and compile."""

from __future__ import annotations

import math

import pytest
import torch

import visionops

from .. import references as ref
from ..conftest import requires_cuda

ANCHORS = torch.tensor([[[10.0, 13], [16, 30], [33, 23]], [[30.0, 61], [62, 45], [59, 119]],
                        [[116.0, 90], [156, 198], [373, 326]]])
STRIDES = [8, 16, 32]


def heads(b=2, c=4, size=64, dtype=torch.float64, device="cpu", g=None):
    return [(torch.randn(b, 3 * (5 + c), size // s, size // s, generator=g, dtype=torch.float64) * 2).to(
        dtype=dtype, device=device) for s in STRIDES]


def test_hand_example():
    # One 1 x 1 cell, one anchor of 20 x 10 px, stride 8, two classes.
    head = torch.zeros(1, 7, 1, 1)
    head[0, 2] = math.log(2.0)  # v3: width exp(log 2) * 20 = 40
    head[0, 4] = 10.0  # objectness about 1
    head[0, 5], head[0, 6] = -1.0, 3.0  # class 1 wins
    anchors = torch.tensor([[[20.0, 10.0]]])
    boxes, scores, labels, counts = visionops.yolo_decode([head], anchors, [8], version="v3", max_detections=2)
    torch.testing.assert_close(boxes[0, 0], torch.tensor([4.0 - 20, 4.0 - 5, 4.0 + 20, 4.0 + 5]))
    torch.testing.assert_close(scores[0, 0], torch.sigmoid(torch.tensor(10.0)) * torch.sigmoid(torch.tensor(3.0)))
    assert labels[0].tolist() == [1, -1] and counts.tolist() == [1]
    assert boxes[0, 1].abs().sum() == 0 and scores[0, 1] == 0  # padding
    # v5: (2 sigmoid(0) - 0.5 + 0) * 8 = 4, width (2 sigmoid(log 2))^2 * 20 = (4/3)^2 * 20
    boxes, *_ = visionops.yolo_decode([head], anchors, [8], version="v5", max_detections=1)
    w = (2 * 2 / 3) ** 2 * 20
    torch.testing.assert_close(boxes[0, 0, 2] - boxes[0, 0, 0], torch.tensor(w))


@pytest.mark.parametrize("version", ["v3", "v5"])
@pytest.mark.parametrize("threshold,k", [(0.0, 50), (0.3, 1000), (0.9, 10), (2.0, 5)])
def test_matches_definition(version, threshold, k, device):
    g = torch.Generator().manual_seed(int(threshold * 10) + k)
    hs = heads(device=device, g=g)
    ours = visionops.yolo_decode(hs, ANCHORS.to(device), STRIDES, version=version, score_threshold=threshold,
                                 max_detections=k)
    expected = ref.yolo_decode([h.cpu() for h in hs], ANCHORS, STRIDES, version, threshold, k)
    torch.testing.assert_close(ours[0].cpu(), expected[0], rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(ours[1].cpu(), expected[1], rtol=1e-12, atol=1e-12)
    assert torch.equal(ours[2].cpu(), expected[2]) and torch.equal(ours[3].cpu(), expected[3])


def test_ties_keep_candidate_order():
    # Equal scores everywhere: the first candidates (scale 0, anchor 0, row-major) come first.
    hs = [torch.zeros(1, 3 * 6, 2, 2), torch.zeros(1, 3 * 6, 1, 1)]
    _, scores, labels, counts = visionops.yolo_decode(hs, ANCHORS[:2], [8, 16], score_threshold=0.0,
                                                       max_detections=20)
    assert counts.tolist() == [15] and (scores[0, :15] == 0.25).all() and (labels[0, :15] == 0).all()
    boxes, *_ = visionops.yolo_decode(hs, ANCHORS[:2], [8, 16], score_threshold=0.0, max_detections=20)
    expected = ref.yolo_decode(hs, ANCHORS[:2], [8, 16], "v5", 0.0, 20)[0]
    torch.testing.assert_close(boxes.double(), expected)


@pytest.mark.parametrize("version", ["v3", "v5"])
@pytest.mark.parametrize("threshold,k", [(0.25, 100), (0.3, 5000)])
def test_float32_matches_definition(version, threshold, k, device):
    # float32 heads take the vector loops (16 cells at a time; 37 x 37 and
    # 19 x 19 planes leave a tail of cells) and, with more candidates above
    # the threshold than k (the first case), the binned preselection of the
    # top k: the float64 definition's boxes, scores and labels, in its
    # order, except where two scores round to one float32 (then the
    # candidate order decides, as for any tie).
    g = torch.Generator().manual_seed(21)
    hs = [(torch.randn(2, 3 * 85, n, n, generator=g) * 0.5).to(device) for n in (37, 19, 10)]
    ours = visionops.yolo_decode(hs, ANCHORS.to(device), STRIDES, version=version, score_threshold=threshold,
                                 max_detections=k)
    expected = ref.yolo_decode([h.cpu() for h in hs], ANCHORS, STRIDES, version, threshold, k)
    above = (expected[1] > 0).sum(1)
    assert (above == k).all() if k == 100 else (above < k).all()
    assert torch.equal(ours[3].cpu(), expected[3])
    scores = ours[1].cpu()
    torch.testing.assert_close(scores.double(), expected[1], rtol=1e-6, atol=0)
    tied = torch.zeros_like(scores, dtype=torch.bool)
    tied[:, 1:] |= scores[:, 1:] == scores[:, :-1]
    tied[:, :-1] |= scores[:, 1:] == scores[:, :-1]
    valid = torch.arange(k) < ours[3].cpu()[:, None]
    assert (tied & valid).sum() < 10 and (scores[:, 1:] <= scores[:, :-1]).all()
    assert torch.equal(ours[2].cpu()[~tied], expected[2][~tied])
    torch.testing.assert_close(ours[0].cpu().double()[~tied], expected[0][~tied], rtol=1e-5, atol=1e-4)


def test_ties_at_the_cut_keep_candidate_order():
    # Equal scores, more of them than max_detections: the first candidates
    # in order, the others left out.
    hs = [torch.zeros(2, 3 * 6, 5, 7), torch.zeros(2, 3 * 6, 3, 4)]
    boxes, scores, labels, counts = visionops.yolo_decode(hs, ANCHORS[:2], [8, 16], score_threshold=0.0,
                                                          max_detections=20)
    assert counts.tolist() == [20, 20] and (scores == 0.25).all() and (labels == 0).all()
    expected = ref.yolo_decode(hs, ANCHORS[:2], [8, 16], "v5", 0.0, 20)[0]
    torch.testing.assert_close(boxes.double(), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes(dtype, device):
    g = torch.Generator().manual_seed(2)
    hs = heads(dtype=dtype, device=device, g=g)
    boxes, scores, labels, counts = visionops.yolo_decode(hs, ANCHORS.to(device), STRIDES, max_detections=40)
    assert boxes.dtype == dtype and scores.dtype == dtype and labels.dtype == torch.int64
    _, exp_scores, _, exp_counts = ref.yolo_decode([h.cpu() for h in hs], ANCHORS, STRIDES, "v5", 0.25, 40)
    assert torch.equal(counts.cpu(), exp_counts)
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    # Scores within rounding; near-ties may swap order in low precision, so compare sorted.
    torch.testing.assert_close(scores.cpu().double().sort(1).values, exp_scores.sort(1).values, rtol=tol, atol=tol)


@pytest.mark.parametrize("version", ["v3", "v5"])
def test_yolo_boxes_gradients(version, device):
    g = torch.Generator().manual_seed(3)
    head = (torch.randn(2, 3 * 7, 3, 4, generator=g, dtype=torch.float64)).to(device).requires_grad_()
    anchors = ANCHORS[0].to(device)
    out = visionops.yolo_boxes(head, anchors, 8, version=version)
    torch.testing.assert_close(out.cpu(), ref.yolo_boxes(head.detach().cpu(), ANCHORS[0], 8, version))
    assert torch.autograd.gradcheck(lambda h: visionops.yolo_boxes(h, anchors, 8, version=version), (head,))


def test_hand_off_to_padded_nms():
    g = torch.Generator().manual_seed(4)
    hs = heads(dtype=torch.float32, g=g)
    boxes, scores, labels, counts = visionops.yolo_decode(hs, ANCHORS, STRIDES, score_threshold=0.3,
                                                          max_detections=100)
    keep, kept = visionops.padded_nms(boxes, scores, 0.5, 30, idxs=labels)
    for b in range(2):
        n = int(counts[b])
        expected = visionops.batched_nms(boxes[b, :n], scores[b, :n], labels[b, :n], 0.5)[:30]
        assert torch.equal(keep[b, : int(kept[b])], expected)


def test_errors():
    hs = heads(g=torch.Generator().manual_seed(5))
    with pytest.raises(ValueError, match="visionops.yolo_decode: version must be 'v3' or 'v5', got 'v8'"):
        visionops.yolo_decode(hs, ANCHORS, STRIDES, version="v8")
    with pytest.raises(ValueError, match=r"visionops.yolo_decode: heads must have A \* \(5 \+ C\) channels"):
        visionops.yolo_decode([hs[0][:, :16]], ANCHORS[:1], [8])
    with pytest.raises(RuntimeError, match=r"visionops.yolo_decode: anchors must have shape \[3, A, 2\]"):
        visionops.yolo_decode(hs, ANCHORS[:2], STRIDES)
    with pytest.raises(ValueError, match="visionops.yolo_decode: strides must have one value per scale"):
        visionops.yolo_decode(hs, ANCHORS, STRIDES[:2])


def test_opcheck_and_compile(device):
    g = torch.Generator().manual_seed(6)
    hs = heads(b=1, size=32, device=device, g=g)
    anchors = ANCHORS.to(device)
    torch.library.opcheck(torch.ops.visionops.yolo_decode.default, (hs, anchors, STRIDES, "v5", 0.2, 30))
    head = hs[0].detach().requires_grad_()
    torch.library.opcheck(torch.ops.visionops.yolo_boxes.default, (head, anchors[0], 8, "v3"))
    torch._dynamo.reset()
    f = torch.compile(lambda *h: visionops.yolo_decode(list(h), anchors, STRIDES, max_detections=30), fullgraph=True,
                      backend="aot_eager")
    for a, b in zip(f(*hs), visionops.yolo_decode(hs, anchors, STRIDES, max_detections=30)):
        assert torch.equal(a, b)
    torch._dynamo.reset()


@requires_cuda
def test_cuda_decode_with_nested_list_anchors_does_not_sync():
    # The docstring's form of anchors (nested lists) goes to the device
    # through pinned memory, without waiting for it: no host sync anywhere.
    heads = [torch.randn(2, 3 * 85, s, s, device="cuda") for s in (20, 10)]
    anchors = [[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]]]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = visionops.yolo_decode(heads, anchors, [8, 16], max_detections=50)
        boxes = visionops.yolo_boxes(heads[0], anchors[0], 8)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    want = visionops.yolo_decode([h.cpu() for h in heads], anchors, [8, 16], max_detections=50)
    for a, b in zip(out, want, strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-5, atol=1e-4)
    assert boxes.shape == (2, 3, 20, 20, 4)
