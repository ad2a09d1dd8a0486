"""The compiled transform (leadml.ml.fastpath) gives exactly what the fitted pipeline gives. No database."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from demo.data import generate_customers, generate_leads
from leadml.ml.bundle import ModelBundle
from leadml.ml.fastpath import CompiledPipeline, compile_pipeline
from leadml.ml.pipeline import build_pipeline, resolve_preprocessing
from leadml.ml.schema import infer_schema
from leadml.ml.targets import encode_target
from leadml.ml.train import train_model
from leadml.ml.transactions import normalise_transactions, training_table
from leadml.ml.types import FeatureOptions, TrainingConfig

# Age-in-days columns read the clock; both paths must read the same one.
REFERENCE_TIME = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
PLACEHOLDERS = ("unknown", "Select", "-1")


@dataclass(frozen=True)
class Setup:
    algorithm: str
    param_grid: dict[str, list[Any]]
    preprocessing: dict[str, Any] = field(default_factory=dict)
    feature_options: FeatureOptions = field(default_factory=FeatureOptions)


LEAD_SETUPS = {
    "gradient_boosting-one_hot-standard-median": Setup("gradient_boosting", {"max_iter": [40]}),
    "random_forest-label-minmax-mean": Setup(
        "random_forest",
        {"n_estimators": [20], "max_depth": [6]},
        {"categorical_encoding": "label", "scaling": "minmax", "missing_value_strategy": "mean"},
    ),
    "logistic_regression-one_hot-none-constant-k_best": Setup(
        "logistic_regression",
        {"C": [1.0]},
        {
            "scaling": "none",
            "missing_value_strategy": "constant",
            "fill_value": -3,
            "feature_selection": "k_best",
            "k": 12,
        },
    ),
    "neural_network-label-standard-most_frequent-interactions-placeholders": Setup(
        "neural_network",
        {"max_iter": [60]},
        {"categorical_encoding": "label", "missing_value_strategy": "most_frequent"},
        FeatureOptions(interactions=(("engagement_score", "website_visits"),), missing_values=PLACEHOLDERS),
    ),
    "logistic_regression-minmax-k_best-interactions-placeholders": Setup(
        "logistic_regression",
        {"C": [1.0]},
        {"scaling": "minmax", "missing_value_strategy": "mean", "feature_selection": "k_best", "k": 9},
        FeatureOptions(interactions=(("lead_score", "company_size"),), missing_values=PLACEHOLDERS),
    ),
    "random_forest-no-engineered-features": Setup(
        "random_forest",
        {"n_estimators": [20], "max_depth": [6]},
        {"missing_value_strategy": "median"},
        FeatureOptions(date_features=False, email_features=False, seniority=False, log_transform=False),
    ),
}
CLV_SETUPS = {
    "linear_regression-one_hot-standard-median": Setup("linear_regression", {"alpha": [1.0]}),
    "gradient_boosting-label-minmax-mean": Setup(
        "gradient_boosting",
        {"max_iter": [40]},
        {"categorical_encoding": "label", "scaling": "minmax", "missing_value_strategy": "mean"},
    ),
    "neural_network-one_hot-none-constant-interactions-placeholders": Setup(
        "neural_network",
        {"regressor__alpha": [1e-2]},
        {"scaling": "none", "missing_value_strategy": "constant", "fill_value": 0},
        FeatureOptions(interactions=(("total_orders", "avg_order_value"),), missing_values=PLACEHOLDERS),
    ),
}

# Records as a CRM sends them, chosen to reach every branch of the per-value code.
LEAD_EDGE_RECORDS: list[dict[str, Any]] = [
    {},  # every field missing
    {
        "email": "ceo@never-seen-before.example",
        "job_title": "Chief Vibes Officer",
        "industry": "Aerospace",
        "source": "carrier_pigeon",
    },
    {"email": "someone@gmail.com", "job_title": "Intern", "company_size": 12, "source": "referral"},
    {"email": "Someone@YAHOO.com", "job_title": "  VP of Sales  ", "industry": " Technology "},
    {"email": "someone@aol.com", "job_title": "Chief Revenue Officer", "lead_score": "1,200"},
    {"email": "not-an-e-mail", "job_title": "   ", "industry": ""},
    {"industry": "unknown", "source": " Select ", "company_size": -1, "job_title": "UNKNOWN", "lead_score": "-1"},
    {"company_size": 1e9, "engagement_score": -500, "website_visits": 1e5, "content_downloads": 10_000},
    {"company_size": True, "email_interactions": False, "lead_score": 0},
    {"created_at": "2025-03-01T23:30:00-05:00"},  # the next day in UTC
    {"created_at": "2026-06-30T22:00:00+09:00"},
    {"created_at": "2024-12-31T23:59:59Z"},
    {"created_at": "2025-01-15 10:00"},
    {"created_at": "2025-02-28"},
    {"created_at": "2025-03-01T10:00:00.1234567+02:00"},
    {"created_at": "March 3, 2025"},
    {"created_at": "1850-01-01"},  # before the earliest date: unreadable
    {"created_at": "2199-12-31T23:00:00-05:00"},  # 2200 in UTC: unreadable
    {"created_at": datetime(2025, 3, 1, 23, 0, tzinfo=timezone(timedelta(hours=-8)))},
    {"created_at": datetime(2025, 3, 1, 23, 0)},
]
CUSTOMER_EDGE_RECORDS: list[dict[str, Any]] = [
    {},
    {"industry": "Aerospace", "email": "buyer@never-seen-before.example", "company_size": 40},
    {"industry": "unknown", "email": "buyer@hotmail.com", "total_orders": -1, "avg_order_value": -1.0},
    {"total_orders": 1e6, "avg_order_value": 1e7, "total_spent": -5, "support_tickets": 10_000},
    {"total_orders": "1,250", "avg_order_value": "12.5", "company_size": True},
    {"first_purchase_date": "2023-02-01T23:30:00-05:00", "last_purchase_date": "2026-06-29T20:00:00+09:00"},
    {"first_purchase_date": "2023-02-01", "last_purchase_date": datetime(2026, 6, 1, tzinfo=timezone.utc)},
    {"first_purchase_date": "1800-06-01", "last_purchase_date": "2026-06-30T23:59:59Z"},
]


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a CRM sends them: missing values left out, dates as text."""
    return [{key: value for key, value in row.items() if not pd.isna(value)} for row in frame.to_dict("records")]


