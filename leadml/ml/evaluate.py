"""Held-out metrics for a fitted model."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn import metrics as skm


def _round(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Return test metrics for the positive (converted) class."""
    predicted = (probabilities >= threshold).astype(int)
    both_classes = len(np.unique(y_true)) == 2
    clipped = np.clip(probabilities, 1e-6, 1 - 1e-6)
    return {
        "accuracy": _round(skm.accuracy_score(y_true, predicted)),
        "precision": _round(skm.precision_score(y_true, predicted, zero_division=0)),
        "recall": _round(skm.recall_score(y_true, predicted, zero_division=0)),
        "f1": _round(skm.f1_score(y_true, predicted, zero_division=0)),
        "roc_auc": _round(skm.roc_auc_score(y_true, probabilities)) if both_classes else None,
        "pr_auc": _round(skm.average_precision_score(y_true, probabilities)) if both_classes else None,
        "log_loss": _round(skm.log_loss(y_true, clipped, labels=[0, 1])),
        "brier": _round(skm.brier_score_loss(y_true, probabilities)),
        "confusion_matrix": skm.confusion_matrix(y_true, predicted, labels=[0, 1]).tolist(),
        "threshold": threshold,
        "positive_rate": _round(float(np.mean(y_true))),
        "test_rows": int(len(y_true)),
    }


def calibration_curve_points(y_true: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Reliability diagram: per bin of predicted probability, the mean prediction vs the observed rate.

    Bins are quantiles of the predictions, so every point rests on a similar number of rows.
    """
    if len(np.unique(y_true)) < 2:
        return []
    edges = np.unique(np.quantile(probabilities, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return []
    assigned = np.clip(np.searchsorted(edges, probabilities, side="right") - 1, 0, len(edges) - 2)
    points = []
    for index in range(len(edges) - 1):
        members = assigned == index
        if members.any():
            points.append(
                {
                    "mean_predicted": _round(float(probabilities[members].mean())),
                    "fraction_positive": _round(float(y_true[members].mean())),
                    "count": int(members.sum()),
                }
            )
    return points


def top_decile_capture(y_true: np.ndarray, predicted: np.ndarray, share: float = 0.1) -> float:
    """Share of the actual total in the top `share` of rows by prediction (ties: first rows first).

    A rank metric that weighs what matters for lifetime value (finding the customers
    worth most) without letting one whale's squared error decide, as R² does.
    """
    y_true = np.asarray(y_true, dtype=float)
    total = float(y_true.sum())
    if len(y_true) == 0 or total <= 0:
        return 0.0
    count = max(1, int(np.ceil(share * len(y_true))))
    top = np.argsort(-np.asarray(predicted, dtype=float), kind="stable")[:count]
    return float(y_true[top].sum()) / total


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    mse = skm.mean_squared_error(y_true, predicted)
    nonzero = np.abs(y_true) > 1e-9
    mape = float(np.mean(np.abs((y_true[nonzero] - predicted[nonzero]) / y_true[nonzero]))) if nonzero.any() else None
    spearman = spearmanr(y_true, predicted).statistic if len(y_true) > 2 else np.nan
    return {
        "mse": _round(mse),
        "rmse": _round(np.sqrt(mse)),
        "mae": _round(skm.mean_absolute_error(y_true, predicted)),
        "r2": _round(skm.r2_score(y_true, predicted)),
        "mape": _round(mape) if mape is not None else None,
        "spearman": _round(spearman),
        "top_decile_capture": _round(top_decile_capture(y_true, predicted)),
        "test_rows": int(len(y_true)),
    }


def main_metric(model_type_is_classification: bool) -> str:
    return "roc_auc" if model_type_is_classification else "r2"


def roc_curve_points(
    y_true: np.ndarray, probabilities: np.ndarray, max_points: int = 60
) -> list[dict[str, float | None]]:
    """The held-out ROC curve, thinned to at most `max_points` (first and last kept) for the card."""
    if len(np.unique(y_true)) < 2:
        return []
    fpr, tpr, _ = skm.roc_curve(y_true, probabilities, drop_intermediate=True)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).round().astype(int))
    return [{"fpr": _round(fpr[index]), "tpr": _round(tpr[index])} for index in keep]


def score_histogram(values: np.ndarray, bins: int = 20, *, unit_range: bool = False) -> list[dict[str, float | None]]:
    """Held-out predictions per bin (`unit_range`: 0..1 probabilities), for the score distribution chart."""
    if len(values) == 0:
        return []
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0) if unit_range else None)
    return [
        {"low": _round(edges[index]), "high": _round(edges[index + 1]), "count": int(count)}
        for index, count in enumerate(counts)
    ]


def prediction_pairs(
    y_true: np.ndarray, predicted: np.ndarray, max_points: int = 300, seed: int = 0
) -> list[list[float | None]]:
    """A reproducible sample of held-out (predicted, actual) pairs: predicted-vs-actual and residual charts."""
    order = np.arange(len(y_true))
    if len(order) > max_points:
        order = np.sort(np.random.default_rng(seed).choice(order, size=max_points, replace=False))
    return [[_round(predicted[index]), _round(y_true[index])] for index in order]
