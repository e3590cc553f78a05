"""YOLO, DETR and U-Net: tiny configurations forward and backward, one
training step lowers the loss, YOLO's fixed-size path exports and equals
eager, DETR's matching feeds the loss as a hand-built case says, U-Net on any
size."""

from __future__ import annotations

import pytest
import torch

import visionops

from ..conftest import require

vm = require("visionops.models")
require("torchvision.ops")


def _boxes_targets(n_images: int, side: int, g: torch.Generator, classes: int, offset: int = 0):
    targets = []
    for _ in range(n_images):
        k = int(torch.randint(1, 4, (1,), generator=g))
        xy = torch.rand(k, 2, generator=g) * side * 0.6
        wh = side * 0.1 + torch.rand(k, 2, generator=g) * side * 0.3
        targets.append({"boxes": torch.cat([xy, xy + wh], 1),
                        "labels": torch.randint(offset, classes + offset, (k,), generator=g)})
    return targets


def _step_lowers(model: torch.nn.Module, loss_fn, lr: float = 1e-3) -> None:
    """One plain gradient step (small enough to stay where the loss is
    locally linear) lowers the loss."""
    for m in model.modules():  # fixed batch-norm statistics: the loss is a function of the weights
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    before = loss_fn()
    opt.zero_grad()
    before.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    opt.step()
    with torch.no_grad():
        after = loss_fn()
    assert after < before


# ------------------------------------------------------------------ YOLO


def test_yolo_heads_loss_and_a_step():
    torch.manual_seed(0)
    model = vm.yolo_small(4, image_size=128).train()
    x = torch.rand(2, 3, 128, 128)
    heads = model(x)
    a = model.anchors.shape[1]
    assert [tuple(h.shape) for h in heads] == [(2, a * 9, 16, 16), (2, a * 9, 8, 8), (2, a * 9, 4, 4)]
    targets = _boxes_targets(2, 128, torch.Generator().manual_seed(1), 4)
    loss = vm.YOLOLoss(model.anchors, model.strides, 4)
    losses = loss(heads, targets)
    assert set(losses) == {"loss_box", "loss_obj", "loss_cls"} and all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_box"] > 0 and losses["loss_cls"] > 0
    _step_lowers(model, lambda: sum(loss(model(x), targets).values()))


def test_yolo_assignment_hand_case():
    # One 24 x 24 box centred at (44, 20) on a 64 x 64 image, anchors of the
    # first scale (stride 8) 20 x 20 (ratio 1.2: matched) and 100 x 100
    # (ratio 4.2: not within 4). The centre is cell (x 5.5, y 2.5): exactly
    # half way, so no neighbour is nearer than the other, and only the
    # centre cell (row 2, column 5) and anchor 0 take it.
    anchors = torch.tensor([[[20.0, 20.0], [100.0, 100.0]]] * 3)
    loss = vm.YOLOLoss(anchors, (8, 16, 32), 3)
    target = [{"boxes": torch.tensor([[32.0, 8.0, 56.0, 32.0]]), "labels": torch.tensor([2])}]
    b, a, gy, gx, gt, labels = loss.assign(0, (8, 8), target, torch.device("cpu"))
    assert b.tolist() == [0] and a.tolist() == [0] and gy.tolist() == [2] and gx.tolist() == [5]
    assert labels.tolist() == [2] and torch.equal(gt, target[0]["boxes"])
    # Moved to (42, 22): fractions 0.25 and 0.75, so the left and lower
    # neighbours join: three cells.
    target[0]["boxes"] = torch.tensor([[30.0, 10.0, 54.0, 34.0]])
    b, a, gy, gx, _, _ = loss.assign(0, (8, 8), target, torch.device("cpu"))
    assert sorted(zip(gy.tolist(), gx.tolist())) == [(2, 4), (2, 5), (3, 5)]


def test_yolo_padded_inference_exports_and_matches_eager_nms():
    torch.manual_seed(3)
    model = vm.yolo_small(3, image_size=96, score_threshold=1e-6).eval()  # below the untrained prior
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        out = model.forward_padded(x)
        heads = model(x)
    d = model.max_detections
    assert out["boxes"].shape == (2, d, 4) and out["labels"].shape == (2, d) and out["counts"].shape == (2,)
    # Equal to decoding and per-class NMS image by image.
    boxes, scores, classes, counts = visionops.yolo_decode(heads, model.anchors, [8, 16, 32], score_threshold=1e-6,
                                                           max_detections=model.candidates)
    assert int(out["counts"].min()) > 0
    for i in range(2):
        n = int(counts[i])
        keep = visionops.batched_nms(boxes[i, :n], scores[i, :n], classes[i, :n], model.iou_threshold)[:d]
        assert int(out["counts"][i]) == keep.numel()
        torch.testing.assert_close(out["scores"][i, : keep.numel()], scores[i, keep])
        assert torch.equal(out["labels"][i, : keep.numel()], classes[i, keep])
    program = torch.export.export(vm.PaddedInference(model), (x,))
    exported = program.module()(x)
    for key in out:
        torch.testing.assert_close(exported[key], out[key], rtol=0, atol=0)


# ------------------------------------------------------------------ DETR


def test_detr_forward_loss_and_a_step():
    torch.manual_seed(0)
    model = vm.detr_small(5, num_queries=10)
    x = torch.rand(2, 3, 128, 128)
    out = model(x)
    # Training: 4 query groups, each image's predictions as 4 rows of 10.
    assert out["groups"] == 4
    assert out["pred_logits"].shape == (8, 10, 6) and out["pred_boxes"].shape == (8, 10, 4)
    assert out["aux_logits"].shape == (2, 8, 10, 6)
    targets = _boxes_targets(2, 128, torch.Generator().manual_seed(2), 5)
    crit = vm.DETRLoss(5)
    losses = crit(out, targets, image_size=(128, 128))
    assert set(losses) == {"loss_ce", "loss_bbox", "loss_giou"} and all(torch.isfinite(v) for v in losses.values())
    _step_lowers(model, lambda: sum(crit(model(x), targets, image_size=(128, 128)).values()), lr=1e-4)


