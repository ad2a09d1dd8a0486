"""Per-record reasons (leadml.ml.reasons): baseline Shapley values that add up to the served output. No database."""
from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from demo.data import generate_customers, generate_leads
from leadml.ml.bundle import ModelBundle
from leadml.ml.reasons import Explainer, Explanation, explainer_for, reasons_of, typical_record
from leadml.ml.targets import encode_target
from leadml.ml.train import train_model
from leadml.ml.types import ColumnSpec, FeatureOptions, FeatureSchema, TrainingConfig
from leadml.ml.vocabulary import email_domain, is_free_mail

# Age-in-days columns read the clock; a fixed one keeps every comparison exact.
REFERENCE_TIME = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)

# Differs from the demo baseline in every one of the lead model's 11 fields.
STRONG_LEAD = {
    "email": "dana.smith@northwind-systems.com",
    "job_title": "Chief Revenue Officer",
    "company_size": 450,
    "industry": "Finance",
    "source": "referral",
    "lead_score": 82,
    "engagement_score": 77,
    "email_interactions": 6,
    "website_visits": 11,
    "content_downloads": 3,
    "created_at": "2026-05-20T09:30:00+02:00",
}
# Differs from the demo baseline in every one of the CLV model's 9 fields.
LOYAL_CUSTOMER = {
    "industry": "Finance",
    "company_size": 450,
    "total_orders": 25,
    "total_spent": 9000.0,
    "avg_order_value": 360.0,
    "first_purchase_date": "2023-01-15",
    "last_purchase_date": "2026-06-20T08:00:00+02:00",
    "support_tickets": 4,
    "email": "buyer@northwind-systems.com",
}
LEAD_CHANGES = {
    "job_title": "Chief Revenue Officer",
    "source": "referral",
    "engagement_score": 81,
    "content_downloads": 4,
}
CUSTOMER_CHANGES = {
    "total_orders": 25,
    "last_purchase_date": "2026-06-20T08:00:00+02:00",
    "avg_order_value": 410.0,
    "support_tickets": 4,
}


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a CRM sends them: missing values left out."""
    return [{key: value for key, value in row.items() if not pd.isna(value)} for row in frame.to_dict("records")]


def train(model_type: str, data: tuple[pd.DataFrame, pd.Series], algorithm: str, **config: Any) -> ModelBundle:
    frame, labels = data
    bundle = train_model(
        frame, labels, model_type=model_type, algorithm=algorithm, config=TrainingConfig(cv_folds=2, **config)
    ).bundle
    bundle.pipeline.named_steps["features"].reference_time = REFERENCE_TIME
    return bundle


@pytest.fixture(scope="module")
def lead_data() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_leads(1200, seed=5)
    labels = encode_target(frame.pop("status"), model_type="lead_conversion", positive_values=["customer", "won"])
    return frame, labels


@pytest.fixture(scope="module")
def customer_data() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_customers(800, seed=5)
    return frame, frame.pop("lifetime_value")


@pytest.fixture(scope="module")
def models(
    lead_data: tuple[pd.DataFrame, pd.Series], customer_data: tuple[pd.DataFrame, pd.Series]
) -> Callable[[str], ModelBundle]:
    """Return a named model, trained on first use and shared by the module."""
    recipes: dict[str, Callable[[], ModelBundle]] = {
        "lead_lr": lambda: train("lead_conversion", lead_data, "logistic_regression", param_grid={"C": [1.0]}),
        "lead_gb": lambda: train("lead_conversion", lead_data, "gradient_boosting", param_grid={"max_iter": [60]}),
        "lead_nn": lambda: train(
            "lead_conversion", lead_data, "neural_network", param_grid={"alpha": [1e-2], "max_iter": [100]}
        ),
        "lead_lr_interaction": lambda: train(
            "lead_conversion", lead_data, "logistic_regression", param_grid={"C": [1.0]},
            feature_options=FeatureOptions(interactions=(("engagement_score", "website_visits"),)),
        ),
        "clv_ridge": lambda: train(
            "customer_lifetime_value", customer_data, "linear_regression", param_grid={"alpha": [1.0]}
        ),
        "clv_gb": lambda: train(
            "customer_lifetime_value", customer_data, "gradient_boosting", param_grid={"max_iter": [40]}
        ),
    }
    trained: dict[str, ModelBundle] = {}

    def get(name: str) -> ModelBundle:
        if name not in trained:
            trained[name] = recipes[name]()
        return trained[name]

    return get


def unit_scale(bundle: ModelBundle) -> float:
    return 100.0 if bundle.classification else 1.0


def explain(
    explainer: Explainer, records: list[dict[str, Any]], **options: Any
) -> tuple[np.ndarray, list[Explanation]]:
    """Score and explain records as the service does; served outputs in the explanation's unit."""
    bundle = explainer.bundle
    served, explanations = explainer.score_and_explain(bundle.model_input(bundle.prepare(records)), **options)
    return np.asarray(served, dtype=float) * unit_scale(bundle), explanations