def with_placeholders(frame: pd.DataFrame, columns: dict[str, Any]) -> pd.DataFrame:
    frame = frame.copy()
    for step, (column, placeholder) in enumerate(columns.items()):
        frame[column] = frame[column].astype(object)
        frame.loc[frame.index[step :: 19], column] = placeholder
    return frame


def trained_bundle(model_type: str, frame: pd.DataFrame, labels: pd.Series, setup: Setup) -> ModelBundle:
    result = train_model(
        frame,
        labels,
        model_type=model_type,
        algorithm=setup.algorithm,
        config=TrainingConfig(
            cv_folds=2,
            param_grid=setup.param_grid,
            preprocessing=setup.preprocessing,
            feature_options=setup.feature_options,
            # Calibration is chosen by CV log-loss and may be none; these tests need one.
            calibration_methods=("sigmoid",),
        ),
    )
    bundle = result.bundle
    bundle.pipeline.named_steps["features"].reference_time = REFERENCE_TIME
    return bundle


@pytest.fixture(scope="module")
def lead_data() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_leads(800, seed=5)
    labels = encode_target(frame.pop("status"), model_type="lead_conversion", positive_values=["customer", "won"])
    frame = with_placeholders(frame, {"industry": "unknown", "source": "Select", "company_size": -1})
    return frame, labels


@pytest.fixture(scope="module")
def customer_data() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_customers(600, seed=5)
    labels = frame.pop("lifetime_value")
    frame = with_placeholders(frame, {"industry": "unknown", "total_orders": -1})
    return frame, labels


