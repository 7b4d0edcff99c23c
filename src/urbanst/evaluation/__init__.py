"""Evaluation: masked metrics accumulated over a whole split."""

from urbanst.evaluation.metrics import ClassificationMetrics, RegressionMetrics

__all__ = ["ClassificationMetrics", "RegressionMetrics"]