def served_output(bundle: ModelBundle, records: list[dict[str, Any]]) -> np.ndarray:
    """What the service serves for records (probability × 100, or the value)."""
    return bundle.predict_prepared(bundle.prepare(records)) * unit_scale(bundle)


def baseline_with(bundle: ModelBundle, changes: dict[str, Any]) -> dict[str, Any]:
    assert bundle.baseline_record is not None
    return {**bundle.baseline_record, **changes}


# --- additivity ----------------------------------------------------------------------


def fresh_leads(bundle: ModelBundle) -> list[dict[str, Any]]:
    return json_records(generate_leads(12, seed=9).drop(columns=["status"]))


def fresh_customers(bundle: ModelBundle) -> list[dict[str, Any]]:
    return json_records(generate_customers(12, seed=9).drop(columns=["lifetime_value"]))


def few_lead_changes(bundle: ModelBundle) -> list[dict[str, Any]]:
    return [baseline_with(bundle, dict(list(LEAD_CHANGES.items())[:3])), baseline_with(bundle, LEAD_CHANGES)]


def few_customer_changes(bundle: ModelBundle) -> list[dict[str, Any]]:
    return [baseline_with(bundle, dict(list(CUSTOMER_CHANGES.items())[:3])), baseline_with(bundle, CUSTOMER_CHANGES)]


def every_lead_field_changed(bundle: ModelBundle) -> list[dict[str, Any]]:
    return [STRONG_LEAD, {**STRONG_LEAD, "email": "dana@yahoo.com", "job_title": "Intern", "created_at": "2024-08-01"}]


def every_customer_field_changed(bundle: ModelBundle) -> list[dict[str, Any]]:
    return [LOYAL_CUSTOMER, {**LOYAL_CUSTOMER, "last_purchase_date": "2025-01-10", "support_tickets": 9}]


@pytest.mark.parametrize(
    ("model", "records_of", "method"),
    [
        ("lead_lr", fresh_leads, "linear_exact"),
        ("clv_ridge", fresh_customers, "linear_exact"),
        ("lead_gb", few_lead_changes, "tree_exact"),
        ("lead_nn", few_lead_changes, "shapley_exact"),
        ("clv_gb", few_customer_changes, "tree_exact"),
        ("lead_gb", every_lead_field_changed, "tree_exact"),
        ("clv_gb", every_customer_field_changed, "tree_exact"),
        ("lead_nn", every_lead_field_changed, "shapley_sampled"),
    ],
)
def test_baseline_plus_contributions_is_the_served_output(
    models: Callable[[str], ModelBundle],
    model: str,
    records_of: Callable[[ModelBundle], list[dict[str, Any]]],
    method: str,
) -> None:
    bundle = models(model)
    records = records_of(bundle)
    served, explanations = explain(Explainer(bundle), records)
    # The service serves what score_and_explain returns: the same as scoring the records alone.
    assert np.allclose(served, served_output(bundle, records), rtol=1e-12, atol=1e-9)
    baseline = served_output(bundle, [bundle.baseline_record])[0]
    for value, explanation in zip(served, explanations):
        assert explanation.method == method
        assert explanation.baseline == pytest.approx(baseline, abs=1e-9)
        assert len(explanation.contributions) >= 3
        assert explanation.baseline + sum(explanation.contributions.values()) == pytest.approx(value, abs=1e-6)
    # The records are told apart: the test is not passing on identical, trivial outputs.
    assert len({round(float(value), 6) for value in served}) == len(records)


def test_every_field_takes_part_when_every_field_differs(models: Callable[[str], ModelBundle]) -> None:
    for name, record in (("lead_gb", STRONG_LEAD), ("clv_gb", LOYAL_CUSTOMER)):
        bundle = models(name)
        _, (explanation,) = explain(Explainer(bundle), [record])
        assert set(explanation.contributions) == set(bundle.schema.names)


