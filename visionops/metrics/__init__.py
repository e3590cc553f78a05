"""Evaluation metrics: COCO-style mAP."""

from visionops.metrics.mean_ap import MeanAveragePrecision, evaluate_coco, precision_recall

__all__ = ["MeanAveragePrecision", "evaluate_coco", "precision_recall"]