@pytest.fixture(scope="module")
def lead_bundles(lead_data: tuple[pd.DataFrame, pd.Series]) -> Callable[[str], ModelBundle]:
    """Return the lead model of a named setup, trained once per module."""
    trained: dict[str, ModelBundle] = {}

    def get(name: str) -> ModelBundle:
        if name not in trained:
            trained[name] = trained_bundle("lead_conversion", *lead_data, LEAD_SETUPS[name])
        return trained[name]

    return get


@pytest.fixture(scope="module", params=list(LEAD_SETUPS), ids=list(LEAD_SETUPS))
def lead_bundle(request: pytest.FixtureRequest, lead_bundles: Callable[[str], ModelBundle]) -> ModelBundle:
    return lead_bundles(request.param)


@pytest.fixture(scope="module", params=list(CLV_SETUPS), ids=list(CLV_SETUPS))
def clv_bundle(request: pytest.FixtureRequest, customer_data: tuple[pd.DataFrame, pd.Series]) -> ModelBundle:
    frame, labels = customer_data
    return trained_bundle("customer_lifetime_value", frame, labels, CLV_SETUPS[request.param])


# Numbers past float32's range: the engineered values stay finite, but tree estimators
# refuse them, so only the transform is compared on these.
HUGE_LEAD_RECORDS: list[dict[str, Any]] = [
    {"engagement_score": 1e200, "website_visits": 1e200, "lead_score": 1e300, "company_size": 1e300},
    {"company_size": 1e308, "lead_score": 1e308, "email_interactions": 1e308},
]
HUGE_CUSTOMER_RECORDS: list[dict[str, Any]] = [
    {"total_orders": 1e200, "avg_order_value": 1e200, "total_spent": 1e308},
]


def lead_records(bundle: ModelBundle) -> list[dict[str, Any]]:
    fresh = generate_leads(150, seed=9).drop(columns=["status"])
    placeholders = (
        [{"company_size": "unknown", "lead_score": " SELECT ", "created_at": "Unknown", "email": "select"}]
        if bundle.placeholders
        else []
    )
    return LEAD_EDGE_RECORDS + placeholders + json_records(fresh)


def customer_records(bundle: ModelBundle) -> list[dict[str, Any]]:
    fresh = generate_customers(150, seed=9).drop(columns=["lifetime_value"])
    placeholders = [{"avg_order_value": "Select", "first_purchase_date": "unknown"}] if bundle.placeholders else []
    return CUSTOMER_EDGE_RECORDS + placeholders + json_records(fresh)


