"""Every preprocessing and feature-engineering option changes the fitted pipeline's output."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from demo.data import generate_customers, generate_leads
from leadml.ml.errors import ConfigError
from leadml.ml.features import replace_placeholders, resolve_feature_options
from leadml.ml.promotion import decide_promotion
from leadml.ml.quality import quality_report
from leadml.ml.targets import encode_target
from leadml.ml.train import train_model
from leadml.ml.types import FeatureOptions, TrainingConfig


@pytest.fixture(scope="module")
def leads() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_leads(600, seed=5)
    labels = encode_target(frame.pop("status"), model_type="lead_conversion", positive_values=["customer", "won"])
    return frame, labels


def train(frame: pd.DataFrame, labels: pd.Series, algorithm: str = "logistic_regression", **config: object):
    return train_model(
        frame, labels, model_type="lead_conversion", algorithm=algorithm, config=TrainingConfig(cv_folds=3, **config)
    )


def fit(frame: pd.DataFrame, labels: pd.Series, **config: object):
    """A quick fit for tests of what preprocessing makes of the data (the estimator does not matter there)."""
    return train(frame, labels, algorithm="random_forest", param_grid={"n_estimators": [20]}, calibrate=False, **config)


def transformed(result, frame: pd.DataFrame) -> pd.DataFrame:
    """The matrix the estimator sees, with its column names."""
    steps = result.bundle.pipeline[:-1]
    return pd.DataFrame(steps.transform(frame), columns=steps.get_feature_names_out())


def test_scaling_options_change_the_numbers_the_model_sees(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    standard = transformed(fit(frame, labels, preprocessing={"scaling": "standard"}), frame)
    minmax = transformed(fit(frame, labels, preprocessing={"scaling": "minmax"}), frame)
    none = transformed(fit(frame, labels, preprocessing={"scaling": "none"}), frame)
    assert abs(standard["lead_score"].mean()) < 0.2 and 0.8 < standard["lead_score"].std() < 1.2
    # Fitted on the training rows: held-out rows may fall a little outside [0, 1].
    assert minmax["lead_score"].between(0, 1).mean() > 0.95 and minmax["lead_score"].max() <= 1.2
    assert none["lead_score"].max() > 10  # raw 0-100 scores


def test_imputation_strategies_fill_missing_company_sizes_differently(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    gap = frame[frame["company_size"].isna()].head(1)
    assert len(gap) == 1
    values = {}
    for strategy, extra in (("mean", {}), ("median", {}), ("most_frequent", {}), ("constant", {"fill_value": -7})):
        result = fit(
            frame, labels,
            preprocessing={"missing_value_strategy": strategy, "scaling": "none", **extra},
            feature_options=FeatureOptions(log_transform=False),
        )
        values[strategy] = float(transformed(result, gap)["company_size"].iloc[0])
    sizes = pd.to_numeric(frame["company_size"]).dropna()
    assert values["mean"] == pytest.approx(sizes.mean(), rel=0.2)  # fitted on the training split only
    assert values["median"] == pytest.approx(sizes.median(), rel=0.3)
    assert values["constant"] == -7
    assert len({round(value, 3) for value in values.values()}) == 4


def test_categorical_encodings(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    one_hot = transformed(fit(frame, labels, preprocessing={"categorical_encoding": "one_hot"}), frame)
    label = transformed(fit(frame, labels, preprocessing={"categorical_encoding": "label"}), frame)
    assert any(name.startswith("industry_") for name in one_hot.columns)
    assert "industry" in label.columns and label["industry"].nunique() > 2
    assert set(one_hot.filter(like="industry_").stack().unique()) <= {0.0, 1.0}


@pytest.mark.parametrize("selection", ["k_best", "mutual_info"])
def test_feature_selection_keeps_k_columns(leads: tuple[pd.DataFrame, pd.Series], selection: str) -> None:
    frame, labels = leads
    result = fit(frame, labels, preprocessing={"feature_selection": selection, "k": 4})
    assert result.bundle.pipeline.named_steps["select"].get_support().sum() == 4
    assert result.bundle.pipeline.named_steps["model"].n_features_in_ == 4


def test_date_email_and_seniority_features_switch_off(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    on = fit(frame, labels).report["feature_engineering"]
    names = {feature["feature"] for feature in on["features"]}
    assert {"created_at__age_days", "created_at__month", "created_at__weekday", "email__free_mail",
            "email__domain", "job_title__seniority"} <= names
    assert all(feature["how"] for feature in on["features"])
    off = fit(
        frame, labels,
        feature_options=FeatureOptions(date_features=False, email_features=False, seniority=False),
    )
    off_names = {feature["feature"] for feature in off.report["feature_engineering"]["features"]}
    assert not off_names & {"created_at__age_days", "email__free_mail", "email__domain", "job_title__seniority"}
    assert "job_title" in off_names  # the title itself is still a category
    assert set(off.report["feature_engineering"]["unused_inputs"]) == {"created_at", "email"}
    assert transformed(off, frame).shape[1] < transformed(fit(frame, labels), frame).shape[1]


def test_log_transform_applies_to_skewed_non_negative_numbers(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    result = fit(frame, labels, preprocessing={"scaling": "none"})
    logged = result.report["feature_engineering"]["log_transformed"]
    assert "company_size" in logged and "lead_score" not in logged
    row = frame[frame["company_size"].notna()].head(1)
    assert transformed(result, row)["company_size__log"].iloc[0] == pytest.approx(np.log1p(row["company_size"].iloc[0]))
    plain = fit(frame, labels, preprocessing={"scaling": "none"}, feature_options=FeatureOptions(log_transform=False))
    assert plain.report["feature_engineering"]["log_transformed"] == []
    assert transformed(plain, row)["company_size"].iloc[0] == row["company_size"].iloc[0]


def test_interactions_multiply_the_chosen_pair(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    options = FeatureOptions(log_transform=False, interactions=(("website_visits", "email_interactions"),))
    result = fit(frame, labels, preprocessing={"scaling": "none"}, feature_options=options)
    row = frame.head(1)
    expected = row["website_visits"].iloc[0] * row["email_interactions"].iloc[0]
    assert transformed(result, row)["website_visits__x__email_interactions"].iloc[0] == pytest.approx(expected)
    # Importance of the product is shared by both inputs; it is reported per input column.
    assert {name for name, _ in result.feature_importance} == set(result.bundle.schema.names)
    with pytest.raises(ConfigError, match="not a numeric input column"):
        fit(frame, labels, feature_options=FeatureOptions(interactions=(("industry", "website_visits"),)))


def test_placeholders_become_missing_at_training_and_at_prediction(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    dirty = frame.copy()
    dirty.loc[dirty.index[:100], "industry"] = "Select"
    dirty["company_size"] = dirty["company_size"].astype(object)
    dirty.loc[dirty.index[100:150], "company_size"] = "unknown"
    options = FeatureOptions(missing_values=("select", "Unknown"))
    result = fit(dirty, labels, feature_options=options)
    kinds = {column.name: column.kind for column in result.bundle.schema.columns}
    assert kinds["company_size"] == "numeric"  # "unknown" did not turn the column into text
    industry = next(column for column in result.bundle.schema.columns if column.name == "industry")
    assert "Select" not in industry.categories
    prepared = result.bundle.prepare([{"industry": "Select", "company_size": "unknown"}])
    assert prepared.frame.iloc[0].isna().all() or prepared.frame[["industry", "company_size"]].iloc[0].isna().all()
    assert "missing fields imputed" in " ".join(prepared.warnings[0])
    cleaned = replace_placeholders(pd.DataFrame({"a": ["Select", "x", None], "b": [999, 1, 2]}), ["select", "999"])
    assert cleaned["a"].isna().tolist() == [True, False, True]
    assert cleaned["b"].isna().tolist() == [True, False, False]


def test_feature_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="allowed"):
        resolve_feature_options({"polynomials": True})
    with pytest.raises(ConfigError, match="true or false"):
        resolve_feature_options({"log_transform": "yes"})
    with pytest.raises(ConfigError, match="pairs"):
        resolve_feature_options({"interactions": [["only_one"]]})
    assert resolve_feature_options({"missing_values": ["Select", -1]}).missing_values == ("Select", "-1")


def test_lead_probabilities_are_calibrated_with_brier_before_and_after(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    result = train(frame, labels, algorithm="random_forest")
    calibration = result.report["calibration"]
    assert calibration["method"] == "sigmoid"  # fewer than 1000 training rows
    assert calibration["brier_after"] == result.metrics["brier"]
    assert calibration["brier_before"] == result.metrics["brier_uncalibrated"]
    curve = result.metrics["calibration_curve"]
    assert sum(point["count"] for point in curve) == result.metrics["test_rows"]
    assert all(0 <= point["fraction_positive"] <= 1 for point in curve)
    # The served probabilities are the calibrator's, not the raw forest's.
    prepared = result.bundle.prepare(frame.head(20).astype(object).where(frame.head(20).notna(), None).to_dict("records"))
    served = result.bundle.predict(prepared.frame)
    raw = result.bundle.pipeline.predict_proba(prepared.frame)[:, 1]
    assert not np.allclose(served, raw)
    uncalibrated = train(frame, labels, algorithm="random_forest", calibrate=False)
    assert uncalibrated.report["calibration"] is None and uncalibrated.bundle.calibrator is None


def test_auto_reports_every_candidate_and_respects_the_time_budget(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    result = train(frame, labels, algorithm="auto", time_budget_s=0.001)
    candidates = result.report["candidates"]
    assert len(candidates) == 4
    assert "cv_mean" in candidates[0] and candidates[0]["seconds"] > 0
    assert all("time budget" in candidate["skipped"] for candidate in candidates[1:])
    assert result.algorithm == candidates[0]["algorithm"]


def test_leakage_suspects_are_flagged_and_excluded_unless_allowed(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    leaky = frame.copy()
    rng = np.random.default_rng(0)
    leaky["deal_amount"] = labels.fillna(0) * 5000 + rng.normal(0, 10, len(labels))  # the outcome in disguise
    leaky["duration"] = rng.integers(10, 600, len(labels))  # known only after the call
    report = quality_report(leaky, labels, model_type="lead_conversion")
    flagged = {suspect["column"]: suspect for suspect in report["leakage_suspects"]}
    assert flagged["deal_amount"]["score"] > 0.95
    assert "after the outcome" in flagged["duration"]["reason"]
    assert "lead_score" not in flagged
    result = train(leaky, labels)
    assert {"deal_amount", "duration"} <= {item["column"] for item in result.report["leakage_excluded"]}
    assert "deal_amount" not in result.bundle.schema.names
    kept = train(leaky, labels, allow_columns=("duration",))
    assert "duration" in kept.bundle.schema.names and "deal_amount" not in kept.bundle.schema.names


def test_promotion_compares_both_models_on_the_same_rows(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    strong = train(frame, labels, algorithm="gradient_boosting")
    weak = train(frame, labels, features=("industry", "source"))
    first = decide_promotion(challenger=strong.bundle, holdout=strong.holdout, champion=None)
    assert first.promote and "no active model" in first.reason
    better = decide_promotion(challenger=strong.bundle, holdout=strong.holdout, champion=weak.bundle, champion_version=1)
    assert better.promote and better.champion_score < better.challenger_score
    assert better.rows == len(strong.holdout[1])
    worse = decide_promotion(challenger=weak.bundle, holdout=weak.holdout, champion=strong.bundle, champion_version=2)
    assert not worse.promote and "kept as candidate" in worse.reason
    same = decide_promotion(challenger=strong.bundle, holdout=strong.holdout, champion=strong.bundle, champion_version=3)
    assert not same.promote  # equal is not better by the +0.002 margin


def test_clv_promotion_needs_a_one_percent_lower_mae() -> None:
    frame = generate_customers(400, seed=2)
    labels = encode_target(frame.pop("lifetime_value"), model_type="customer_lifetime_value")
    config = TrainingConfig(cv_folds=3)
    forest = train_model(frame, labels, model_type="customer_lifetime_value", algorithm="random_forest", config=config)
    ridge = train_model(
        frame[["total_orders"]], labels, model_type="customer_lifetime_value", algorithm="linear_regression", config=config
    )
    decision = decide_promotion(challenger=forest.bundle, holdout=forest.holdout, champion=ridge.bundle, champion_version=1)
    assert decision.metric == "mae" and decision.promote
    assert decision.challenger_score <= decision.champion_score * 0.99
    strict = decide_promotion(
        challenger=forest.bundle, holdout=forest.holdout, champion=ridge.bundle, champion_version=1, min_improvement=0.99
    )
    assert not strict.promote


def test_promotion_compares_only_rows_neither_version_trained_on(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    champion = train(frame.iloc[:450], labels.iloc[:450], algorithm="random_forest")
    challenger = train(frame, labels, algorithm="random_forest")
    # The split is by each lead's id: the champion's held-out leads are held out again,
    # and none of the leads the champion trained on are among the challenger's held-out rows.
    champion_ids = set(champion.holdout[0]["id"])
    challenger_ids = set(challenger.holdout[0]["id"])
    assert champion_ids <= challenger_ids
    champion_trained = set(frame["id"].iloc[:450]) - champion_ids
    assert not champion_trained & challenger_ids
    decision = decide_promotion(challenger=challenger.bundle, holdout=challenger.holdout, champion=champion.bundle,
                                champion_version=1)
    assert decision.rows_note == "held out by both versions"
    assert decision.rows == len(challenger.holdout[1])


def test_models_pickled_before_feature_options_still_load_and_predict(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    import pickle

    frame, labels = leads
    result = train(frame, labels, feature_options=FeatureOptions(log_transform=False))
    engineer = result.bundle.pipeline.named_steps["features"]
    state = dict(engineer.__dict__)
    for name in ("options", "log_columns_", "btyd_", "descriptions_"):
        state.pop(name)
    state["source_of_"] = {name: sources[0] for name, sources in state.pop("sources_of_").items()}
    old = object.__new__(type(engineer))
    old.__dict__.update(state)
    revived = pickle.loads(pickle.dumps(old))
    pd.testing.assert_frame_equal(revived.transform(frame.head(5)), engineer.transform(frame.head(5)), rtol=1e-6)


def test_auto_on_lifetime_value_keeps_the_lowest_mae_among_the_good_rankers() -> None:
    from leadml.ml.search import choose_algorithm

    candidates = [
        {"algorithm": "linear_regression", "cv_mean": 0.385, "cv_mae": 35.1, "cv_top_decile_capture": 0.52},
        {"algorithm": "btyd", "cv_mean": 0.3835, "cv_mae": 32.4, "cv_top_decile_capture": 0.50},
        # The lowest MAE, but it finds the valuable customers far worse: not kept.
        {"algorithm": "random_forest", "cv_mean": 0.30, "cv_mae": 30.0, "cv_top_decile_capture": 0.40},
        {"algorithm": "neural_network", "skipped": "time budget"},
    ]
    assert choose_algorithm(candidates, classification=False) == "btyd"
    assert choose_algorithm(candidates, classification=True) == "linear_regression"
    # R² does not decide: a few whales make it swing (CV R² 0.62 ± 0.16, 0.35 held out).
    whales = [{**candidates[0], "cv_mean": 0.62}, candidates[1]]
    assert choose_algorithm(whales, classification=False) == "btyd"


def test_the_split_hashes_ids_even_when_the_same_lead_appears_twice() -> None:
    from leadml.ml.split import holdout_split, row_positions

    frame = pd.DataFrame({"id": ["a", "b", "c", "a"], "x": [1, 2, 3, 99]})
    positions = row_positions(frame)
    assert positions[0] == positions[3]  # the same lead, wherever and however often it appears
    assert row_positions(frame.iloc[:3])[0] == positions[0]
    split = holdout_split(frame, np.array([1.0, 2.0, 3.0, 4.0]), test_size=0.5, classification=False)
    assert split.key == "id:id:salt0"
