"""Curves kept with each version for the model card: ROC, score histogram, predicted vs actual."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from leadml.ml.evaluate import prediction_pairs, roc_curve_points, score_histogram


def test_roc_curve_is_thinned_monotone_and_spans_the_unit_square() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 5000)
    scores = np.clip(labels * 0.3 + rng.normal(0.35, 0.2, 5000), 0, 1)
    points = roc_curve_points(labels, scores, max_points=40)
    assert 2 < len(points) <= 40
    assert (points[0]["fpr"], points[0]["tpr"]) == (0.0, 0.0) and (points[-1]["fpr"], points[-1]["tpr"]) == (1.0, 1.0)
    fpr = [point["fpr"] for point in points]
    tpr = [point["tpr"] for point in points]
    assert fpr == sorted(fpr) and tpr == sorted(tpr)
    # The thinned curve still encloses about the model's AUC.
    assert abs(np.trapezoid(tpr, fpr) - roc_auc_score(labels, scores)) < 0.01
    assert roc_curve_points(np.ones(10), np.linspace(0, 1, 10)) == []


def test_score_histogram_counts_every_prediction_in_fixed_probability_bins() -> None:
    values = np.array([0.0, 0.04, 0.05, 0.5, 0.99, 1.0])
    bins = score_histogram(values, bins=20, unit_range=True)
    assert len(bins) == 20 and bins[0]["low"] == 0.0 and bins[-1]["high"] == 1.0
    assert sum(item["count"] for item in bins) == len(values)
    assert bins[0]["count"] == 2 and bins[1]["count"] == 1 and bins[-1]["count"] == 2
    assert score_histogram(np.array([])) == []


def test_prediction_pairs_sample_is_reproducible_and_keeps_pairs_together() -> None:
    actual = np.arange(1000, dtype=float)
    predicted = actual * 2
    pairs = prediction_pairs(actual, predicted, max_points=50, seed=3)
    assert len(pairs) == 50 and pairs == prediction_pairs(actual, predicted, max_points=50, seed=3)
    assert all(pred == 2 * real for pred, real in pairs)
    assert len(prediction_pairs(actual[:10], predicted[:10])) == 10