@pytest.mark.parametrize("refine_boxes", [False, True])
def test_detr_query_groups_are_independent(refine_boxes):
    """Group 0 in training is the inference model (the groups' self-attention
    is masked apart), and a loss over identical groups is one group's loss."""
    torch.manual_seed(0)
    model = vm.detr_small(3, num_queries=6, groups=3, refine_boxes=refine_boxes)
    x = torch.rand(2, 3, 96, 96)
    model.train()
    model.backbone.eval()  # batch statistics aside, training and inference compute alike (no dropout)
    with torch.no_grad():
        train = model(x)
        infer = model.eval()(x)
    assert "groups" not in infer and infer["pred_boxes"].shape == (2, 6, 4)
    torch.testing.assert_close(train["pred_boxes"][::3], infer["pred_boxes"])
    torch.testing.assert_close(train["pred_logits"][::3], infer["pred_logits"])
    targets = _boxes_targets(2, 96, torch.Generator().manual_seed(4), 3)
    crit = vm.DETRLoss(3)
    one = crit(infer, targets, image_size=(96, 96))
    same = {k: v.repeat_interleave(3, dim=-3) for k, v in infer.items()}
    three = crit({**same, "groups": 3}, targets, image_size=(96, 96))
    for key in one:
        torch.testing.assert_close(three[key], one[key])


def test_detr_matching_feeds_the_loss_hand_case():
    # Two queries, one target (class 1, the left half of a 10 x 10 image).
    # Query 0 predicts the right half with class 0; query 1 the target's own
    # box with class 1: the matcher must pick query 1, so the L1 and GIoU
    # terms are 0 and query 0 is "no object".
    crit = vm.DETRLoss(2, eos_coef=0.1, ce_weight=1.0, bbox_weight=5.0, giou_weight=2.0)
    logits = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]]])
    boxes = torch.tensor([[[0.75, 0.5, 0.5, 1.0], [0.25, 0.5, 0.5, 1.0]]])  # cx, cy, w, h
    outputs = {"pred_logits": logits, "pred_boxes": boxes, "aux_logits": logits[None, :0].reshape(0, 1, 2, 3),
               "aux_boxes": boxes[None, :0].reshape(0, 1, 2, 4)}
    target = [{"boxes": torch.tensor([[0.0, 0.0, 5.0, 10.0]]), "labels": torch.tensor([1])}]
    losses = crit(outputs, target, image_size=(10, 10))
    assert losses["loss_bbox"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_giou"].item() == pytest.approx(0.0, abs=1e-6)
    # Cross-entropy: query 0 -> class 2 (no object, weight 0.1), query 1 -> class 1 (weight 1).
    lp = torch.log_softmax(logits[0], -1)
    expected = -(0.1 * lp[0, 2] + 1.0 * lp[1, 1]) / 1.1
    assert losses["loss_ce"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_detr_no_targets_and_inference_format():
    torch.manual_seed(1)
    model = vm.detr_small(3, num_queries=7).eval()
    x = torch.rand(1, 3, 64, 96)
    crit = vm.DETRLoss(3)
    losses = crit(model(x), [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}],
                  image_size=(64, 96))
    assert losses["loss_bbox"] == 0 and losses["loss_giou"] == 0 and losses["loss_ce"] > 0
    with torch.no_grad():
        out = model.forward_padded(x)
    assert out["boxes"].shape == (1, 7, 4) and int(out["counts"][0]) == 7
    assert (out["scores"][0, :-1] >= out["scores"][0, 1:]).all() and (out["labels"] < 3).all()
    assert (out["boxes"][..., 2] <= 96 + 1e-4).all() and (out["boxes"][..., 3] <= 64 + 1e-4).all()


# ------------------------------------------------------------------ U-Net


@pytest.mark.parametrize("classes", [1, 4])
def test_unet_any_size_and_a_step(classes):
    torch.manual_seed(0)
    model = vm.UNet(num_classes=classes, depth=3, width=8)
    x = torch.rand(2, 3, 50, 70)  # not a multiple of 8: padded inside, cropped back
    logits = model(x)
    assert logits.shape == (2, classes, 50, 70)
    target = (torch.rand(2, 50, 70) * (classes if classes > 1 else 2)).long()
    loss = vm.UNetLoss(classes)
    losses = loss(logits, target)
    assert set(losses) == {"loss_dice", "loss_ce"}
    _step_lowers(model, lambda: sum(loss(model(x), target).values()), lr=1e-2)


def test_unet_channels_last_only_changes_rounding():
    torch.manual_seed(0)
    fast = vm.UNet(num_classes=5, depth=2, width=8)  # channels-last on CPUs, the default
    exact = vm.UNet(num_classes=5, depth=2, width=8, channels_last=False)
    exact.load_state_dict(fast.state_dict())
    x = torch.rand(2, 3, 36, 44)
    a, b = fast(x), exact(x)
    assert a.is_contiguous(memory_format=torch.channels_last) and b.is_contiguous()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    target = torch.randint(0, 5, (2, 36, 44))
    loss = vm.UNetLoss(5)
    sum(loss(a, target).values()).backward()
    sum(loss(b, target).values()).backward()
    for p, q in zip(fast.parameters(), exact.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5)
