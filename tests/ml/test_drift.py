"""Drift, data quality and label-free performance estimation on known synthetic shifts."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from leadml.ml.drift import (
    DriftThresholds,
    data_drift,
    data_quality,
    estimate_performance,
    expected_roc_auc,
    feature_drift,
    live_metrics,
    score_drift,
)
from leadml.ml.types import ColumnSpec

THRESHOLDS = DriftThresholds()
SMALL_REFERENCE = 800  # KS / chi-square
LARGE_REFERENCE = 5000  # Wasserstein / Jensen-Shannon
WINDOW = 500
LARGE_WINDOW = 2000  # with LARGE_REFERENCE: both sides large, so distances
CATEGORIES = np.array(["email", "web", "event", "partner"])
CATEGORY_SHARES = np.array([0.4, 0.3, 0.2, 0.1])


def normal(seed: int, rows: int, mean: float = 0.0) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(mean, 1.0, rows))


def channels(seed: int, rows: int, shares: np.ndarray = CATEGORY_SHARES, categories: np.ndarray = CATEGORIES) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).choice(categories, size=rows, p=shares))


@pytest.mark.parametrize(
    ("reference_rows", "window", "method"),
    [(SMALL_REFERENCE, WINDOW, "ks"), (LARGE_REFERENCE, LARGE_WINDOW, "wasserstein")],
)
def test_numeric_same_distribution_is_not_drifted(reference_rows: int, window: int, method: str) -> None:
    result = feature_drift("company_size", "numeric", normal(1, reference_rows), normal(2, window), THRESHOLDS)
    assert result["method"] == method
    assert result["drifted"] is False
    assert result["psi"] < 0.05


@pytest.mark.parametrize(
    ("reference_rows", "window", "method"),
    [(SMALL_REFERENCE, WINDOW, "ks"), (LARGE_REFERENCE, LARGE_WINDOW, "wasserstein")],
)
def test_numeric_mean_shift_is_drifted(reference_rows: int, window: int, method: str) -> None:
    result = feature_drift("company_size", "numeric", normal(1, reference_rows), normal(2, window, mean=0.5), THRESHOLDS)
    assert result["method"] == method
    assert result["drifted"] is True
    if method == "ks":
        assert result["p_value"] < 0.001
        assert result["threshold"] == THRESHOLDS.p_value
    else:
        assert result["p_value"] is None
        assert result["statistic"] == pytest.approx(0.5, abs=0.1)  # distance in reference std units
        assert result["threshold"] == THRESHOLDS.wasserstein


def test_psi_is_near_zero_without_shift_and_large_for_a_big_shift() -> None:
    reference = normal(1, LARGE_REFERENCE)
    assert feature_drift("x", "numeric", reference, normal(2, 2000), THRESHOLDS)["psi"] < 0.02
    assert feature_drift("x", "numeric", reference, normal(2, 2000, mean=1.0), THRESHOLDS)["psi"] > 0.25


def test_psi_sees_values_beyond_the_training_range() -> None:
    reference = normal(1, SMALL_REFERENCE)
    result = feature_drift("x", "numeric", reference, normal(2, WINDOW, mean=10.0), THRESHOLDS)
    assert result["psi"] > 5  # all of the window in the open-ended top bin


def test_psi_keeps_a_bin_per_value_of_a_binary_feature() -> None:
    rng = np.random.default_rng(3)
    reference = pd.Series(rng.binomial(1, 0.3, SMALL_REFERENCE))
    current = pd.Series(rng.binomial(1, 0.8, WINDOW))
    assert feature_drift("opted_in", "numeric", reference, current, THRESHOLDS)["psi"] > 0.25


@pytest.mark.parametrize(
    ("reference_rows", "window", "method"),
    [(SMALL_REFERENCE, WINDOW, "chi_square"), (LARGE_REFERENCE, LARGE_WINDOW, "jensen_shannon")],
)
def test_categorical_same_proportions_is_not_drifted(reference_rows: int, window: int, method: str) -> None:
    result = feature_drift("channel", "categorical", channels(1, reference_rows), channels(2, window), THRESHOLDS)
    assert result["method"] == method
    assert result["drifted"] is False
    assert result["psi"] < 0.05


@pytest.mark.parametrize(
    ("reference_rows", "window", "method"),
    [(SMALL_REFERENCE, WINDOW, "chi_square"), (LARGE_REFERENCE, LARGE_WINDOW, "jensen_shannon")],
)
def test_categorical_new_category_is_drifted(reference_rows: int, window: int, method: str) -> None:
    with_new = np.append(CATEGORIES, "tiktok")
    shares = np.append(CATEGORY_SHARES * 0.8, 0.2)
    result = feature_drift(
        "channel", "categorical", channels(1, reference_rows), channels(2, window, shares, with_new), THRESHOLDS
    )
    assert result["method"] == method
    assert result["drifted"] is True
    assert result["psi"] > 0.25


def test_categorical_values_are_compared_as_strings() -> None:
    reference = pd.Series(np.random.default_rng(1).choice([1, 2, 3], size=SMALL_REFERENCE))
    current = reference.astype(str).sample(WINDOW, random_state=2)
    result = feature_drift("tier", "categorical", reference, current, THRESHOLDS)
    assert result["drifted"] is False
    assert result["statistic"] < 5


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_missing_values_alone_do_not_cause_drift(kind: str) -> None:
    reference = normal(1, SMALL_REFERENCE) if kind == "numeric" else channels(1, SMALL_REFERENCE)
    current = (normal(2, WINDOW) if kind == "numeric" else channels(2, WINDOW)).astype(object)
    current.iloc[: WINDOW // 2] = None  # half the window missing
    current.iloc[WINDOW // 2 : WINDOW // 2 + 20] = np.nan
    result = feature_drift("x", kind, reference, current, THRESHOLDS)
    assert result["drifted"] is False
    assert result["current_rows"] == WINDOW // 2 - 20
    assert result["reference_rows"] == SMALL_REFERENCE


def test_too_few_values_are_not_tested() -> None:
    current = pd.Series([1.0] * 29 + [None] * 50)
    result = feature_drift("x", "numeric", normal(1, SMALL_REFERENCE), current, THRESHOLDS)
    assert result["method"] == "insufficient_data"
    assert result["drifted"] is False
    assert result["statistic"] is None and result["psi"] is None
    assert result["current_rows"] == 29


def test_a_small_window_is_tested_not_measured_even_against_a_large_reference() -> None:
    # A fixed distance threshold on 100 rows would flag sampling noise; a p-value does not.
    flagged = [
        feature_drift("x", "numeric", normal(1, LARGE_REFERENCE), normal(seed, 100), THRESHOLDS)
        for seed in range(2, 42)
    ]
    assert {result["method"] for result in flagged} == {"ks"}
    assert sum(result["drifted"] for result in flagged) <= 5  # about 5% by construction of the test


def test_constant_reference_does_not_divide_by_zero() -> None:
    result = feature_drift("x", "numeric", pd.Series([0.0] * 2000), pd.Series([0.0] * 2000), THRESHOLDS)
    assert result["method"] == "wasserstein"
    assert result["statistic"] == 0.0 and result["drifted"] is False
    shifted = feature_drift("x", "numeric", pd.Series([4.0] * 2000), pd.Series([5.0] * 2000), THRESHOLDS)
    assert shifted["statistic"] == pytest.approx(0.25)  # relative to the mean absolute value
    assert shifted["drifted"] is True


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="datetime"):
        feature_drift("signup", "datetime", normal(1, 100), normal(2, 100), THRESHOLDS)


def test_drift_result_is_plain_json() -> None:
    result = feature_drift("x", "numeric", normal(1, SMALL_REFERENCE), normal(2, WINDOW), THRESHOLDS)
    assert set(result) == {
        "name", "kind", "method", "statistic", "p_value", "psi", "threshold", "drifted", "reference_rows", "current_rows",
    }
    assert json.loads(json.dumps(result)) == result
    assert all(type(value) in (str, int, float, bool, type(None)) for value in result.values())


def _frame(seed: int, rows: int, numeric: int, categorical: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {f"n{index}": rng.normal(shift, 1.0, rows) for index in range(numeric)}
    columns |= {f"c{index}": rng.choice(CATEGORIES, size=rows, p=CATEGORY_SHARES) for index in range(categorical)}
    return pd.DataFrame(columns)


@pytest.mark.parametrize("reference_rows", [SMALL_REFERENCE, LARGE_REFERENCE])
def test_no_shift_frame_is_not_dataset_drift(reference_rows: int) -> None:
    reference = _frame(1, reference_rows, numeric=10, categorical=5)
    current = _frame(2, WINDOW, numeric=10, categorical=5)
    kinds = {f"n{index}": "numeric" for index in range(10)} | {f"c{index}": "categorical" for index in range(5)}
    report = data_drift(reference, current, kinds, THRESHOLDS)
    assert report["tested_features"] == 15
    assert report["drifted_features"] <= 2
    assert report["dataset_drift"] is False
    assert [feature["name"] for feature in report["features"]] == list(kinds)
    assert json.loads(json.dumps(report)) == report


def test_dataset_drift_share_counts_only_tested_features() -> None:
    reference = _frame(1, SMALL_REFERENCE, numeric=4, categorical=0)
    current = _frame(2, WINDOW, numeric=4, categorical=0)
    current["n0"] += 2.0
    current["n1"] += 2.0
    current["n3"] = np.nan  # untested
    kinds = {"n0": "numeric", "n1": "numeric", "n2": "numeric", "n3": "numeric", "absent": "categorical"}
    report = data_drift(reference, current, kinds, THRESHOLDS)
    assert report["tested_features"] == 3
    assert report["drifted_features"] == 2
    assert report["drift_share"] == pytest.approx(2 / 3, abs=1e-6)
    assert report["dataset_drift"] is True
    assert report["threshold"] == 0.5
    assert [feature["method"] for feature in report["features"]][3:] == ["insufficient_data"] * 2

    stricter = data_drift(reference, current, kinds, DriftThresholds(drift_share=0.7))
    assert stricter["dataset_drift"] is False


def test_nothing_tested_is_no_dataset_drift() -> None:
    report = data_drift(_frame(1, 100, 2, 0), _frame(2, 10, 2, 0), {"n0": "numeric", "n1": "numeric"}, THRESHOLDS)
    assert report == {
        "dataset_drift": False,
        "drift_share": 0.0,
        "drifted_features": 0,
        "tested_features": 0,
        "threshold": 0.5,
        "features": report["features"],
    }


QUALITY_COLUMNS = [
    ColumnSpec(name="company_size", kind="numeric", missing_share=0.0, minimum=1.0, maximum=1000.0),
    ColumnSpec(name="channel", kind="categorical", missing_share=0.05, categories=tuple(CATEGORIES)),
    ColumnSpec(name="signup_date", kind="datetime", missing_share=0.0),
]


def _quality_frame(seed: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "company_size": rng.uniform(1, 1000, rows),
            "channel": rng.choice(CATEGORIES, size=rows),
            "signup_date": rng.uniform(0, 365, rows),  # already converted to an age in days
        }
    )


def test_injected_missing_values_are_measured_and_flagged() -> None:
    reference = _quality_frame(1, 1000)
    current = _quality_frame(2, 1000)
    missing = np.random.default_rng(3).random(1000) < 0.3
    current.loc[missing, "company_size"] = np.nan
    current.loc[missing, "signup_date"] = np.nan
    by_name = {row["name"]: row for row in data_quality(reference, current, QUALITY_COLUMNS)}
    assert by_name["company_size"]["missing_share"] == pytest.approx(0.3, abs=0.03)
    assert by_name["company_size"]["flagged"] is True
    assert "missing share" in by_name["company_size"]["reason"]
    assert by_name["company_size"]["outlier_share"] == 0.0
    assert by_name["signup_date"]["flagged"] is True and by_name["signup_date"]["outlier_share"] is None
    assert by_name["channel"] == {
        "name": "channel",
        "kind": "categorical",
        "missing_share": 0.0,
        "training_missing_share": 0.05,
        "outlier_share": None,
        "training_outlier_share": None,
        "flagged": False,
        "reason": None,
    }


def test_values_beyond_the_training_range_are_counted() -> None:
    reference = _quality_frame(1, 1000)
    current = _quality_frame(2, 100)
    current.loc[:9, "company_size"] = 5000.0  # 10 above the maximum
    current.loc[10:14, "company_size"] = -3.0  # 5 below the minimum
    current.loc[15:19, "company_size"] = np.nan  # missing values are not outliers
    company_size = data_quality(reference, current, QUALITY_COLUMNS)[0]
    assert company_size["outlier_share"] == pytest.approx(15 / 95, abs=1e-6)
    assert company_size["training_outlier_share"] == 0.0
    assert company_size["flagged"] is True
    assert "outside the training range" in company_size["reason"]
    assert "missing share" not in company_size["reason"]

    # Below the margin: a few odd values are not an alert.
    current = _quality_frame(2, 100)
    current.loc[:4, "company_size"] = 5000.0
    assert data_quality(reference, current, QUALITY_COLUMNS)[0]["flagged"] is False


def test_empty_window_has_no_shares_and_is_not_flagged() -> None:
    rows = data_quality(_quality_frame(1, 100), _quality_frame(2, 0), QUALITY_COLUMNS)
    assert all(row["missing_share"] is None and row["outlier_share"] is None for row in rows)
    assert not any(row["flagged"] for row in rows)


def test_column_absent_from_the_window_reads_as_missing() -> None:
    current = _quality_frame(2, 50).drop(columns=["channel"])
    channel = data_quality(_quality_frame(1, 100), current, QUALITY_COLUMNS)[1]
    assert channel["missing_share"] == 1.0 and channel["flagged"] is True


def _held_out(seed: int = 1, rows: int = 2000) -> tuple[list[float], int]:
    scores = np.random.default_rng(seed).beta(2, 5, rows)
    return np.percentile(scores, np.arange(101)).tolist(), rows


def test_scores_from_the_same_distribution_are_not_drifted() -> None:
    quantiles, rows = _held_out()
    result = score_drift(quantiles, rows, np.random.default_rng(2).beta(2, 5, 3000), THRESHOLDS)
    assert result["method"] == "ks"
    assert result["drifted"] is False
    assert result["statistic"] < 0.05
    assert result["psi"] < 0.05
    assert result["reference_mean"] == pytest.approx(2 / 7, abs=0.01)
    assert result["current_rows"] == 3000 and result["reference_rows"] == 2000
    assert json.loads(json.dumps(result)) == result


def test_shifted_scores_are_drifted() -> None:
    quantiles, rows = _held_out()
    result = score_drift(quantiles, rows, np.random.default_rng(2).beta(4, 4, 1000), THRESHOLDS)
    assert result["drifted"] is True
    assert result["statistic"] > 0.3
    assert result["psi"] > 0.25
    assert result["current_mean"] == pytest.approx(0.5, abs=0.02)


def test_a_trivial_but_significant_score_shift_is_not_drifted() -> None:
    quantiles, rows = _held_out(rows=20000)
    scores = np.clip(np.random.default_rng(2).beta(2, 5, 20000) + 0.02, 0, 1)
    result = score_drift(quantiles, rows, scores, THRESHOLDS)
    assert result["p_value"] < THRESHOLDS.p_value
    assert result["drifted"] is False


def test_score_drift_needs_quantiles_and_enough_scores() -> None:
    quantiles, rows = _held_out()
    assert score_drift([], rows, np.full(500, 0.3), THRESHOLDS)["method"] == "insufficient_data"
    few = score_drift(quantiles, rows, np.full(29, 0.9), THRESHOLDS)
    assert few["method"] == "insufficient_data" and few["drifted"] is False and few["statistic"] is None


def test_cbpe_matches_realised_metrics_on_calibrated_probabilities() -> None:
    rng = np.random.default_rng(7)
    probabilities = rng.beta(2, 3, 20000)
    outcomes = rng.binomial(1, probabilities)
    predicted = (probabilities >= 0.5).astype(int)
    estimate = estimate_performance(probabilities)
    assert estimate["method"] == "cbpe" and estimate["rows"] == 20000 and estimate["threshold"] == 0.5
    assert estimate["roc_auc"] == pytest.approx(skm.roc_auc_score(outcomes, probabilities), abs=0.02)
    assert estimate["accuracy"] == pytest.approx(skm.accuracy_score(outcomes, predicted), abs=0.02)
    assert estimate["precision"] == pytest.approx(skm.precision_score(outcomes, predicted), abs=0.02)
    assert estimate["recall"] == pytest.approx(skm.recall_score(outcomes, predicted), abs=0.02)
    assert estimate["f1"] == pytest.approx(skm.f1_score(outcomes, predicted), abs=0.02)


def _pairwise_expected_auc(probabilities: list[float]) -> float:
    """Every (positive, negative) pair of rows, weighted p_i (1 - p_j); a tie scores half."""
    won = total = 0.0
    for positive in probabilities:
        for negative in probabilities:
            weight = positive * (1 - negative)
            total += weight
            won += weight * (1.0 if positive > negative else 0.5 if positive == negative else 0.0)
    return won / total


def test_expected_auc_matches_brute_force_with_ties() -> None:
    probabilities = [0.9, 0.7, 0.7, 0.4, 0.4, 0.4, 0.1, 0.7]
    brute_force = _pairwise_expected_auc(probabilities)
    assert expected_roc_auc(np.array(probabilities)) == pytest.approx(brute_force, abs=1e-12)
    # The same number from sklearn: each row as a positive weighted p and a negative weighted 1 - p.
    values = np.array(probabilities)
    weighted = skm.roc_auc_score(
        np.r_[np.ones(len(values)), np.zeros(len(values))], np.r_[values, values], sample_weight=np.r_[values, 1 - values]
    )
    assert brute_force == pytest.approx(weighted, abs=1e-12)
    assert estimate_performance(values)["roc_auc"] == pytest.approx(brute_force, abs=1e-6)


def test_cbpe_degenerate_inputs_give_none() -> None:
    assert estimate_performance(np.array([])) == {
        "method": "cbpe", "rows": 0, "roc_auc": None, "accuracy": None, "precision": None, "recall": None, "f1": None,
        "threshold": 0.5,
    }
    all_low = estimate_performance(np.array([0.1, 0.2, 0.3]))
    assert all_low["precision"] is None  # nothing predicted positive
    assert all_low["accuracy"] == pytest.approx(0.8)
    assert all_low["recall"] == 0.0
    assert estimate_performance(np.array([1.0, 1.0]))["roc_auc"] is None  # no expected negatives


def test_live_classification_metrics_on_a_hand_computed_example() -> None:
    outcomes = np.array([1, 0, 1, 0, 1])
    probabilities = np.array([0.9, 0.6, 0.4, 0.2, 0.8])
    # predicted 1,1,0,0,1 -> TP 2, FP 1, FN 1, TN 1
    metrics = live_metrics(True, outcomes, probabilities)
    assert metrics == {
        "rows": 5,
        "roc_auc": pytest.approx(5 / 6, abs=1e-6),  # 5 of the 6 (positive, negative) pairs ranked right
        "accuracy": 0.6,
        "precision": pytest.approx(2 / 3, abs=1e-6),
        "recall": pytest.approx(2 / 3, abs=1e-6),
        "f1": pytest.approx(2 / 3, abs=1e-6),
        "brier": pytest.approx((0.01 + 0.36 + 0.36 + 0.04 + 0.04) / 5, abs=1e-6),
    }
    one_class = live_metrics(True, np.array([1, 1]), np.array([0.7, 0.2]))
    assert one_class["roc_auc"] is None and one_class["accuracy"] == 0.5
    assert live_metrics(True, np.array([]), np.array([]))["accuracy"] is None


def test_live_regression_metrics_on_a_hand_computed_example() -> None:
    metrics = live_metrics(False, np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 4.0, 2.0]))
    # errors 0, 0, -1, 2 -> MAE 0.75, MSE 1.25, residual sum of squares 5 = total sum of squares 5 -> R² 0
    assert metrics == {
        "rows": 4,
        "mae": 0.75,
        "rmse": pytest.approx(math.sqrt(1.25), abs=1e-6),
        "r2": 0.0,
    }
    assert live_metrics(False, np.array([3.0]), np.array([1.0])) == {"rows": 1, "mae": 2.0, "rmse": 2.0, "r2": None}
    assert live_metrics(False, np.array([2.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0]))["r2"] is None
    assert live_metrics(False, np.array([]), np.array([])) == {"rows": 0, "mae": None, "rmse": None, "r2": None}


def test_drift_does_not_import_django() -> None:
    code = "import sys, leadml.ml.drift; assert 'django' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_high_cardinality_categories_from_the_same_source_do_not_drift() -> None:
    # Company domains: almost every lead brings its own, in training and in each window.
    rng = np.random.default_rng(7)
    def domains(rows: int) -> pd.Series:
        shared = rng.choice(["gmail.com", "yahoo.com", "outlook.com"], size=rows, p=[0.5, 0.3, 0.2])
        unique = [f"company{rng.integers(0, 10**9)}.com" for _ in range(rows)]
        return pd.Series(np.where(rng.random(rows) < 0.4, shared, unique))

    for reference_rows, window in ((SMALL_REFERENCE, WINDOW), (LARGE_REFERENCE, LARGE_WINDOW)):
        result = feature_drift("email", "categorical", domains(reference_rows), domains(window), THRESHOLDS)
        assert result["drifted"] is False, result
        assert result["psi"] < 0.1, result
