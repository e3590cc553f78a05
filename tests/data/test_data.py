"""visionops.data: the synthetic dataset is deterministic and its boxes,
masks, labels and semantic maps agree; the transforms move them together;
COCO export and loading round-trip."""

from __future__ import annotations

import pytest
import torch

import visionops
from visionops.data import (
    CLASSES,
    CocoDetectionFolder,
    Compose,
    RandomHorizontalFlip,
    ScaleJitter,
    SyntheticShapes,
    detection_collate,
    export_coco,
)
from visionops.data.coco import rle_counts, unpack_masks


def assert_consistent(image: torch.Tensor, target: dict) -> None:
    masks, boxes, labels = target["masks"], target["boxes"], target["labels"]
    k = masks.shape[0]
    assert image.dtype == torch.float32 and image.shape[0] == 3
    assert 0 <= image.min() and image.max() <= 1
    assert boxes.shape == (k, 4) and labels.shape == (k,) and target["area"].shape == (k,)
    assert masks.dtype == torch.uint8 and masks.shape[1:] == image.shape[1:]
    if k:
        # The boxes are the masks' pixel extents, one past the last pixel.
        tight = visionops.masks_to_boxes(masks) + torch.tensor([0.0, 0.0, 1.0, 1.0])
        assert torch.equal(boxes, tight)
        assert labels.min() >= 1 and labels.max() <= len(CLASSES)
        assert torch.equal(target["area"], masks.flatten(1).sum(1).float())
        assert masks.sum(0).max() <= 1  # occlusion: a pixel belongs to one object at most
    expected = torch.zeros(image.shape[1:], dtype=torch.int64)
    for m, lab in zip(masks, labels):
        expected[m.bool()] = lab
    assert torch.equal(target["semantic"], expected)


def test_deterministic_and_consistent():
    a = SyntheticShapes(12, (96, 128), seed=7)
    b = SyntheticShapes(12, (96, 128), seed=7)
    order = [5, 0, 11, 3]
    for i in order:  # any order, a fresh instance: the same images
        ia, ta = a[i]
        ib, tb = b[i]
        assert torch.equal(ia, ib) and torch.equal(ta["masks"], tb["masks"]) and torch.equal(ta["labels"], tb["labels"])
    counts = []
    for i in range(12):
        image, target = a[i]
        assert_consistent(image, target)
        counts.append(len(target["labels"]))
    assert max(counts) > 1  # several objects per image, and some images differ in count
    assert len(set(counts)) > 1
    # Another seed, another split: other images.
    assert not torch.equal(a[0][0], SyntheticShapes(12, (96, 128), seed=8)[0][0])
    assert not torch.equal(a[0][0], SyntheticShapes(12, (96, 128), seed=7, split="val")[0][0])


def test_cache_gives_the_same_items_and_keeps_them_intact():
    plain = SyntheticShapes(4, 48, seed=3)
    cached = SyntheticShapes(4, 48, seed=3, cache=True)
    for _ in range(2):  # the first pass draws, the second reads the cache
        for i in range(4):
            ip, tp = plain[i]
            ic, tc = cached[i]
            assert torch.equal(ip, ic)
            assert tp.keys() == tc.keys()
            for key in tp:
                assert torch.equal(tp[key], tc[key]) if isinstance(tp[key], torch.Tensor) else tp[key] == tc[key]
            # What a caller does to an item never reaches the next epoch's.
            ic.zero_()
            tc["semantic"].fill_(-1)
            tc["boxes"] = None
    flipped = SyntheticShapes(4, 48, seed=3, cache=True, transforms=RandomHorizontalFlip(1.0))
    for i in range(4):
        assert torch.equal(flipped[i][0], plain[i][0].flip(-1))
        assert torch.equal(flipped[i][0], plain[i][0].flip(-1))  # flipped once, not twice


def test_every_class_appears_and_visible_enough():
    ds = SyntheticShapes(40, 128, seed=1, min_visible=0.5)
    seen = set()
    for i in range(len(ds)):
        _, t = ds[i]
        seen.update(t["labels"].tolist())
        assert (t["area"] >= 16).all()
    assert seen == set(range(1, len(CLASSES) + 1))
    only = SyntheticShapes(5, 64, classes=("star",))
    assert all(set(only[i][1]["labels"].tolist()) <= {CLASSES.index("star") + 1} for i in range(5))


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be one of"):
        SyntheticShapes(split="holdout")
    with pytest.raises(ValueError, match="classes must be a non-empty subset"):
        SyntheticShapes(classes=("dog",))
    with pytest.raises(IndexError, match="index 3 out of range for 3 images"):
        SyntheticShapes(3, 32)[3]


def test_transforms_move_boxes_masks_and_semantic_together():
    ds = SyntheticShapes(6, (80, 100), seed=2)
    flip = RandomHorizontalFlip(p=1.0)
    for i in range(6):
        image, target = ds[i]
        fi, ft = flip(image, target)
        assert torch.equal(fi, image.flip(-1))
        assert_consistent(fi, ft)
        back_i, back_t = flip(fi, ft)
        assert torch.equal(back_i, image) and torch.equal(back_t["boxes"], target["boxes"])
    torch.manual_seed(0)
    jitter = Compose([ScaleJitter((0.5, 1.5)), RandomHorizontalFlip(0.5)])
    for i in range(6):
        image, target = jitter(*ds[i])
        k = target["masks"].shape[0]
        assert target["boxes"].shape == (k, 4) and target["labels"].shape == (k,)
        assert_consistent(image, target)
    images, targets = detection_collate([ds[0], ds[1]])
    assert len(images) == 2 and len(targets) == 2 and targets[1]["image_id"] == 1


def test_rle_counts_hand_example():
    # COCO's RLE runs down the columns: this mask reads 0 1 | 1 0 | 0 0 column by column.
    mask = torch.tensor([[0, 1, 0], [1, 0, 0]])
    assert rle_counts(mask) == [1, 2, 3]
    assert rle_counts(torch.ones(2, 2)) == [0, 4]


def test_coco_export_and_load_round_trip(tmp_path):
    ds = SyntheticShapes(5, (64, 72), seed=4)
    path = export_coco(ds, tmp_path)
    loaded = CocoDetectionFolder(tmp_path)
    assert path.endswith("annotations.json") and len(loaded) == 5
    assert loaded.categories == list(CLASSES) and loaded.num_classes == ds.num_classes
    for i in range(5):
        image, target = ds[i]
        li, lt = loaded[i]
        assert (li - image).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit PNG
        assert torch.equal(lt["masks"], target["masks"])
        assert torch.equal(lt["labels"], target["labels"])
        torch.testing.assert_close(lt["boxes"], target["boxes"])
        assert torch.equal(lt["semantic"], target["semantic"])
    packed = visionops.pack_masks(ds[0][1]["masks"])
    assert torch.equal(unpack_masks(packed, 64, 72), ds[0][1]["masks"])


def test_ground_truth_scores_perfect_map():
    from visionops.metrics import MeanAveragePrecision

    ds = SyntheticShapes(6, 96, seed=5)
    for iou_type in ("bbox", "segm"):
        metric = MeanAveragePrecision(iou_type=iou_type)
        for i in range(len(ds)):
            _, t = ds[i]
            pred = {"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"])),
                    "masks": t["masks"].bool()}
            metric.update([pred], [{"boxes": t["boxes"], "labels": t["labels"], "masks": t["masks"].bool()}])
        assert metric.compute()["map"] == pytest.approx(1.0)