# --- exactness -----------------------------------------------------------------------


def brute_force_shapley(bundle: ModelBundle, record: dict[str, Any], fields: list[str]) -> dict[str, float]:
    """Shapley values over every order of `fields`, mixing raw records with the baseline."""
    assert bundle.baseline_record is not None
    subsets = [frozenset(chosen) for size in range(len(fields) + 1) for chosen in itertools.combinations(fields, size)]
    mixed = [
        {name: record[name] if name in subset else bundle.baseline_record[name] for name in bundle.schema.names}
        for subset in subsets
    ]
    worth = dict(zip(subsets, served_output(bundle, mixed)))
    totals = dict.fromkeys(fields, 0.0)
    orders = list(itertools.permutations(fields))
    for order in orders:
        for position, name in enumerate(order):
            before = frozenset(order[:position])
            totals[name] += worth[before | {name}] - worth[before]
    return {name: total / len(orders) for name, total in totals.items()}


@pytest.mark.parametrize(
    ("model", "changes"),
    [
        ("lead_gb", {**LEAD_CHANGES}),
        ("lead_gb", {"email": "dana@northwind-systems.com", "job_title": "VP of Sales", "created_at": "2026-06-28"}),
        ("lead_nn", {**LEAD_CHANGES}),
        ("clv_gb", {**CUSTOMER_CHANGES}),
    ],
)
def test_enumerated_reasons_are_the_shapley_values_of_mixed_raw_records(
    models: Callable[[str], ModelBundle], model: str, changes: dict[str, Any]
) -> None:
    bundle = models(model)
    record = baseline_with(bundle, changes)
    # Trees are enumerated only without tree_exact (tested below, in margin units).
    _, (explanation,) = explain(Explainer(bundle, exact_trees=False), [record])
    assert explanation.method == "shapley_exact"
    expected = brute_force_shapley(bundle, record, list(changes))
    assert set(explanation.contributions) == set(expected)
    for name, value in expected.items():
        assert explanation.contributions[name] == pytest.approx(value, abs=1e-9), name
    assert any(abs(value) > 0.1 for value in expected.values())


def decision(bundle: ModelBundle, records: list[dict[str, Any]]) -> np.ndarray:
    return bundle.pipeline.decision_function(bundle.prepare(records).frame)


def test_linear_log_odds_are_the_margin_differences(models: Callable[[str], ModelBundle]) -> None:
    bundle = models("lead_lr")
    assert bundle.baseline_record is not None
    records = fresh_leads(bundle) + [STRONG_LEAD]
    served, explanations = explain(Explainer(bundle), records)
    margins = decision(bundle, records) - decision(bundle, [bundle.baseline_record])[0]
    for record, margin, explanation in zip(records, margins, explanations):
        assert explanation.log_odds is not None
        assert set(explanation.log_odds) == set(explanation.contributions)
        assert sum(explanation.log_odds.values()) == pytest.approx(margin, abs=1e-9)
        # Each field's log-odds is the margin it moves alone: the model is additive in the margin.
        singles = [baseline_with(bundle, {name: record.get(name)}) for name in explanation.log_odds]
        alone = decision(bundle, singles) - decision(bundle, [bundle.baseline_record])[0]
        for name, value in zip(explanation.log_odds, alone):
            assert explanation.log_odds[name] == pytest.approx(value, abs=1e-9), name
            # Score points are the log-odds times one factor: same signs.
            assert np.sign(explanation.contributions[name]) == np.sign(explanation.log_odds[name])


def test_linear_clv_contributions_are_each_fields_change_in_value(models: Callable[[str], ModelBundle]) -> None:
    bundle = models("clv_ridge")
    assert bundle.baseline_record is not None
    records = fresh_customers(bundle) + [LOYAL_CUSTOMER]
    raw_baseline = bundle.pipeline.predict(bundle.prepare([bundle.baseline_record]).frame)[0]
    raw_values = bundle.pipeline.predict(bundle.prepare(records).frame)
    unclipped = [record for record, value in zip(records, raw_values) if value > 0]
    assert raw_baseline > 0 and len(unclipped) >= 5
    _, explanations = explain(Explainer(bundle), unclipped)
    for record, explanation in zip(unclipped, explanations):
        assert explanation.log_odds is None
        singles = [baseline_with(bundle, {name: record.get(name)}) for name in explanation.contributions]
        alone = bundle.pipeline.predict(bundle.prepare(singles).frame) - raw_baseline
        for name, value in zip(explanation.contributions, alone):
            assert explanation.contributions[name] == pytest.approx(value, abs=1e-6), name