def pipeline_matrix(bundle: ModelBundle, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(bundle.pipeline[:-1].transform(frame), dtype=float)


def assert_compiled_matches_pipeline(bundle: ModelBundle, records: list[dict[str, Any]]) -> None:
    compiled = compile_pipeline(bundle.pipeline)
    assert isinstance(compiled, CompiledPipeline)  # else every caller silently takes the slow path
    prepared = bundle.prepare(records)
    fast = compiled.matrix(prepared.rows)
    slow = pipeline_matrix(bundle, prepared.frame)
    assert fast.shape == slow.shape and len(fast) == len(records)
    assert np.isfinite(fast).all()
    mismatched = sorted({int(row) for row in np.argwhere(~np.isclose(fast, slow, rtol=1e-9, atol=1e-9))[:, 0]})
    assert not mismatched, [records[row] for row in mismatched[:5]]
    # Row by row too: nothing may depend on which other records share the call.
    for row in (0, 1, len(records) - 1):
        assert np.allclose(compiled.matrix(prepared.rows[row : row + 1])[0], slow[row], rtol=1e-9, atol=1e-9)


def assert_predict_matrix_matches_predict(bundle: ModelBundle, records: list[dict[str, Any]]) -> None:
    prepared = bundle.prepare(records)
    served = bundle.predict(prepared.frame)
    assert np.allclose(bundle.predict_matrix(bundle.model_input(prepared)), served, rtol=1e-9, atol=1e-12)
    assert np.allclose(bundle.predict_prepared(prepared), served, rtol=1e-9, atol=1e-12)
    # The pipeline's own matrix through predict_matrix: the calibrated tail is the calibrator.
    assert np.allclose(bundle.predict_matrix(pipeline_matrix(bundle, prepared.frame)), served, rtol=1e-9, atol=1e-12)
    assert len(np.unique(np.round(served, 9))) > 10  # the records are scored, not all imputed alike


def test_lead_records_compile_to_the_pipeline_matrix(lead_bundle: ModelBundle) -> None:
    assert_compiled_matches_pipeline(lead_bundle, lead_records(lead_bundle) + HUGE_LEAD_RECORDS)


def test_lead_predict_matrix_serves_what_predict_serves(lead_bundle: ModelBundle) -> None:
    assert lead_bundle.calibrator is not None  # the calibrated path is the one exercised
    assert_predict_matrix_matches_predict(lead_bundle, lead_records(lead_bundle))


def test_customer_records_compile_to_the_pipeline_matrix(clv_bundle: ModelBundle) -> None:
    assert_compiled_matches_pipeline(clv_bundle, customer_records(clv_bundle) + HUGE_CUSTOMER_RECORDS)


def test_customer_predict_matrix_serves_what_predict_serves(clv_bundle: ModelBundle) -> None:
    assert_predict_matrix_matches_predict(clv_bundle, customer_records(clv_bundle))


def test_the_setups_reach_every_kind_of_step(lead_bundles: Callable[[str], ModelBundle]) -> None:
    """Guard the comparisons above against setups that quietly stop exercising a step."""
    bundles = [lead_bundles(name) for name in LEAD_SETUPS]
    engineers = [bundle.pipeline.named_steps["features"] for bundle in bundles]
    encoders = {
        type(bundle.pipeline.named_steps["preprocess"].named_transformers_["cat"].named_steps["encode"]).__name__
        for bundle in bundles
    }
    assert encoders == {"OneHotEncoder", "OrdinalEncoder"}
    assert any(engineer.log_columns_ for engineer in engineers)
    assert any("company_size__log" in engineer.numeric_columns_ for engineer in engineers)
    assert any("__x__" in name for engineer in engineers for name in engineer.numeric_columns_)
    assert any("created_at__age_days" in engineer.numeric_columns_ for engineer in engineers)
    assert any("email__domain" in engineer.categorical_columns_ for engineer in engineers)
    assert sum("select" in bundle.pipeline.named_steps for bundle in bundles) == 2


def test_placeholders_and_unreadable_values_are_imputed_like_missing_ones(
    lead_bundles: Callable[[str], ModelBundle],
) -> None:
    bundle = lead_bundles("neural_network-label-standard-most_frequent-interactions-placeholders")
    compiled = compile_pipeline(bundle.pipeline)
    assert compiled is not None
    prepared = bundle.prepare(
        [
            {"industry": "UNKNOWN", "source": "select", "company_size": -1, "created_at": "1850-01-01"},
            {"industry": None, "source": None, "company_size": None, "created_at": None},
        ]
    )
    placeholders, missing = compiled.matrix(prepared.rows)
    assert np.allclose(placeholders, missing, rtol=0, atol=0)
    # The interaction overflows to infinity, which is read as missing too.
    overflow, absent = compiled.matrix(bundle.prepare([{"engagement_score": 1e200, "website_visits": 1e200}, {}]).rows)
    names = list(bundle.pipeline[:-1].get_feature_names_out())
    column = names.index("engagement_score__x__website_visits")
    assert overflow[column] == absent[column]


def test_age_columns_follow_the_engineers_reference_time(lead_bundles: Callable[[str], ModelBundle]) -> None:
    bundle = lead_bundles("random_forest-label-minmax-mean")
    engineer = bundle.pipeline.named_steps["features"]
    compiled = compile_pipeline(bundle.pipeline)
    assert compiled is not None
    prepared = bundle.prepare([{"created_at": "2025-03-01T23:30:00-05:00"}])
    names = list(bundle.pipeline[:-1].get_feature_names_out())
    age = names.index("created_at__age_days")
    scale = bundle.pipeline.named_steps["preprocess"].named_transformers_["num"].named_steps["scale"]
    slope = scale.scale_[list(engineer.numeric_columns_).index("created_at__age_days")]
    before = compiled.matrix(prepared.rows)[0, age]
    engineer.reference_time = REFERENCE_TIME + timedelta(days=10)
    try:
        after = compiled.matrix(prepared.rows)[0, age]
        assert after - before == pytest.approx(10 * slope, rel=1e-9)
        expected = pipeline_matrix(bundle, prepared.frame)
        assert np.allclose(compiled.matrix(prepared.rows), expected, rtol=1e-9, atol=1e-9)
    finally:
        engineer.reference_time = REFERENCE_TIME


def test_model_input_takes_the_compiled_path_for_few_records_and_the_pipeline_for_many(
    lead_bundles: Callable[[str], ModelBundle],
) -> None:
    bundle = lead_bundles("gradient_boosting-one_hot-standard-median")
    records = json_records(generate_leads(1001, seed=13).drop(columns=["status"]))
    few, many = bundle.prepare(records[:3]), bundle.prepare(records)
    assert isinstance(bundle._compiled(), CompiledPipeline)
    assert np.allclose(bundle.model_input(few), bundle._compiled().matrix(few.rows), rtol=0, atol=0)
    assert np.allclose(bundle.model_input(many), pipeline_matrix(bundle, many.frame), rtol=0, atol=0)
    assert np.allclose(bundle.model_input(many)[:3], bundle.model_input(few), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "record",
    [
        # A numeric placeholder written as text with a decimal ("-1.0" for "-1") is missing on both paths.
        pytest.param({"company_size": "-1.0"}, id="numeric-text-placeholder"),
        # ISO's comma fraction: pandas drops it, so the compiled path leaves such text to pandas.
        pytest.param({"created_at": "2025-03-01T10:00:00,5"}, id="iso-comma-fraction"),
    ],
)
def test_edge_values_read_the_same_on_both_paths(
    lead_bundles: Callable[[str], ModelBundle], record: dict[str, Any]
) -> None:
    bundle = lead_bundles("neural_network-label-standard-most_frequent-interactions-placeholders")
    prepared = bundle.prepare([record])
    compiled = compile_pipeline(bundle.pipeline)
    assert compiled is not None
    assert np.allclose(compiled.matrix(prepared.rows), pipeline_matrix(bundle, prepared.frame), rtol=1e-12, atol=1e-12)


def purchase_log(customers: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    start = date(2024, 1, 1)
    for customer in range(customers):
        rate = rng.gamma(2.0, 0.02)  # purchase days per day
        value = rng.lognormal(np.log(60), 0.5)
        day = int(rng.integers(0, 200))
        while day < 540:
            amount = round(value * rng.lognormal(0, 0.2), 2)
            rows.append((f"c{customer}", (start + timedelta(days=day)).isoformat(), amount))
            day += 1 + int(rng.exponential(1 / rate))
    return normalise_transactions(pd.DataFrame(rows, columns=["customer_id", "date", "amount"]))


@pytest.mark.parametrize("algorithm", ["btyd", "linear_regression"])
def test_transaction_pipelines_are_not_compiled_and_take_the_pipeline_path(algorithm: str) -> None:
    features, target = training_table(purchase_log(300, seed=3), calibration_end="2025-03-31", horizon_days=90)
    schema = infer_schema(features)
    pipeline = build_pipeline(
        schema=schema,
        model_type="customer_lifetime_value",
        algorithm=algorithm,
        preprocessing=resolve_preprocessing(None),
        feature_options=FeatureOptions(btyd_horizon_days=90),
    )
    pipeline.fit(features, target)
    assert pipeline.named_steps["features"].uses_btyd
    assert compile_pipeline(pipeline) is None

    bundle = ModelBundle(
        model_type="customer_lifetime_value", algorithm=algorithm, pipeline=pipeline, schema=schema, trained_at="now"
    )
    prepared = bundle.prepare(json_records(features.head(5)))
    assert bundle._compiled() is None
    assert np.allclose(bundle.predict_prepared(prepared), bundle.predict(prepared.frame), rtol=1e-12, atol=1e-12)
