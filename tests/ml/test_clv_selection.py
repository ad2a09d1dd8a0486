"""Lifetime value that never loses to the run-rate: baselines in `auto`, heavy tails, whale-robust choice."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.ml.evaluate import top_decile_capture
from leadml.ml.pipeline import ALGORITHMS, RunRateRegressor, algorithms_for, default_grid
from leadml.ml.search import CLV_SELECTION, run_rate_check
from leadml.ml.train import train_model
from leadml.ml.transactions import normalise_transactions, training_table
from leadml.ml.types import FeatureOptions, TrainingConfig

SMALL_GRIDS = {
    "random_forest": {"min_samples_leaf": [5], "criterion": ["squared_error", "poisson"]},
    "gradient_boosting": {"max_leaf_nodes": [15], "loss": ["squared_error", "poisson"]},
    "linear_regression": [{"loss": ["squared_error"], "alpha": [1.0]}, {"loss": ["tweedie"], "alpha": [1e-3]}],
    "neural_network": {"regressor__alpha": [1e-2]},
}


def whale_log(customers: int = 200, seed: int = 1) -> pd.DataFrame:
    """Wholesale buyers who order steadily at their own cadence and size until the end; a few are whales.

    The size of a customer's orders is lognormal with sigma 1.8: the top 1 % of customers
    hold about half of the future spend. Nobody stops buying, so spend per day so far is
    what the next half-year brings: the run-rate's home ground.
    """
    rng = np.random.default_rng(seed)
    cut, end = pd.Timestamp("2024-06-30"), pd.Timestamp("2024-12-31")
    rows = []
    for number in range(customers):
        day = cut - pd.Timedelta(days=int(rng.integers(60, 540)))
        gap, size = float(rng.uniform(7, 60)), float(rng.lognormal(np.log(100), 1.8))
        while day <= end:
            rows.append({"customer_id": f"w{number:04d}", "date": day.date().isoformat(),
                         "amount": round(size * float(rng.uniform(0.5, 1.5)), 2)})
            day += pd.Timedelta(days=max(1, int(round(gap * float(rng.uniform(0.5, 1.5))))))
    return pd.DataFrame(rows)


def test_run_rate_stays_a_candidate_when_the_btyd_features_are_switched_off() -> None:
    log = normalise_transactions(whale_log(60))
    features, target = training_table(log, calibration_end="2024-06-30", horizon_days=180)
    result = train_model(
        features, target, model_type="customer_lifetime_value", algorithm="auto",
        config=TrainingConfig(
            cv_folds=2, param_grid={name: grid for name, grid in SMALL_GRIDS.items()},
            feature_options=FeatureOptions(btyd=False, btyd_horizon_days=180), time_budget_s=0.001,
        ),
    )
    candidates = {candidate["algorithm"]: candidate for candidate in result.report["candidates"]}
    assert candidates["btyd"]["skipped"] == "feature_engineering.btyd is off"
    # The baseline is never skipped for time: it is what the others must beat.
    assert "cv_mae" in candidates["run_rate"] and "time budget" in candidates["neural_network"]["skipped"]


def test_run_rate_and_btyd_are_candidates_of_auto_on_transaction_tables_only() -> None:
    assert algorithms_for("customer_lifetime_value", transactions=True)[:2] == ["btyd", "run_rate"]
    assert "run_rate" not in algorithms_for("customer_lifetime_value")
    assert ALGORITHMS["run_rate"].needs_transactions and not ALGORITHMS["run_rate"].applies_to("lead_conversion")
    # Trees and the linear model may use a loss made for heavy tails; CV decides.
    assert "poisson" in default_grid("customer_lifetime_value", "gradient_boosting")["loss"]
    assert "poisson" in default_grid("customer_lifetime_value", "random_forest")["criterion"]
    assert {part["loss"][0] for part in default_grid("customer_lifetime_value", "linear_regression")} == {
        "squared_error", "tweedie",
    }


def test_the_run_rate_is_spend_per_day_observed_times_the_horizon() -> None:
    model = RunRateRegressor(horizon_days=180).fit(np.zeros((1, 2)), [0.0])
    # 900 over 89 + 1 days; a customer first seen 4 days ago counts 30 days, not 5.
    np.testing.assert_allclose(model.predict(np.array([[900.0, 89.0], [300.0, 4.0]])), [1800.0, 1800.0])


def test_top_decile_capture_is_the_actual_share_of_the_top_predictions() -> None:
    actual = np.array([100.0, 0, 0, 0, 0, 0, 0, 0, 0, 900.0])
    assert top_decile_capture(actual, np.arange(10.0)) == pytest.approx(0.9)
    assert top_decile_capture(actual, -np.arange(10.0)) == pytest.approx(0.1)


def test_a_model_that_does_not_beat_the_run_rate_on_held_out_customers_is_not_served() -> None:
    candidates = [
        {"algorithm": "run_rate", "cv_mean": 0.3, "test_mae": 564.0, "test_top_decile_capture": 0.50},
        {"algorithm": "random_forest", "cv_mean": 0.62, "test_mae": 657.0, "test_top_decile_capture": 0.52},
        {"algorithm": "btyd", "cv_mean": 0.5, "test_mae": 500.0, "test_top_decile_capture": 0.51},
    ]
    losing = run_rate_check("random_forest", candidates)
    assert losing["served"] == "run_rate" and "the run-rate serves" in losing["run_rate_check"]
    winning = run_rate_check("btyd", candidates)
    assert winning["served"] == "btyd" and winning["criterion"] == CLV_SELECTION


def test_on_a_whale_heavy_log_where_the_run_rate_wins_the_run_rate_serves() -> None:
    log = normalise_transactions(whale_log())
    features, target = training_table(log, calibration_end="2024-06-30", horizon_days=180)
    result = train_model(
        features, target, model_type="customer_lifetime_value", algorithm="auto",
        config=TrainingConfig(cv_folds=2, param_grid=SMALL_GRIDS, feature_options=FeatureOptions(btyd_horizon_days=180)),
    )
    candidates = {candidate["algorithm"]: candidate for candidate in result.report["candidates"]}
    assert set(candidates) == set(algorithms_for("customer_lifetime_value", transactions=True))
    run_rate = candidates["run_rate"]
    # Spend so far predicts whales best, in CV and on the held-out customers alike.
    assert run_rate["cv_mae"] == min(candidate["cv_mae"] for candidate in candidates.values())
    assert run_rate["test_mae"] == min(candidate["test_mae"] for candidate in candidates.values())
    assert result.algorithm == "run_rate" and result.bundle.algorithm == "run_rate"
    selection = result.report["selection"]
    assert selection["served"] == "run_rate" and selection["criterion"] == CLV_SELECTION
    assert result.metrics["mae"] == pytest.approx(run_rate["test_mae"], rel=1e-6)
    # The leakage scan knows the service built these columns before the cut-off.
    assert result.report["leakage"]["excluded"] == []
    # And the served run-rate scores raw customer rows like any model.
    records = features.head(3).astype(object).where(features.head(3).notna(), None).to_dict("records")
    served = result.bundle.predict(result.bundle.prepare(records).frame)
    expected = features.head(3)["total_spend"] / np.maximum(features.head(3)["tenure_days"] + 1, 30) * 180
    np.testing.assert_allclose(served, expected.to_numpy())