def test_a_clipped_clv_record_still_adds_up_with_unchanged_signs(models: Callable[[str], ModelBundle]) -> None:
    bundle = models("clv_ridge")
    records = json_records(generate_customers(60, seed=9).drop(columns=["lifetime_value"]))
    raw_values = bundle.pipeline.predict(bundle.prepare(records).frame)
    clipped = [record for record, value in zip(records, raw_values) if value < 0]
    assert clipped, "no record predicted below zero: pick other customers"
    served, explanations = explain(Explainer(bundle), clipped)
    assert np.all(served == 0.0)
    for explanation, record in zip(explanations, clipped):
        assert explanation.baseline + sum(explanation.contributions.values()) == pytest.approx(0.0, abs=1e-6)
        singles = [baseline_with(bundle, {name: record.get(name)}) for name in explanation.contributions]
        raw_baseline = bundle.pipeline.predict(bundle.prepare([bundle.baseline_record]).frame)[0]
        alone = bundle.pipeline.predict(bundle.prepare(singles).frame) - raw_baseline
        for name, value in zip(explanation.contributions, alone):
            if abs(value) > 1e-6:
                assert np.sign(explanation.contributions[name]) == np.sign(value), name


# --- fields equal to the baseline ----------------------------------------------------


def same_as_baseline_written_differently(bundle: ModelBundle) -> dict[str, Any]:
    """The baseline record as a CRM might send it: other text, same meaning to the model."""
    assert bundle.baseline_record is not None
    record = dict(bundle.baseline_record)
    for column in bundle.schema.columns:
        value = record[column.name]
        if column.kind == "email":
            record[column.name] = f"  Someone.Else@{value.split('@')[1].upper()} "
        elif column.kind == "datetime":
            record[column.name] = f"{value}T00:00:00Z"
        elif column.kind == "numeric":
            record[column.name] = str(value)
        else:
            record[column.name] = f"  {value} "
    return record


@pytest.mark.parametrize("model", ["lead_lr", "lead_gb", "clv_ridge", "clv_gb"])
def test_fields_equal_to_the_baseline_get_no_reason(models: Callable[[str], ModelBundle], model: str) -> None:
    bundle = models(model)
    changes = dict(list((LEAD_CHANGES if bundle.classification else CUSTOMER_CHANGES).items())[:3])
    explainer = Explainer(bundle)
    records = [
        baseline_with(bundle, changes),
        {**same_as_baseline_written_differently(bundle), **changes},
        dict(bundle.baseline_record or {}),
        same_as_baseline_written_differently(bundle),
    ]
    _, explanations = explain(explainer, records)
    for record, explanation in zip(records[:2], explanations[:2]):
        assert set(explanation.contributions) == set(changes)
        assert {reason["feature"] for reason in reasons_of(explanation, explainer, record)} == set(changes)
    for record, explanation in zip(records[2:], explanations[2:]):
        assert explanation.contributions == {}
        assert reasons_of(explanation, explainer, record) == []
        assert explanation.baseline + sum(explanation.contributions.values()) == pytest.approx(explanation.baseline)


def test_the_baseline_ages_with_the_records_it_explains(models: Callable[[str], ModelBundle]) -> None:
    bundle = copy.deepcopy(models("lead_gb"))
    engineer = bundle.pipeline.named_steps["features"]
    engineer.reference_time = REFERENCE_TIME  # the process starts
    explainer = explainer_for(bundle)
    assert explainer is not None
    engineer.reference_time = REFERENCE_TIME + timedelta(days=30)  # a month later, same process
    _, (explanation,) = explain(explainer, [dict(bundle.baseline_record or {})])
    assert explanation.contributions == {}


# --- the demo data's "done when" -----------------------------------------------------


