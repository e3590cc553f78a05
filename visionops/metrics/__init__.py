"""Evaluation metrics: COCO-style mAP."""

from visionops.metrics.coco_format import evaluate_coco
from visionops.metrics.mean_ap import MeanAveragePrecision, precision_recall

__all__ = ["MeanAveragePrecision", "evaluate_coco", "precision_recall"]
