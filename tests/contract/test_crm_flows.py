"""The CRM's own requests, exactly as its route handlers send them, and the original answers.

The CRM (a Next.js app) was written against the original FastAPI service; the only change
it makes for leadml is its service token. Each test sends one of its requests and checks
the fields it reads, with the original's names, types and meanings.
"""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from demo.data import generate_customers, generate_leads
from registry.models import ModelVersion
from tests.conftest import records
from tests.factories import dataset_with_rows, service_client, train_inline, trained_model

CRM_USER = str(uuid.UUID(int=7))

# A row of the CRM's `leads` table, read whole and sent as `data` (its `leadData`).
CRM_LEAD_ROW = {
    "id": "8f3c2a9e-5b7d-4e1f-9a6c-2d4b8e0f1a3c",
    "user_id": CRM_USER,
    "email": "dana.whitfield@northwind-logistics.com",
    "phone": "+1 415 555 0134",
    "first_name": "Dana",
    "last_name": "Whitfield",
    "company": "Northwind Logistics",
    "job_title": "VP Operations",
    "lead_score": 72,
    "status": "qualified",
    "tags": [],
    "custom_fields": {"industry": "saas"},
    "last_contact_date": "2026-11-20T15:04:05.123+00:00",
    "next_follow_up": None,
    "notes": "Met at the logistics expo; wants a demo in January.",
    "created_at": "2026-10-02T09:12:44.000Z",
    "updated_at": "2026-11-20T15:04:05.123456+00:00",
}
# The CRM's two training calls.
TRAIN_PLAIN = {"model_type": "lead_conversion", "algorithm": "random_forest", "model_name": "crm_lead_model",
               "user_id": CRM_USER}
TRAIN_CONFIGURED = TRAIN_PLAIN | {
    "algorithm": "logistic_regression",
    "model_name": "crm_lead_model_lr",
    "training_config": {
        "features": [],
        "preprocessing": {"missing_value_strategy": "mean", "categorical_encoding": "one_hot",
                          "scaling_method": "standard"},
    },
}
LEAD_METRICS = ("accuracy", "precision", "recall", "f1_score", "roc_auc")
CLV_METRICS = ("mean_squared_error", "mean_absolute_error", "r2_score", "root_mean_squared_error")


def original_confidence(probability: float) -> float:
    return (min(2 * abs(probability - 0.5), 1) + max(probability, 1 - probability)) / 2


def prediction_class(probability: float) -> str:
    return "high" if probability > 0.7 else "medium" if probability > 0.4 else "low"


@pytest.fixture
def crm(db: None) -> APIClient:
    """The CRM backend: a service token, acting for its users."""
    return service_client(name="crm backend")


def crm_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """Demo leads shaped like CRM rows: with `tags` and `custom_fields`."""
    rows = records(generate_leads(count, seed=seed))
    for index, row in enumerate(rows):
        row["tags"] = ["webinar"] if row["source"] == "webinar" else ([] if index % 2 else ["newsletter"])
        row["custom_fields"] = {"industry": row.pop("industry")} if index % 4 else {}
    return rows


@pytest.fixture
def crm_lead_model(crm: APIClient) -> ModelVersion:
    return trained_model(CRM_USER, "lead_conversion", crm_rows(400, seed=21), name="crm_scorer")