@pytest.mark.parametrize("model", ["lead_gb", "lead_lr"])
def test_business_email_and_decision_maker_title_are_reasons_that_raise_the_score(
    models: Callable[[str], ModelBundle], model: str
) -> None:
    bundle = models(model)
    assert bundle.baseline_record is not None
    baseline_domain = email_domain(bundle.baseline_record["email"])
    assert is_free_mail(baseline_domain)  # on demo data most leads write from gmail.com
    explainer = Explainer(bundle)
    strong = [
        baseline_with(bundle, {"email": "dana.smith@northwind-systems.com", "job_title": "VP of Sales"}),
        baseline_with(bundle, {"email": "dana.smith@acme-analytics.com", "job_title": "Chief Revenue Officer"}),
        STRONG_LEAD,
    ]
    weak = [{**record, "email": f"dana.smith@{baseline_domain}", "job_title": "Intern"} for record in strong]
    _, strong_explanations = explain(explainer, strong)
    _, weak_explanations = explain(explainer, weak)
    for record, explanation in zip(strong, strong_explanations):
        reasons = {reason["feature"]: reason for reason in reasons_of(explanation, explainer, record)}
        assert reasons["email"]["contribution"] > 0 and reasons["job_title"]["contribution"] > 0, reasons
        assert reasons["email"]["value"] == record["email"]
        assert reasons["email"]["baseline_value"] == bundle.baseline_record["email"]
        assert "raises the score" in reasons["job_title"]["description"]
    for record, explanation in zip(weak, weak_explanations):
        reasons = {reason["feature"]: reason for reason in reasons_of(explanation, explainer, record)}
        assert "email" not in reasons  # the baseline's domain: no difference, no reason
        assert reasons["job_title"]["contribution"] <= 0, reasons
    for strong_explanation, weak_explanation in zip(strong_explanations, weak_explanations):
        assert strong_explanation.contributions["job_title"] > weak_explanation.contributions["job_title"]


def test_reasons_are_sorted_by_effect_and_say_which_way(models: Callable[[str], ModelBundle]) -> None:
    for name, record in (("lead_lr", STRONG_LEAD), ("lead_gb", STRONG_LEAD), ("clv_ridge", LOYAL_CUSTOMER)):
        bundle = models(name)
        explainer = Explainer(bundle)
        _, (explanation,) = explain(explainer, [record])
        reasons = reasons_of(explanation, explainer, record)
        assert [abs(reason["contribution"]) for reason in reasons] == sorted(
            (abs(reason["contribution"]) for reason in reasons), reverse=True
        )
        for reason in reasons:
            assert reason["contribution"] == round(explanation.contributions[reason["feature"]], 4)
            assert reason["value"] == record[reason["feature"]]
            assert reason["baseline_value"] == (bundle.baseline_record or {})[reason["feature"]]
            direction = "raises" if reason["contribution"] >= 0 else "lowers"
            assert reason["description"].startswith(f"{reason['feature']} = {record[reason['feature']]!r} {direction}")
            assert ("log_odds" in reason) == (name == "lead_lr")
        what = "the score" if bundle.classification else "the expected lifetime value"
        assert all(what in reason["description"] for reason in reasons)


# --- sampling ------------------------------------------------------------------------


def test_sampled_reasons_are_deterministic(models: Callable[[str], ModelBundle]) -> None:
    bundle = models("lead_gb")
    sampling = Explainer(bundle, exact_trees=False)
    _, (first,) = explain(sampling, [STRONG_LEAD])
    _, (again,) = explain(Explainer(bundle, exact_trees=False), [STRONG_LEAD])
    _, twice = explain(sampling, [STRONG_LEAD, STRONG_LEAD])
    assert first.method == "shapley_sampled"
    assert first.contributions == again.contributions == twice[0].contributions == twice[1].contributions
    # Another seed samples other orders: the split differs, the total does not.
    _, (reseeded,) = explain(sampling, [STRONG_LEAD], seed=1)
    assert reseeded.contributions != first.contributions
    assert sum(reseeded.contributions.values()) == pytest.approx(sum(first.contributions.values()), abs=1e-9)


@pytest.mark.parametrize(("model", "record"), [("lead_gb", STRONG_LEAD), ("clv_gb", LOYAL_CUSTOMER)])
def test_sampled_reasons_approach_the_exact_ones(
    models: Callable[[str], ModelBundle], model: str, record: dict[str, Any]
) -> None:
    bundle = models(model)
    _, (exact,) = explain(
        Explainer(bundle, exact_max_fields=12, exact_trees=False), [record], max_rows_per_record=4096
    )
    _, (sampled,) = explain(Explainer(bundle, exact_trees=False), [record], max_rows_per_record=20_000)
    assert exact.method == "shapley_exact" and sampled.method == "shapley_sampled"
    assert set(exact.contributions) == set(sampled.contributions) == set(bundle.schema.names)
    spread = sum(abs(value) for value in exact.contributions.values())
    for name, value in exact.contributions.items():
        assert sampled.contributions[name] == pytest.approx(value, abs=0.01 * spread), name
    top = max(exact.contributions, key=lambda name: abs(exact.contributions[name]))
    assert max(sampled.contributions, key=lambda name: abs(sampled.contributions[name])) == top


