"""Compare a window of recent predictions with the training data: drift, data quality, performance.

Pure functions on pandas/numpy inputs returning plain dicts (JSON-ready, no numpy scalars), so
the Django layer can store them as they are. Two-sample tests follow Evidently's defaults: a
statistical test while either sample is small, a distance with a fixed threshold once both
are large, because p-values on thousands of rows flag shifts too small to matter.

It stays one module past 400 lines: the drift tests, the data-quality checks and the
performance estimates read the same window and reference, share `DriftThresholds` and make
the one report GET /monitoring returns.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance
from sklearn import metrics as skm

from leadml.ml.evaluate import classification_metrics
from leadml.ml.parsing import to_numeric
from leadml.ml.types import ColumnSpec

INSUFFICIENT_DATA = "insufficient_data"
# PSI compares proportions through a log; an empty bin on either side would make it infinite.
PSI_FLOOR = 1e-4
# Score drift needs a visible effect as well as significance: with thousands of rows a KS
# test is "significant" for shifts nobody would act on. 0.1 is a tenth of the rows moving
# across some score, a change of the ranking a tenant would notice.
SCORE_KS_MIN_STATISTIC = 0.1
PSI_QUANTILES = np.linspace(0.1, 0.9, 9)
# Categorical drift compares the reference's common categories and pools the rest.
RARE_CATEGORY_SHARE = 0.01
MAX_CATEGORIES = 50
OTHER_CATEGORY = "\x00other"


@dataclass(frozen=True)
class DriftThresholds:
    p_value: float = 0.05  # KS (numeric) and chi-square (categorical): drifted when p_value < this
    wasserstein: float = 0.1  # normalised Wasserstein distance: drifted when > this
    jensen_shannon: float = 0.1  # Jensen-Shannon distance (base 2): drifted when > this
    # Either side with up to this many rows: KS / chi-square; both larger: distances. Evidently
    # decides by the reference alone, but a fixed distance threshold on a small window
    # flags noise (a 100-row window from the training distribution passes a normalised
    # Wasserstein of 0.1 two times in three); a test's p-value accounts for the window's size.
    statistical_max_rows: int = 1000
    drift_share: float = 0.5  # dataset drift when the share of drifted features >= this
    psi: float = 0.25  # prediction drift is also reported when PSI > this
    min_rows: int = 30  # fewer non-missing values than this: feature not tested


def _rounded(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None


def _numeric_values(series: pd.Series) -> np.ndarray:
    values = to_numeric(series).to_numpy(dtype=float, na_value=np.nan)
    return values[np.isfinite(values)]


def _category_values(series: pd.Series) -> pd.Series:
    return series.dropna().astype(str)


def _psi(reference_shares: np.ndarray, current_shares: np.ndarray) -> float:
    reference_shares = np.maximum(reference_shares, PSI_FLOOR)
    current_shares = np.maximum(current_shares, PSI_FLOOR)
    return float(np.sum((current_shares - reference_shares) * np.log(current_shares / reference_shares)))


def numeric_psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Return the PSI over bins cut at the reference deciles.

    Only the nine inner deciles are cut points, so the outer bins are open-ended and values
    beyond the training range land in them. Bins are closed on the right so a discrete
    feature (a 0/1 flag, a count) still gets one bin per value instead of collapsing.
    """
    edges = np.unique(np.quantile(reference, PSI_QUANTILES))
    reference_bins = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1)
    current_bins = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    return _psi(reference_bins / len(reference), current_bins / len(current))