def test_a_whole_crm_lead_row_scores_with_the_original_fields(crm: APIClient, crm_lead_model: ModelVersion) -> None:
    response = crm.post("/predict", {"model_type": "lead_conversion", "user_id": CRM_USER, "data": CRM_LEAD_ROW},
                        format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["error"] is None
    assert body["prediction_type"] == "lead_conversion"
    probability = body["conversion_probability"]
    assert isinstance(probability, float) and 0 <= probability <= 1
    assert body["confidence"] == pytest.approx(original_confidence(probability), abs=2e-6)
    assert body["prediction_class"] == prediction_class(probability)
    assert body["lifetime_value"] is None and body["value_category"] is None
    importance = body["feature_importance"]
    assert importance["top_features"] and all(
        isinstance(name, str) and isinstance(weight, float) for name, weight in importance["top_features"]
    )
    assert isinstance(importance["feature_count"], int) and isinstance(importance["explanation_method"], str)
    assert body["model_info"]["model_path"] == crm_lead_model.artifact_path
    assert body["model_info"]["algorithm"] == "logistic_regression" and body["model_info"]["training_date"]
    # The fields the model does not read are listed, not refused.
    ignored = next(warning for warning in body["warnings"] if warning.startswith("ignored unknown fields"))
    for name in ("first_name", "last_name", "phone", "notes", "user_id", "next_follow_up"):
        assert name in ignored
    # custom_fields was flattened: the model trained on custom_fields.industry reads it.
    columns = {column["name"] for column in crm_lead_model.feature_schema["columns"]}
    assert {"custom_fields.industry", "tags"} <= columns
    assert "custom_fields.industry" not in ignored and "tags" not in ignored


def test_a_crm_row_with_a_known_field_in_an_unusable_shape_is_a_400_naming_it(
    crm: APIClient, crm_lead_model: ModelVersion
) -> None:
    row = CRM_LEAD_ROW | {"lead_score": {"value": 72}}
    response = crm.post("/predict", {"model_type": "lead_conversion", "user_id": CRM_USER, "data": row}, format="json")
    assert response.status_code == 400
    body = response.json()
    # FastAPI clients read `detail`; leadml's shape is beside it.
    assert body["success"] is False and body["detail"] == body["error"] and "lead_score" in body["details"]


def test_a_batch_names_rows_without_an_id_by_position(crm: APIClient, crm_lead_model: ModelVersion) -> None:
    rows = [CRM_LEAD_ROW, {"email": "x@gmail.com", "job_title": "Student", "tags": ["newsletter"]},
            {"company": "Acme", "custom_fields": {}}]
    response = crm.post("/predict/batch", {"model_type": "lead_conversion", "user_id": CRM_USER, "data": rows},
                        format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["total_predictions"] == 3
    assert [item["lead_id"] for item in body["predictions"]] == [CRM_LEAD_ROW["id"], "lead_1", "lead_2"]
    for item in body["predictions"]:
        assert item["confidence"] == pytest.approx(original_confidence(item["conversion_probability"]), abs=2e-6)
        assert item["prediction_class"] == prediction_class(item["conversion_probability"])
    assert body["model_info"]["model_path"] == crm_lead_model.artifact_path


def test_a_clv_batch_names_customers_by_position_and_gives_each_its_confidence(crm: APIClient) -> None:
    dataset_with_rows(CRM_USER, "customer_lifetime_value", records(generate_customers(300, seed=8)))
    assert train_inline(CRM_USER, "customer_lifetime_value", "random_forest", "crm_clv", reuse=True).status == "succeeded"
    customers = [{key: value for key, value in row.items() if key not in ("customer_id", "lifetime_value")}
                 for row in records(generate_customers(12, seed=9))]
    response = crm.post("/predict/batch", {"model_type": "customer_lifetime_value", "user_id": CRM_USER,
                                           "data": customers}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["prediction_type"] == "customer_lifetime_value"
    items = body["predictions"]
    assert [item["customer_id"] for item in items] == [f"customer_{i}" for i in range(12)]
    assert all(0 < item["confidence"] < 1 for item in items)
    assert len({item["confidence"] for item in items}) > 1, "one confidence for the whole model"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("body", [TRAIN_PLAIN, TRAIN_CONFIGURED], ids=["plain", "original_options"])
def test_the_crm_training_calls_answer_in_the_original_synchronous_shape(body: dict[str, Any]) -> None:
    crm = service_client(name="crm backend")
    dataset_with_rows(CRM_USER, "lead_conversion", crm_rows(300, seed=5))
    response = crm.post("/train", body, format="json")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["success"] is True and answer["model_path"].endswith(".joblib")
    metadata = answer["metadata"]
    assert isinstance(metadata["best_params"], dict) and metadata["best_params"]
    importance = metadata["feature_importance"]
    assert isinstance(importance, dict) and importance and all(isinstance(w, float) for w in importance.values())
    assert metadata["training_samples"] + metadata["test_samples"] <= 300
    assert metadata["features"] and metadata["model_class"]
    for name in LEAD_METRICS:
        assert isinstance(answer["metrics"][name], float), name
        assert metadata["metrics"][name] == answer["metrics"][name]
    # The job behind it can still be followed.
    assert crm.get(answer["status_url"]).json()["status"] == "succeeded"
    version = ModelVersion.objects.get(name=body["model_name"])
    if body is TRAIN_CONFIGURED:
        assert version.training_report["preprocessing"]["scaling"] == "standard"
        assert version.training_report["preprocessing"]["missing_value_strategy"] == "mean"


@pytest.mark.django_db(transaction=True)
def test_training_can_still_be_asked_to_answer_at_once() -> None:
    crm = service_client(name="crm backend")
    dataset_with_rows(CRM_USER, "lead_conversion", crm_rows(200, seed=6))
    # RFC 7240: the job starts; the answer does not wait for it.
    response = crm.post("/train", TRAIN_PLAIN | {"algorithm": "logistic_regression"}, format="json",
                        HTTP_PREFER="respond-async")
    assert response.status_code == 202, response.content
    assert response["Preference-Applied"] == "respond-async"
    assert response.json()["job_id"] and response.json()["status_url"].startswith("/jobs/")
    response = crm.post("/train?async=true", TRAIN_PLAIN | {"model_name": "other", "algorithm": "logistic_regression"},
                        format="json")
    assert response.status_code == 202
    assert crm.post("/train?async=maybe", TRAIN_PLAIN, format="json").status_code == 400


def test_the_crm_lists_models_with_path_metadata_and_size(crm: APIClient, crm_lead_model: ModelVersion) -> None:
    body = crm.get(f"/models/{CRM_USER}").json()
    (model,) = body["models"]
    assert model["model_path"] == crm_lead_model.artifact_path and model["file_size"] > 0
    assert model["metadata"]["model_type"] == "lead_conversion"
    assert isinstance(model["metadata"]["feature_importance"], dict)
    assert model["metrics"]["f1_score"] == model["metrics"]["f1"]


def test_insights_in_the_original_shape(crm: APIClient, crm_lead_model: ModelVersion) -> None:
    body = crm.get(f"/insights/{CRM_USER}/lead_conversion").json()
    assert body["total_models"] == 1 and body["model_types"] == ["logistic_regression"]
    roc = body["avg_performance"]["roc_auc"]
    assert set(roc) == {"mean", "std", "min", "max"} and roc["mean"] == crm_lead_model.metrics["roc_auc"]
    assert "feature_importance_trends" in body and "prediction_patterns" in body
    empty = crm.get(f"/insights/{CRM_USER}/customer_lifetime_value").json()
    assert empty["error"] == "No models available for insights"


def test_health_answers_one_word_per_service(client_for: Any, db: None) -> None:
    body = client_for(None).get("/health").json()
    assert body["status"] == "healthy" and body["timestamp"] and body["version"]
    assert body["services"] and set(body["services"].values()) == {"available"}


def test_naming_a_model_scores_with_its_newest_version_even_if_it_is_not_active(
    crm: APIClient, crm_lead_model: ModelVersion
) -> None:
    newer = train_inline(CRM_USER, "lead_conversion", "logistic_regression", "crm_scorer",
                         {"min_improvement": 1.0}).model_version
    assert newer.version == 2 and newer.status == ModelVersion.Status.CANDIDATE
    request = {"model_type": "lead_conversion", "user_id": CRM_USER, "data": CRM_LEAD_ROW}
    assert crm.post("/predict", request, format="json").json()["model_version"] == 1  # the active one
    assert crm.post("/predict", request | {"model_name": "crm_scorer"}, format="json").json()["model_version"] == 2
    pinned = crm.post("/predict", request | {"model_name": "crm_scorer", "version": 1}, format="json").json()
    assert pinned["model_version"] == 1
    missing = crm.post("/predict", request | {"model_name": "crm_scorer", "version": 9}, format="json")
    assert missing.status_code == 404