# --- interactions, baseline, versions without one ------------------------------------


def test_an_interaction_joins_its_two_fields_into_one_reason(models: Callable[[str], ModelBundle]) -> None:
    bundle = models("lead_lr_interaction")
    assert bundle.baseline_record is not None
    explainer = Explainer(bundle)
    names = [player.name for player in explainer.players]
    assert "engagement_score + website_visits" in names
    assert "engagement_score" not in names and "website_visits" not in names
    assert len(names) == len(bundle.schema.names) - 1

    for changes in ({"engagement_score": 90}, {"website_visits": 12}, {"engagement_score": 90, "website_visits": 12}):
        record = baseline_with(bundle, {**changes, "source": "referral"})
        served, (explanation,) = explain(explainer, [record])
        assert set(explanation.contributions) == {"engagement_score + website_visits", "source"}
        assert explanation.baseline + sum(explanation.contributions.values()) == pytest.approx(served[0], abs=1e-6)
        (joined,) = [reason for reason in reasons_of(explanation, explainer, record) if "+" in reason["feature"]]
        assert joined["value"] == {
            "engagement_score": record["engagement_score"],
            "website_visits": record["website_visits"],
        }
        assert joined["baseline_value"] == {
            "engagement_score": bundle.baseline_record["engagement_score"],
            "website_visits": bundle.baseline_record["website_visits"],
        }


def test_typical_record_takes_medians_modes_the_median_date_and_the_usual_domain() -> None:
    schema = FeatureSchema(
        columns=(
            ColumnSpec("company_size", "numeric"),
            ColumnSpec("industry", "categorical"),
            ColumnSpec("created_at", "datetime"),
            ColumnSpec("email", "email"),
            ColumnSpec("job_title", "job_title"),
            ColumnSpec("empty_count", "numeric"),
            ColumnSpec("not_in_frame", "categorical"),
        )
    )
    frame = pd.DataFrame(
        {
            "company_size": [10, 20, None, 30, 1000],
            "industry": ["Retail", "Finance", "Retail", None, " Retail "],
            "created_at": [
                "2024-12-01",
                "2025-05-01",
                "2025-03-01T23:30:00-05:00",  # 2025-03-02 in UTC, the median
                "2025-01-01",
                "2025-04-01",
            ],
            "email": ["a@Gmail.com", "b@acme.com", "c@gmail.com", None, "d@acme.io"],
            "job_title": ["Analyst", "VP Sales", " Analyst", None, "CEO"],
            "empty_count": [None, None, None, None, None],
        },
        dtype=object,
    )
    assert typical_record(schema, frame) == {
        "company_size": 25.0,
        "industry": "Retail",
        "created_at": "2025-03-02",
        "email": "typical@gmail.com",
        "job_title": "Analyst",
        "empty_count": None,
        "not_in_frame": None,
    }


def test_trained_baseline_is_the_typical_training_record(models: Callable[[str], ModelBundle]) -> None:
    bundle = models("lead_gb")
    assert bundle.baseline_record is not None and bundle.reference_sample is not None
    assert set(bundle.baseline_record) == set(bundle.schema.names)
    assert bundle.baseline_record["email"].startswith("typical@")
    assert bundle.baseline_record["company_size"] == pytest.approx(
        float(pd.to_numeric(bundle.reference_sample["company_size"]).median())
    )
    assert bundle.baseline_record["industry"] == bundle.reference_sample["industry"].mode().iloc[0]


def test_a_version_without_a_baseline_has_no_explainer(models: Callable[[str], ModelBundle]) -> None:
    bundle = models("lead_lr")
    old = replace(bundle, baseline_record=None)
    assert explainer_for(old) is None
    assert explainer_for(old) is None  # remembered, not retried on every request
    with pytest.raises(ValueError, match="retrain"):
        Explainer(old)
    explainer = explainer_for(bundle)
    assert isinstance(explainer, Explainer) and explainer_for(bundle) is explainer
