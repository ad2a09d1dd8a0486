"""`POST /predict` and `/predict/batch`: the CRM's response shape, logging, errors, fallback."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from django.core.files.storage import storages
from rest_framework.test import APIClient

from predictions.models import Prediction
from predictions.public_ids import internal_id
from registry.cache import cache_clear
from registry.models import ModelVersion
from registry.services import model_version_activate
from tests.conftest import TENANT, clv_request, lead_request, train_inline, without

# The CRM's request body, as the CRM sends it.
CRM_LEAD = {
    "email": "john.doe@acme-analytics.com",
    "job_title": "VP Sales",
    "company": "Acme Analytics",
    "lead_score": 75,
    "engagement_score": 80,
}
VALUE_CATEGORIES = ("high_value", "medium_value", "low_value", "very_low_value")


def expected_class(probability: float) -> str:
    return "high" if probability > 0.7 else "medium" if probability > 0.4 else "low"


def expected_category(value: float) -> str:
    if value > 10000:
        return "high_value"
    if value > 1000:
        return "medium_value"
    if value > 100:
        return "low_value"
    return "very_low_value"


def assert_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False and body["error"] and isinstance(body["details"], dict)
    return body


# --- lead conversion with a trained model ---------------------------------------------


def test_predict_answers_every_original_field(api: APIClient, lead_model: ModelVersion) -> None:
    response = api.post("/predict", lead_request(CRM_LEAD), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["error"] is None
    assert body["prediction_type"] == "lead_conversion"
    probability = body["conversion_probability"]
    assert 0.0 <= probability <= 1.0
    assert body["lifetime_value"] is None and body["value_category"] is None
    assert 0.0 <= body["confidence"] <= 1.0
    # The original service's formula; the calibrated class probability beside it.
    original = (min(2 * abs(probability - 0.5), 1) + max(probability, 1 - probability)) / 2
    assert body["confidence"] == pytest.approx(original, abs=2e-6)
    assert body["confidence_detail"] == {
        "value": pytest.approx(max(probability, 1 - probability), abs=1e-6), "method": "class_probability"
    }
    assert body["prediction_class"] == expected_class(probability)

    importance = body["feature_importance"]
    columns = {column["name"] for column in lead_model.feature_schema["columns"]}
    top = importance["top_features"]
    assert top and all(isinstance(pair, list) and len(pair) == 2 for pair in top)
    assert {name for name, _ in top} <= columns
    weights = [weight for _, weight in top]
    assert len(set(weights)) > 1, "uniform placeholder importances"
    assert importance["feature_count"] == len(columns)
    assert importance["explanation_method"]

    info = body["model_info"]
    assert info["model_path"] == lead_model.artifact_path
    assert info["algorithm"] == "logistic_regression"
    assert datetime.fromisoformat(info["training_date"]) == lead_model.created_at

    assert body["model_version"] == lead_model.version
    assert body["source"] == "model"
    assert isinstance(body["prediction_id"], int)
    assert 0 <= body["score"] <= 100 and body["score"] == round(probability * 100)
    assert body["tier"] in ("A", "B", "C", "D")


def test_predict_warns_about_unknown_missing_and_outlier_fields(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    record = CRM_LEAD | {"lead_score": 10_000, "favourite_colour": "teal"}
    response = api.post("/predict", lead_request(record), format="json")
    assert response.status_code == 200, response.content
    warnings = response.json()["warnings"]
    text = " | ".join(warnings)
    assert any("unknown" in warning and "favourite_colour" in warning for warning in warnings), text
    missing_warning = next(warning for warning in warnings if "missing" in warning)
    missing = {name.strip() for name in missing_warning.split(":", 1)[1].split(",")}
    assert {"company_size", "industry", "source", "website_visits", "created_at"} <= missing
    assert not missing & {"email", "job_title", "lead_score", "engagement_score"}
    assert any("outlier" in warning and "lead_score" in warning for warning in warnings), text
    assert not any("engagement_score" in warning for warning in warnings)

    # A complete record like the training rows raises no warning at all.
    complete = api.post("/predict", lead_request(without(lead_rows[0], "status")), format="json")
    assert complete.status_code == 200
    assert complete.json()["warnings"] == []


def test_predict_stores_one_prediction_row(api: APIClient, lead_model: ModelVersion) -> None:
    response = api.post("/predict", lead_request(CRM_LEAD, entity_id="lead-42"), format="json")
    body = response.json()
    prediction = Prediction.objects.get()
    assert prediction.pk == internal_id(body["prediction_id"])
    assert prediction.tenant == TENANT and prediction.model_type == "lead_conversion"
    assert prediction.model_version_id == lead_model.pk
    assert prediction.source == "model"
    assert prediction.entity_id == "lead-42"
    assert prediction.batch_id is None
    assert prediction.input == CRM_LEAD
    assert prediction.output["conversion_probability"] == body["conversion_probability"]
    assert prediction.value == pytest.approx(body["conversion_probability"])
    assert prediction.latency_ms > 0


def test_batch_scores_every_row_and_stores_them_as_one_batch(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rows = [without(row, "status") for row in lead_rows[:25]]
    response = api.post("/predict/batch", lead_request(rows), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    assert body["total_predictions"] == 25
    assert body["model_info"]["model_path"] == lead_model.artifact_path
    items = body["predictions"]
    assert [item["lead_id"] for item in items] == [row["id"] for row in rows]
    for item in items:
        assert 0.0 <= item["conversion_probability"] <= 1.0
        assert 0.0 <= item["confidence"] <= 1.0
        assert item["prediction_class"] == expected_class(item["conversion_probability"])
    assert len({item["conversion_probability"] for item in items}) > 1

    stored = list(Prediction.objects.order_by("id"))
    assert len(stored) == 25
    assert len({prediction.batch_id for prediction in stored}) == 1 and stored[0].batch_id is not None
    assert [prediction.entity_id for prediction in stored] == [row["id"] for row in rows]
    assert [prediction.pk for prediction in stored] == [internal_id(item["prediction_id"]) for item in items]
    assert all(prediction.model_version_id == lead_model.pk for prediction in stored)

    # A row scores the same alone as in the batch.
    single = api.post("/predict", lead_request(rows[4]), format="json").json()
    assert single["conversion_probability"] == items[4]["conversion_probability"]


# --- customer lifetime value with a trained model ----------------------------------------


def test_clv_predict_answers_lifetime_value(
    api: APIClient, clv_model: ModelVersion, customer_rows: list[dict[str, Any]]
) -> None:
    record = without(customer_rows[0], "lifetime_value")
    response = api.post("/predict", clv_request(record), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["prediction_type"] == "customer_lifetime_value"
    assert body["source"] == "model" and body["model_version"] == clv_model.version
    assert body["conversion_probability"] is None and body["prediction_class"] is None
    assert body["lifetime_value"] >= 0
    assert body["value_category"] in VALUE_CATEGORIES
    assert body["value_category"] == expected_category(body["lifetime_value"])
    assert 0.0 <= body["confidence"] <= 1.0
    assert body["confidence_detail"]["method"] == "holdout_band_coverage"
    assert body["model_info"]["algorithm"] == "linear_regression"
    assert Prediction.objects.get().model_type == "customer_lifetime_value"


def test_clv_batch_items_carry_customer_id_and_value(
    api: APIClient, clv_model: ModelVersion, customer_rows: list[dict[str, Any]]
) -> None:
    rows = [without(row, "lifetime_value") for row in customer_rows[:10]]
    response = api.post("/predict/batch", clv_request(rows), format="json")
    assert response.status_code == 200, response.content
    items = response.json()["predictions"]
    assert [item["customer_id"] for item in items] == [row["customer_id"] for row in rows]
    for item in items:
        assert item["lifetime_value"] >= 0
        assert item["value_category"] == expected_category(item["lifetime_value"])
    assert len({item["lifetime_value"] for item in items}) > 1
    # Confidence is per record (the held-out coverage of its value band), not one figure per model.
    assert all(0.0 < item["confidence"] < 1.0 for item in items)
    assert len({item["confidence"] for item in items}) > 1
    assert Prediction.objects.filter(model_version=clv_model).count() == 10


# --- bad requests: 4xx, nothing stored --------------------------------------------------


def test_wrong_type_or_nested_value_is_400_naming_the_field(api: APIClient, lead_model: ModelVersion) -> None:
    body = assert_error(api.post("/predict", lead_request(CRM_LEAD | {"lead_score": "abc"}), format="json"), 400)
    assert "lead_score" in body["error"]
    assert "lead_score" in body["details"]
    body = assert_error(api.post("/predict", lead_request(CRM_LEAD | {"industry": ["a", "b"]}), format="json"), 400)
    assert "industry" in body["details"]
    body = assert_error(api.post("/predict", lead_request(CRM_LEAD | {"created_at": "last tuesday"}), format="json"), 400)
    assert "created_at" in body["details"]
    assert not Prediction.objects.exists()


def test_bad_row_in_batch_is_400_naming_the_row(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rows = [without(row, "status") for row in lead_rows[:6]]
    rows[3]["lead_score"] = "abc"
    body = assert_error(api.post("/predict/batch", lead_request(rows), format="json"), 400)
    assert "data[3].lead_score" in body["details"]
    body = assert_error(api.post("/predict/batch", lead_request([CRM_LEAD, "not a lead"]), format="json"), 400)
    assert any(key.startswith("data[1]") for key in body["details"])
    assert not Prediction.objects.exists()


def test_non_object_row_in_batch_without_model_is_400(api: APIClient) -> None:
    response = api.post("/predict/batch", lead_request([CRM_LEAD, "not a lead"]), format="json")
    assert_error(response, 400)
    assert not Prediction.objects.exists()


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/predict", {}),
        ("/predict", "a lead"),
        ("/predict", [CRM_LEAD]),
        ("/predict", None),
        ("/predict/batch", []),
        ("/predict/batch", CRM_LEAD),
    ],
)
def test_empty_or_misshapen_data_is_400(api: APIClient, path: str, data: Any) -> None:
    body = assert_error(api.post(path, lead_request(data), format="json"), 400)
    assert "data" in body["details"]
    assert not Prediction.objects.exists()


def test_missing_data_is_400(api: APIClient) -> None:
    body = assert_error(api.post("/predict", {"model_type": "lead_conversion", "user_id": TENANT}, format="json"), 400)
    assert "data" in body["details"]


def test_unknown_model_type_is_400(api: APIClient) -> None:
    body = assert_error(api.post("/predict", lead_request(CRM_LEAD, model_type="churn"), format="json"), 400)
    assert "model_type" in body["details"]
    assert not Prediction.objects.exists()


def test_batch_over_row_limit_is_413(api: APIClient, settings: Any) -> None:
    settings.LEADML_MAX_BATCH_ROWS = 5
    assert_error(api.post("/predict/batch", lead_request([CRM_LEAD] * 6), format="json"), 413)
    assert not Prediction.objects.exists()
    assert api.post("/predict/batch", lead_request([CRM_LEAD] * 5), format="json").status_code == 200


def test_json_body_over_size_limit_is_413(api: APIClient, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    rows = [CRM_LEAD | {"id": f"lead-{index}"} for index in range(40)]
    assert_error(api.post("/predict/batch", lead_request(rows), format="json"), 413)
    assert not Prediction.objects.exists()


def test_unknown_model_name_is_404(api: APIClient) -> None:
    body = assert_error(api.post("/predict", lead_request(CRM_LEAD, model_name="nope"), format="json"), 404)
    assert "nope" in body["error"]
    assert_error(api.post("/predict/batch", lead_request([CRM_LEAD], model_name="nope"), format="json"), 404)
    assert not Prediction.objects.exists()


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_overlong_record_id_is_not_a_server_error(api: APIClient, path: str) -> None:
    record = {"id": "x" * 300, "email": "jane@acme-analytics.com"}
    response = api.post(path, lead_request(record if path == "/predict" else [record]), format="json")
    body = assert_error(response, 400)
    assert "300 characters" in body["error"]
    assert not Prediction.objects.exists()


def test_nul_character_in_record_is_not_a_server_error(api: APIClient) -> None:
    response = api.post("/predict", lead_request({"email": "jane\u0000@acme-analytics.com"}), format="json")
    body = assert_error(response, 400)
    assert "email" in body["details"]
    assert not Prediction.objects.exists()


# --- rule-based fallback ---------------------------------------------------------------


def test_tenant_without_model_gets_rules_scores(api: APIClient) -> None:
    ceo = {"email": "ceo@acme-analytics.com", "job_title": "CEO", "company_size": 800, "engagement_score": 70}
    student = {"email": "kid@gmail.com", "job_title": "Student", "engagement_score": 10}
    strong = api.post("/predict", lead_request(ceo), format="json")
    weak = api.post("/predict", lead_request(student), format="json")
    assert strong.status_code == weak.status_code == 200
    strong_body, weak_body = strong.json(), weak.json()
    for body in (strong_body, weak_body):
        assert body["success"] is True and body["source"] == "rules"
        assert body["fallback_reason"] and "no trained model" in body["fallback_reason"]
        assert body["model_version"] is None and body["model_info"]["algorithm"] == "rules"
        assert body["reasons"] and all({"feature", "contribution", "description"} <= set(r) for r in body["reasons"])
        assert body["prediction_class"] == expected_class(body["conversion_probability"])
    assert strong_body["conversion_probability"] > weak_body["conversion_probability"]
    assert strong_body["score"] > weak_body["score"]
    assert {reason["feature"] for reason in strong_body["reasons"]} >= {"email", "job_title"}
    stored = list(Prediction.objects.all())
    assert len(stored) == 2 and all(p.source == "rules" and p.model_version_id is None for p in stored)


def test_rules_batch_without_model(api: APIClient) -> None:
    rows = [{"id": "l1", "email": "a@gmail.com"}, {"id": "l2", "email": "b@bigcorp.com", "job_title": "CTO"}]
    response = api.post("/predict/batch", lead_request(rows), format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "rules" and body["fallback_reason"]
    assert [item["lead_id"] for item in body["predictions"]] == ["l1", "l2"]
    assert body["predictions"][1]["conversion_probability"] > body["predictions"][0]["conversion_probability"]
    assert Prediction.objects.filter(source="rules").count() == 2


def test_clv_without_model_uses_heuristic(api: APIClient) -> None:
    today = date.today()
    customer = {
        "customer_id": "c-1", "total_orders": 12, "total_spent": 6000.0, "avg_order_value": 500.0,
        "first_purchase_date": (today - timedelta(days=730)).isoformat(),
        "last_purchase_date": (today - timedelta(days=20)).isoformat(),
    }
    response = api.post("/predict", clv_request(customer), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"] == "rules" and body["fallback_reason"]
    assert body["prediction_type"] == "customer_lifetime_value"
    assert body["lifetime_value"] > 0
    assert body["value_category"] == expected_category(body["lifetime_value"])
    assert body["reasons"]
    assert Prediction.objects.get().entity_id == "c-1"


def _flip_a_byte(path: str, offset: int | None = None) -> bytes:
    """Corrupt an artifact in place; returns the original bytes."""
    with open(path, "r+b") as handle:
        original = handle.read()
        position = len(original) // 2 if offset is None else offset
        handle.seek(position)
        handle.write(bytes([original[position] ^ 0xFF]))
    return original


def test_tampered_artifact_falls_back_on_this_host_and_is_not_marked_broken(
    api: APIClient, lead_model: ModelVersion, client_for: Any
) -> None:
    _flip_a_byte(storages["models"].path(lead_model.artifact_path))
    cache_clear()
    response = api.post("/predict", lead_request(CRM_LEAD), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"] == "rules"
    assert "checksum" in body["fallback_reason"] and "unusable here" in body["fallback_reason"]
    # A fault of this host's copy: other hosts may hold a good one, so the version stays active.
    lead_model.refresh_from_db()
    assert lead_model.status == ModelVersion.Status.ACTIVE
    assert Prediction.objects.get().source == "rules"

    health = client_for(None).get("/health")
    assert health.status_code == 200  # still serving: a load balancer keeps routing here
    assert health.json()["status"] == "degraded"
    assert health.json()["checks"]["models"] == {"status": "degraded", "broken_versions": 0, "artifact_faults": 1}


def test_a_version_whose_artifact_fails_here_is_served_by_its_older_version_until_restored(
    api: APIClient, lead_model: ModelVersion
) -> None:
    newer = train_inline(TENANT, "lead_conversion", "logistic_regression", "leads_lr", reuse=True).model_version
    model_version_activate(model_version=newer, actor="test", reason="newer")
    path = storages["models"].path(newer.artifact_path)
    original = _flip_a_byte(path)

    stood_in = api.post("/predict", lead_request(CRM_LEAD), format="json").json()
    assert stood_in["source"] == "model" and stood_in["model_version"] == 1
    assert any("version 2" in warning and "served by version 1" in warning for warning in stood_in["warnings"])
    assert Prediction.objects.latest("id").model_version_id == lead_model.pk

    with open(path, "wb") as handle:  # the right bytes restored: the version serves again by itself
        handle.write(original)
    restored = api.post("/predict", lead_request(CRM_LEAD), format="json").json()
    assert restored["model_version"] == 2 and not any("served by" in w for w in restored["warnings"])


def test_artifact_corrupted_while_served_is_caught_on_the_next_request(
    api: APIClient, lead_model: ModelVersion
) -> None:
    first = api.post("/predict", lead_request(CRM_LEAD), format="json")
    assert first.json()["source"] == "model"  # the bundle is now cached in this process
    _flip_a_byte(storages["models"].path(lead_model.artifact_path), offset=100)

    second = api.post("/predict", lead_request(CRM_LEAD), format="json")

    assert second.status_code == 200, second.content
    assert second.json()["source"] == "rules"
    assert "checksum" in second.json()["fallback_reason"]


def test_missing_artifact_falls_back_without_reading_again_each_time(
    api: APIClient, lead_model: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    storages["models"].delete(lead_model.artifact_path)
    cache_clear()
    response = api.post("/predict", lead_request(CRM_LEAD), format="json")
    assert response.status_code == 200, response.content
    assert response.json()["source"] == "rules"
    # Later requests keep answering from the rules without touching the file again.
    import registry.cache

    def unexpected_read(path: str) -> bytes:
        raise AssertionError("read the missing artifact again")

    monkeypatch.setattr(registry.cache, "artifact_read", unexpected_read)
    again = api.post("/predict/batch", lead_request([CRM_LEAD]), format="json")
    assert again.status_code == 200 and again.json()["source"] == "rules"


# --- model choice ----------------------------------------------------------------------


def test_model_name_chooses_among_two_lead_models(api: APIClient, lead_model: ModelVersion) -> None:
    # A small grid keeps the second training short; the margin keeps it a candidate.
    config = {"param_grid": {"n_estimators": [30], "max_depth": [4]}, "min_improvement": 0.9}
    second = train_inline(TENANT, "lead_conversion", "random_forest", "second", config).model_version
    lead_model.refresh_from_db()
    assert lead_model.status == "active" and second.status == "candidate"

    default = api.post("/predict", lead_request(CRM_LEAD), format="json").json()
    assert default["model_info"]["model_name"] == "leads_lr"
    assert default["model_info"]["algorithm"] == "logistic_regression"

    chosen = api.post("/predict", lead_request(CRM_LEAD, model_name="second"), format="json").json()
    assert chosen["source"] == "model"
    assert chosen["model_info"]["model_name"] == "second"
    assert chosen["model_info"]["algorithm"] == "random_forest"
    assert chosen["model_info"]["model_path"] == second.artifact_path
    assert chosen["model_version"] == second.version

    stored = dict(Prediction.objects.values_list("id", "model_version_id"))
    assert stored == {internal_id(default["prediction_id"]): lead_model.pk, internal_id(chosen["prediction_id"]): second.pk}


@pytest.mark.parametrize("sentinel", ["0001-01-01", "9999-12-31T00:00:00Z"])
def test_a_sentinel_date_is_read_as_missing_and_said_so(
    api: APIClient, lead_model: ModelVersion, sentinel: str
) -> None:
    # CRMs write "no date" as .NET's DateTime.MinValue or 9999-12-31: scored as missing, once silently.
    dated = api.post("/predict", lead_request(CRM_LEAD | {"created_at": sentinel}), format="json").json()
    undated = api.post("/predict", lead_request(CRM_LEAD), format="json").json()
    assert dated["conversion_probability"] == undated["conversion_probability"]
    assert f"created_at={sentinel!r} is outside the plausible dates (1900-01-01 .. 2200-01-01): read as missing" in (
        dated["warnings"]
    )
    batch = api.post("/predict/batch", lead_request([CRM_LEAD | {"created_at": sentinel}] * 70), format="json").json()
    assert all(any("outside the plausible dates" in w for w in p["warnings"]) for p in batch["predictions"])
