"""Data for the models: a built-in synthetic dataset of shapes, the detection
transforms and collate function, and COCO-format export and loading.

    from visionops.data import SyntheticShapes, detection_collate
    train = SyntheticShapes(2000, image_size=256, split="train", seed=0)
    image, target = train[0]   # float [3, H, W] in [0, 1]; boxes, labels, masks, semantic, ...

Nothing is downloaded: images are drawn from their seed and index.
"""

from visionops.data.coco import CocoDetectionFolder, export_coco
from visionops.data.synthetic import CLASSES, SyntheticShapes
from visionops.data.transforms import Compose, RandomHorizontalFlip, ScaleJitter, detection_collate

__all__ = [
    "CLASSES",
    "CocoDetectionFolder",
    "Compose",
    "RandomHorizontalFlip",
    "ScaleJitter",
    "SyntheticShapes",
    "detection_collate",
    "export_coco",
]
