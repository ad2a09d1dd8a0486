"""Per-record reasons in `POST /predict` and `/predict/batch`: shape, sums, opt-in/out, fallbacks."""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from leadml.ml.reasons import Explainer
from predictions.models import Prediction
from predictions.public_ids import internal_id
from registry.cache import bundle_load
from registry.models import ModelVersion
from tests.conftest import TENANT, clv_request, lead_request, make_dataset, train_inline, without

STRONG_LEAD = {
    "email": "dana.smith@northwind-systems.com",
    "job_title": "Chief Revenue Officer",
    "company": "Northwind Systems",
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
REASON_KEYS = {"feature", "value", "baseline_value", "contribution", "description"}
# Each reason's contribution is rounded to 4 decimals, the baseline too, the output to 6
# (probability) or 2 (value) decimals.
SUM_TOLERANCE = 1e-2


def assert_reasons_add_up(body: dict[str, Any], served: float, *, unit: str) -> None:
    explanation = body["explanation"]
    assert explanation["unit"] == unit
    assert explanation["method"] in ("linear_exact", "tree_exact", "shapley_exact", "shapley_sampled")
    reasons = body["reasons"]
    assert reasons, body
    for reason in reasons:
        assert REASON_KEYS <= set(reason), reason
        assert isinstance(reason["contribution"], float) and isinstance(reason["description"], str)
    total = explanation["baseline"] + sum(reason["contribution"] for reason in reasons)
    assert total == pytest.approx(served, abs=SUM_TOLERANCE)


@pytest.fixture
def gb_lead_model(db: None, lead_rows: list[dict[str, Any]]) -> ModelVersion:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    job = train_inline(TENANT, "lead_conversion", "gradient_boosting", "leads_gb", {"param_grid": {"max_iter": [40]}}, reuse=True)
    assert job.status == "succeeded", job.error
    return job.model_version


# --- single records ------------------------------------------------------------------


def test_predict_explains_the_probability_in_score_points(api: APIClient, lead_model: ModelVersion) -> None:
    response = api.post("/predict", lead_request(STRONG_LEAD), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"] == "model"
    assert body["explanation"]["method"] == "linear_exact"
    assert_reasons_add_up(body, body["conversion_probability"] * 100, unit="score points")

    bundle = bundle_load(lead_model)
    assert bundle.baseline_record is not None
    reasons = {reason["feature"]: reason for reason in body["reasons"]}
    assert set(reasons) <= set(bundle.schema.names)
    for name, reason in reasons.items():
        assert reason["value"] == STRONG_LEAD.get(name)  # the field as sent
        assert reason["baseline_value"] == bundle.baseline_record[name]
        assert isinstance(reason["log_odds"], float)  # a linear lead model also gives its log-odds
    assert body["explanation"]["baseline"] == pytest.approx(
        bundle.predict(bundle.prepare([bundle.baseline_record]).frame)[0] * 100, abs=1e-4
    )
    contributions = [abs(reason["contribution"]) for reason in body["reasons"]]
    assert contributions == sorted(contributions, reverse=True)


def test_predict_with_a_tree_model_explains_by_shapley_values(api: APIClient, gb_lead_model: ModelVersion) -> None:
    response = api.post("/predict", lead_request(STRONG_LEAD), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_info"]["algorithm"] == "gradient_boosting"
    assert body["explanation"]["method"] == "tree_exact"
    assert_reasons_add_up(body, body["conversion_probability"] * 100, unit="score points")
    assert all("log_odds" not in reason for reason in body["reasons"])


def test_explain_false_leaves_the_reasons_out(api: APIClient, lead_model: ModelVersion) -> None:
    explained = api.post("/predict", lead_request(STRONG_LEAD), format="json").json()
    plain = api.post("/predict", lead_request(STRONG_LEAD, explain=False), format="json")
    assert plain.status_code == 200, plain.content
    body = plain.json()
    assert "reasons" not in body and "explanation" not in body
    assert body["conversion_probability"] == explained["conversion_probability"]
    stored = Prediction.objects.get(pk=internal_id(body["prediction_id"]))
    assert "reasons" not in stored.output


def test_stored_prediction_keeps_the_reasons(api: APIClient, lead_model: ModelVersion) -> None:
    body = api.post("/predict", lead_request(STRONG_LEAD), format="json").json()
    stored = Prediction.objects.get(pk=internal_id(body["prediction_id"]))
    assert stored.output["reasons"] == body["reasons"]
    assert stored.output["explanation"] == body["explanation"]


def test_clv_reasons_are_in_currency(
    api: APIClient, clv_model: ModelVersion, customer_rows: list[dict[str, Any]]
) -> None:
    record = without(customer_rows[0], "lifetime_value")
    response = api.post("/predict", clv_request(record), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"] == "model"
    assert body["explanation"]["method"] == "linear_exact"
    assert_reasons_add_up(body, body["lifetime_value"], unit="currency")
    for reason in body["reasons"]:
        assert "log_odds" not in reason
        assert "expected lifetime value" in reason["description"]
        assert reason["value"] == record[reason["feature"]]


# --- batches -------------------------------------------------------------------------


def test_batch_leaves_reasons_out_unless_asked(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rows = [without(row, "status") for row in lead_rows[:6]] + [STRONG_LEAD]
    plain = api.post("/predict/batch", lead_request(rows), format="json")
    assert plain.status_code == 200, plain.content
    assert all("reasons" not in item and "explanation" not in item for item in plain.json()["predictions"])

    explained = api.post("/predict/batch", lead_request(rows, explain=True), format="json")
    assert explained.status_code == 200, explained.content
    items = explained.json()["predictions"]
    assert len(items) == len(rows)
    for item, plain_item in zip(items, plain.json()["predictions"]):
        assert item["conversion_probability"] == plain_item["conversion_probability"]
        assert_reasons_add_up(item, item["conversion_probability"] * 100, unit="score points")
        stored = Prediction.objects.get(pk=internal_id(item["prediction_id"]))
        assert stored.output["reasons"] == item["reasons"]
    # Each record gets its own reasons.
    distinct = {tuple(sorted((r["feature"], r["contribution"]) for r in item["reasons"])) for item in items}
    assert len(distinct) == len(rows)


def test_batch_with_a_tree_model_explains_every_record(
    api: APIClient, gb_lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rows = [without(row, "status") for row in lead_rows[:5]] + [STRONG_LEAD]
    response = api.post("/predict/batch", lead_request(rows, explain=True), format="json")
    assert response.status_code == 200, response.content
    for item in response.json()["predictions"]:
        assert_reasons_add_up(item, item["conversion_probability"] * 100, unit="score points")


# --- versions and failures without reasons -------------------------------------------


def test_version_trained_before_reasons_still_answers_with_no_reasons(
    api: APIClient, lead_model: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = api.post("/predict", lead_request(STRONG_LEAD, explain=False), format="json").json()
    bundle = bundle_load(lead_model)  # the cached bundle the next request is served from
    monkeypatch.setattr(bundle, "baseline_record", None)
    bundle.__dict__.pop("_cached_explainer", None)

    response = api.post("/predict", lead_request(STRONG_LEAD), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"] == "model"
    assert body["conversion_probability"] == expected["conversion_probability"]
    assert body["reasons"] == []
    assert body["explanation"]["method"] == "unavailable"
    assert "retrain" in body["explanation"]["detail"]

    batch = api.post("/predict/batch", lead_request([STRONG_LEAD, STRONG_LEAD], explain=True), format="json")
    assert batch.status_code == 200, batch.content
    for item in batch.json()["predictions"]:
        assert item["source"] == "model"
        assert item["reasons"] == [] and item["explanation"]["method"] == "unavailable"
    bundle.__dict__.pop("_cached_explainer", None)


def test_failing_explanation_still_returns_the_model_prediction(
    api: APIClient, lead_model: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = api.post("/predict", lead_request(STRONG_LEAD, explain=False), format="json").json()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("explainer bug")

    monkeypatch.setattr(Explainer, "score_and_explain", broken)
    response = api.post("/predict", lead_request(STRONG_LEAD), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"] == "model" and "fallback_reason" not in body
    assert body["conversion_probability"] == expected["conversion_probability"]
    assert body["reasons"] == []
    assert body["explanation"]["method"] == "unavailable"
    assert "RuntimeError" in body["explanation"]["detail"]
    assert Prediction.objects.get(pk=internal_id(body["prediction_id"])).source == "model"

    batch = api.post("/predict/batch", lead_request([STRONG_LEAD], explain=True), format="json")
    assert batch.status_code == 200, batch.content
    (item,) = batch.json()["predictions"]
    assert item["source"] == "model" and item["conversion_probability"] == expected["conversion_probability"]
    assert item["reasons"] == []