def _category_counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Counts per category on both sides, rare categories pooled into one "other" bucket.

    A category is kept when it holds at least RARE_CATEGORY_SHARE of the reference (at most
    MAX_CATEGORIES of them); the rest of the reference and every value the reference never
    saw are pooled. Without pooling a high-cardinality field (company domains, job titles)
    "drifts" in every window, each new sample bringing its own singletons; with it a new
    category that takes a real share of the window still drifts, as "other" grows.
    """
    reference_counts = reference.value_counts()
    kept = reference_counts[reference_counts >= RARE_CATEGORY_SHARE * len(reference)].index[:MAX_CATEGORIES]
    if len(kept) < len(reference_counts) or not current.isin(kept).all():
        reference = reference.where(reference.isin(kept), OTHER_CATEGORY)
        current = current.where(current.isin(kept), OTHER_CATEGORY)
        reference_counts = reference.value_counts()
    current_counts = current.value_counts()
    categories = reference_counts.index.union(current_counts.index)
    return (
        reference_counts.reindex(categories, fill_value=0).to_numpy(dtype=float),
        current_counts.reindex(categories, fill_value=0).to_numpy(dtype=float),
    )


def _wasserstein_scale(reference: np.ndarray) -> float:
    """Return the unit the Wasserstein distance is expressed in, so one threshold fits every feature.

    The reference standard deviation (population, ddof=0); a constant reference has none, so
    its mean absolute value is used instead (a shift relative to the usual magnitude), and 1
    when that is 0 too (a constant zero column: the distance is then in the feature's own units).
    """
    scale = float(np.std(reference))
    if scale > 0:
        return scale
    scale = float(np.mean(np.abs(reference)))
    return scale if scale > 0 else 1.0


def _numeric_test(
    reference: np.ndarray, current: np.ndarray, thresholds: DriftThresholds
) -> tuple[str, float, float | None, float, bool]:
    if min(len(reference), len(current)) <= thresholds.statistical_max_rows:
        result = ks_2samp(reference, current)
        p_value = float(result.pvalue)
        return "ks", float(result.statistic), p_value, thresholds.p_value, p_value < thresholds.p_value
    distance = wasserstein_distance(reference, current) / _wasserstein_scale(reference)
    return "wasserstein", float(distance), None, thresholds.wasserstein, distance > thresholds.wasserstein


def _categorical_test(
    reference_counts: np.ndarray, current_counts: np.ndarray, reference_rows: int, thresholds: DriftThresholds
) -> tuple[str, float, float | None, float, bool]:
    """Test category counts: a 2xK contingency chi-square while the reference is small.

    The contingency test (rather than goodness of fit against the reference proportions)
    treats the reference as the sample it is: no smoothing is needed for a category absent
    from the reference, and a single row of a new category is not proof of drift, while a
    new category holding a real share of the window drifts as it should.
    """
    if min(reference_rows, int(current_counts.sum())) <= thresholds.statistical_max_rows:
        if len(reference_counts) < 2:  # one category on both sides: nothing can have moved
            return "chi_square", 0.0, 1.0, thresholds.p_value, False
        result = chi2_contingency(np.vstack([reference_counts, current_counts]))
        p_value = float(result.pvalue)
        return "chi_square", float(result.statistic), p_value, thresholds.p_value, p_value < thresholds.p_value
    distance = float(
        jensenshannon(reference_counts / reference_counts.sum(), current_counts / current_counts.sum(), base=2)
    )
    return "jensen_shannon", distance, None, thresholds.jensen_shannon, distance > thresholds.jensen_shannon


def feature_drift(
    name: str, kind: str, reference: pd.Series, current: pd.Series, thresholds: DriftThresholds
) -> dict[str, Any]:
    """Return whether one feature's window distribution moved away from its training distribution.

    Missing values are dropped from both sides first: more missing values is a data-quality
    finding (see `data_quality`), not a change in the values that are there. The minimum row
    count applies to both sides, as neither test means anything on a handful of values.
    """
    if kind == "numeric":
        reference_values: Any = _numeric_values(reference)
        current_values: Any = _numeric_values(current)
    elif kind == "categorical":
        reference_values = _category_values(reference)
        current_values = _category_values(current)
    else:
        raise ValueError(f"drift is measured on numeric or categorical features, not {kind!r} ({name})")
    reference_rows, current_rows = len(reference_values), len(current_values)
    result: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "method": INSUFFICIENT_DATA,
        "statistic": None,
        "p_value": None,
        "psi": None,
        "threshold": None,
        "drifted": False,
        "reference_rows": reference_rows,
        "current_rows": current_rows,
    }
    if min(reference_rows, current_rows) < thresholds.min_rows:
        return result
    if kind == "numeric":
        method, statistic, p_value, threshold, drifted = _numeric_test(reference_values, current_values, thresholds)
        psi = numeric_psi(reference_values, current_values)
    else:
        reference_counts, current_counts = _category_counts(reference_values, current_values)
        method, statistic, p_value, threshold, drifted = _categorical_test(
            reference_counts, current_counts, reference_rows, thresholds
        )
        psi = _psi(reference_counts / reference_rows, current_counts / current_rows)
    result.update(
        method=method,
        statistic=_rounded(statistic),
        p_value=_rounded(p_value),
        psi=_rounded(psi),
        threshold=float(threshold),
        drifted=bool(drifted),
    )
    return result


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    # An absent column reads as entirely missing rather than failing the whole report.
    return frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def data_drift(
    reference: pd.DataFrame, current: pd.DataFrame, kinds: Mapping[str, str], thresholds: DriftThresholds
) -> dict[str, Any]:
    """Return per-feature drift and whether enough features drifted to call the dataset drifted.

    Features left untested for lack of data are listed but kept out of the share, so a
    column that is rarely filled in cannot dilute (or inflate) the verdict.
    """
    features = [
        feature_drift(name, kind, _column(reference, name), _column(current, name), thresholds)
        for name, kind in kinds.items()
    ]
    tested = [feature for feature in features if feature["method"] != INSUFFICIENT_DATA]
    drifted = sum(1 for feature in tested if feature["drifted"])
    share = drifted / len(tested) if tested else 0.0
    return {
        "dataset_drift": bool(tested) and share >= thresholds.drift_share,
        "drift_share": _rounded(share),
        "drifted_features": drifted,
        "tested_features": len(tested),
        "threshold": thresholds.drift_share,
        "features": features,
    }


def _outlier_share(series: pd.Series, minimum: float | None, maximum: float | None) -> float | None:
    values = _numeric_values(series)
    if len(values) == 0 or (minimum is None and maximum is None):
        return None
    outside = np.zeros(len(values), dtype=bool)
    if minimum is not None:
        outside |= values < minimum
    if maximum is not None:
        outside |= values > maximum
    return float(outside.mean())


def _quality_reasons(row: dict[str, Any], margin: float) -> list[str]:
    reasons = []
    training_missing = row["training_missing_share"] or 0.0
    if row["missing_share"] is not None and row["missing_share"] > training_missing + margin:
        reasons.append(f"missing share {row['missing_share']:.2f} vs {training_missing:.2f} in training")
    training_outliers = row["training_outlier_share"] or 0.0
    if row["outlier_share"] is not None and row["outlier_share"] > training_outliers + margin:
        reasons.append(
            f"{row['outlier_share']:.2f} of values outside the training range vs {training_outliers:.2f} in training"
        )
    return reasons


def data_quality(
    reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[ColumnSpec], margin: float = 0.1
) -> list[dict[str, Any]]:
    """Return per column the window's missing and out-of-range shares next to training's.

    A column is flagged when a share exceeds its training value by more than `margin`: a
    fixed allowance rather than a test, because these shares are meant to stay put and a
    slightly busier week should not raise an alert. A column absent from the window counts
    as entirely missing. Only numeric columns have a range; datetime columns may arrive as
    numeric ages, so they are only checked for missing values.
    """
    rows = []
    for spec in columns:
        row: dict[str, Any] = {
            "name": spec.name,
            "kind": spec.kind,
            "missing_share": None,
            "training_missing_share": _rounded(spec.missing_share),
            "outlier_share": None,
            "training_outlier_share": None,
            "flagged": False,
            "reason": None,
        }
        if spec.kind == "numeric" and spec.name in reference.columns:
            row["training_outlier_share"] = _rounded(_outlier_share(reference[spec.name], spec.minimum, spec.maximum))
        if len(current) > 0:
            window = _column(current, spec.name)
            row["missing_share"] = _rounded(float(window.isna().mean()))
            if spec.kind == "numeric":
                row["outlier_share"] = _rounded(_outlier_share(window, spec.minimum, spec.maximum))
            reasons = _quality_reasons(row, margin)
            row["flagged"] = bool(reasons)
            row["reason"] = "; ".join(reasons) or None
        rows.append(row)
    return rows


def reference_sample_from_quantiles(reference_quantiles: Sequence[float], reference_rows: int) -> np.ndarray:
    """Rebuild an approximate sample of `reference_rows` values from evenly spaced percentiles.

    Each rebuilt value sits at the mid-rank of its row ((i + 0.5) / n), interpolated between
    the stored percentiles, so the sample reproduces the stored distribution to within the
    percentile grid.
    """
    quantiles = np.asarray(reference_quantiles, dtype=float)
    levels = np.linspace(0.0, 1.0, len(quantiles))
    ranks = (np.arange(reference_rows) + 0.5) / reference_rows
    return np.interp(ranks, levels, quantiles)


def score_drift(
    reference_quantiles: Sequence[float], reference_rows: int, scores: np.ndarray, thresholds: DriftThresholds
) -> dict[str, Any]:
    """Return whether the window's predictions moved away from the held-out predictions.

    Drifted when the KS test is significant *and* its statistic exceeds
    SCORE_KS_MIN_STATISTIC, or when the PSI exceeds `thresholds.psi`: a KS test on thousands
    of rows flags trivial shifts, so significance alone is not enough, while a PSI above 0.25
    is the usual "act on it" level on its own.
    """
    current = np.asarray(scores, dtype=float)
    current = current[np.isfinite(current)]
    result: dict[str, Any] = {
        "method": INSUFFICIENT_DATA,
        "statistic": None,
        "p_value": None,
        "psi": None,
        "reference_mean": None,
        "current_mean": None,
        "reference_rows": int(reference_rows),
        "current_rows": len(current),
        "drifted": False,
    }
    if len(reference_quantiles) == 0 or min(reference_rows, len(current)) < thresholds.min_rows:
        return result
    reference = reference_sample_from_quantiles(reference_quantiles, reference_rows)
    test = ks_2samp(reference, current)
    statistic, p_value = float(test.statistic), float(test.pvalue)
    psi = numeric_psi(reference, current)
    significant = p_value < thresholds.p_value and statistic > SCORE_KS_MIN_STATISTIC
    result.update(
        method="ks",
        statistic=_rounded(statistic),
        p_value=_rounded(p_value),
        psi=_rounded(psi),
        reference_mean=_rounded(float(reference.mean())),
        current_mean=_rounded(float(current.mean())),
        drifted=bool(significant or psi > thresholds.psi),
    )
    return result


def _ratio(numerator: float, denominator: float) -> float | None:
    return _rounded(numerator / denominator) if denominator > 0 else None


def expected_roc_auc(probabilities: np.ndarray) -> float | None:
    """Return the ROC-AUC expected if each row converts with its own (calibrated) probability.

    Every row counts as p of a positive and 1 - p of a negative. Rows with equal scores are
    one step of the curve, so ties score half, as in sklearn's roc_auc_score (tied rows all
    step by the same (p, 1 - p), so grouping them only saves curve points).
    """
    scores, inverse = np.unique(probabilities, return_inverse=True)
    positives = np.bincount(inverse, weights=probabilities, minlength=len(scores))[::-1]
    negatives = np.bincount(inverse, weights=1.0 - probabilities, minlength=len(scores))[::-1]
    if positives.sum() <= 0 or negatives.sum() <= 0:
        return None
    true_positive_rate = np.concatenate([[0.0], np.cumsum(positives) / positives.sum()])
    false_positive_rate = np.concatenate([[0.0], np.cumsum(negatives) / negatives.sum()])
    return float(np.trapezoid(true_positive_rate, false_positive_rate))


def estimate_performance(probabilities: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Estimate classification metrics without labels (NannyML's CBPE).

    Valid only for calibrated probabilities: each row then contributes p to the positives
    and 1 - p to the negatives, which gives an expected confusion matrix. The estimate
    cannot see concept drift (the same scores converting at a different rate).
    """
    values = np.asarray(probabilities, dtype=float)
    values = np.clip(values[np.isfinite(values)], 0.0, 1.0)
    rows = len(values)
    result: dict[str, Any] = {
        "method": "cbpe",
        "rows": rows,
        "roc_auc": None,
        "accuracy": None,
        "precision": None,
        "recall": None,
        "f1": None,
        "threshold": threshold,
    }
    if rows < 1:
        return result
    predicted_positive = values >= threshold
    true_positive = float(values[predicted_positive].sum())
    false_positive = float((1.0 - values[predicted_positive]).sum())
    false_negative = float(values[~predicted_positive].sum())
    true_negative = float((1.0 - values[~predicted_positive]).sum())
    result.update(
        roc_auc=_rounded(expected_roc_auc(values)),
        accuracy=_rounded((true_positive + true_negative) / rows),
        precision=_ratio(true_positive, true_positive + false_positive),
        recall=_ratio(true_positive, true_positive + false_negative),
        f1=_ratio(2 * true_positive, 2 * true_positive + false_positive + false_negative),
    )
    return result


def live_metrics(classification: bool, y_true: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Return metrics on the window's predictions whose outcomes are already known.

    Classification reuses the held-out metric definitions (threshold 0.5) so live and test
    numbers compare. Regression computes MAE, RMSE and R² directly: `regression_metrics`
    also computes Spearman and MAPE, which warn on the constant outcomes a small window
    often has, and R² is left None where it is undefined (< 2 rows, constant outcomes)
    instead of sklearn's finite stand-in.
    """
    truth = np.asarray(y_true)
    prediction = np.asarray(predicted, dtype=float)
    rows = len(truth)
    if classification:
        keys = ("roc_auc", "accuracy", "precision", "recall", "f1", "brier")
        if rows == 0:
            return {"rows": 0, **dict.fromkeys(keys)}
        metrics = classification_metrics(truth.astype(int), prediction, threshold=0.5)
        return {"rows": rows, **{key: metrics[key] for key in keys}}
    if rows == 0:
        return {"rows": 0, "mae": None, "rmse": None, "r2": None}
    truth = truth.astype(float)
    defined_r2 = rows >= 2 and float(np.var(truth)) > 0
    return {
        "rows": rows,
        "mae": _rounded(skm.mean_absolute_error(truth, prediction)),
        "rmse": _rounded(np.sqrt(skm.mean_squared_error(truth, prediction))),
        "r2": _rounded(skm.r2_score(truth, prediction)) if defined_r2 else None,
    }
