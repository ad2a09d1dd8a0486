"""Model listing, deletion and activation; OpenAPI schema and docs; `/health`."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.storage import storages
from django.db import IntegrityError
from django.db.models import Min
from rest_framework.test import APIClient

import leadml
import leadml.health
import registry.services
from predictions.models import Prediction
from predictions.public_ids import internal_id
from registry.artifacts import artifact_read
from registry.models import ModelVersion, PromotionEvent
from registry.services import model_version_register
from leadml.api.errors import ConflictError
from tests.conftest import TENANT
from tests.factories import model_version

CRM_LEAD = {"email": "jane@acme-analytics.com", "job_title": "VP Sales", "lead_score": 70, "engagement_score": 60}
COPIED_FIELDS = (
    "metrics", "cross_validation", "params", "feature_schema", "feature_importance",
    "explanation_method", "training_report", "training_config", "trained_rows",
)


def second_lead_model(trained: ModelVersion, name: str = "second") -> ModelVersion:
    """Register another lead model from the trained one's artifact (as a job would), without training again."""
    second = model_version_register(
        tenant=TENANT, model_type="lead_conversion", name=name, algorithm=trained.algorithm,
        artifact_bytes=artifact_read(trained.artifact_path), artifact_sha256=trained.artifact_sha256,
        fields={field: getattr(trained, field) for field in COPIED_FIELDS}, actor="test",
    )
    assert second.status == "candidate" and second.artifact_path != trained.artifact_path
    return second


def candidate_row() -> ModelVersion:
    """A registry row without a usable artifact: enough for requests refused before loading."""
    return model_version(TENANT, name="leads_lr")


def assert_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False and body["error"] and isinstance(body["details"], dict)
    return body


# --- GET /models/{user_id} --------------------------------------------------------------


def test_model_list_keeps_the_original_shape_for_every_version(api: APIClient, lead_model: ModelVersion) -> None:
    second = second_lead_model(lead_model)
    response = api.get(f"/models/{TENANT}")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["total_models"] == 2
    by_name = {model["model_name"]: model for model in body["models"]}
    assert set(by_name) == {"leads_lr", "second"}

    model = by_name["leads_lr"]
    assert model["model_path"] == lead_model.artifact_path
    assert model["file_size"] == storages["models"].size(lead_model.artifact_path) > 0
    assert model["version"] == 1 and model["is_active"] is True and model["status"] == "active"
    assert model["model_type"] == "lead_conversion"
    assert 0.5 < model["metrics"]["roc_auc"] <= 1.0
    metadata = model["metadata"]
    assert metadata["algorithm"] == "logistic_regression"
    assert metadata["user_id"] == TENANT and metadata["model_name"] == "leads_lr"
    assert metadata["best_params"] and metadata["best_params"] == lead_model.params
    assert "email" in metadata["feature_names"]
    assert metadata["training_date"]

    other = by_name["second"]
    assert other["is_active"] is False and other["status"] == "candidate"
    assert other["model_path"] == second.artifact_path
    assert other["file_size"] == storages["models"].size(second.artifact_path)


# --- DELETE /models/{user_id}/{model_name} -----------------------------------------------


def test_deleting_active_model_needs_force(
    api: APIClient, lead_model: ModelVersion, django_capture_on_commit_callbacks: Any
) -> None:
    prediction_id = api.post(
        "/predict", {"model_type": "lead_conversion", "user_id": TENANT, "data": CRM_LEAD}, format="json"
    ).json()["prediction_id"]
    path = lead_model.artifact_path

    body = assert_error(api.delete(f"/models/{TENANT}/leads_lr"), 409)
    assert "force" in body["error"]
    assert ModelVersion.objects.filter(pk=lead_model.pk).exists() and storages["models"].exists(path)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/models/{TENANT}/leads_lr?force=true")
    assert response.status_code == 200, response.content
    assert response.json()["deleted_versions"] == [1]
    assert not ModelVersion.objects.filter(pk=lead_model.pk).exists()
    assert not storages["models"].exists(path)
    # The prediction log outlives the model and still names the version it came from.
    assert Prediction.objects.get(pk=internal_id(prediction_id)).model_version_id == lead_model.pk
    # With no model left, the tenant is scored by the rules again.
    again = api.post("/predict", {"model_type": "lead_conversion", "user_id": TENANT, "data": CRM_LEAD}, format="json")
    assert again.status_code == 200 and again.json()["source"] == "rules"


def test_deleting_a_candidate_needs_no_force(
    api: APIClient, lead_model: ModelVersion, django_capture_on_commit_callbacks: Any
) -> None:
    second = second_lead_model(lead_model)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/models/{TENANT}/second")
    assert response.status_code == 200, response.content
    assert not ModelVersion.objects.filter(pk=second.pk).exists()
    assert not storages["models"].exists(second.artifact_path)
    lead_model.refresh_from_db()
    assert lead_model.status == "active" and storages["models"].exists(lead_model.artifact_path)


def test_deleting_unknown_model_is_404(api: APIClient) -> None:
    assert_error(api.delete(f"/models/{TENANT}/nothing-here"), 404)


# --- POST /models/{user_id}/{model_name}/activate -----------------------------------------


def test_activate_switches_the_active_model_and_records_who_and_why(
    api: APIClient, lead_model: ModelVersion
) -> None:
    second = second_lead_model(lead_model)
    response = api.post(
        f"/models/{TENANT}/second/activate", {"version": 1, "reason": "forest wins on recent leads"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"]["model_name"] == "second" and body["model"]["is_active"] is True

    lead_model.refresh_from_db()
    second.refresh_from_db()
    assert second.status == "active" and lead_model.status == "candidate"
    event = PromotionEvent.objects.filter(to_version=second).get()
    assert event.from_version_id == lead_model.pk
    assert event.actor == "token:tenant a"
    assert event.reason == "forest wins on recent leads"

    history = body["promotion_history"]
    latest = history[0]
    assert latest["to_model_name"] == "second" and latest["to_version"] == 1 and latest["from_version"] == 1
    assert latest["actor"] == "token:tenant a" and latest["reason"] == "forest wins on recent leads"
    assert any(entry["reason"] == "first model of this type" for entry in history[1:])

    # Predictions now come from the newly active model without a restart.
    predicted = api.post("/predict", {"model_type": "lead_conversion", "user_id": TENANT, "data": CRM_LEAD}, format="json")
    assert predicted.json()["model_info"]["model_name"] == "second"

    # Activating the active version again is a conflict (409, as the README's conflicts are);
    # rolling back is recorded like any change.
    again = assert_error(api.post(f"/models/{TENANT}/second/activate", {"reason": "again"}, format="json"), 409)
    assert again["details"] == {"version": ["already active"]}
    rollback = api.post(f"/models/{TENANT}/leads_lr/activate", {"version": 1, "reason": "rollback"}, format="json")
    assert rollback.status_code == 200, rollback.content
    assert rollback.json()["promotion_history"][0]["reason"] == "rollback"
    assert rollback.json()["promotion_history"][0]["to_model_name"] == "leads_lr"
    assert PromotionEvent.objects.count() == 3


def test_activate_without_reason_is_400(api: APIClient) -> None:
    candidate_row()
    body = assert_error(api.post(f"/models/{TENANT}/leads_lr/activate", {"version": 1}, format="json"), 400)
    assert "reason" in body["details"]
    assert not PromotionEvent.objects.exists()


def test_activate_unknown_version_is_404(api: APIClient) -> None:
    candidate_row()
    response = api.post(f"/models/{TENANT}/leads_lr/activate", {"version": 7, "reason": "rollback"}, format="json")
    assert_error(response, 404)


# --- OpenAPI schema and docs --------------------------------------------------------------


def test_schema_is_openapi_3_listing_the_endpoints(api: APIClient) -> None:
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in ("/predict", "/predict/batch", "/train", "/datasets", "/health", "/models/{user_id}"):
        assert path in schema["paths"], path
    assert "post" in schema["paths"]["/predict"]


def test_docs_page_is_self_hosted_html(api: APIClient) -> None:
    response = api.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "swagger" in html.lower()
    assert "cdn.jsdelivr" not in html and "unpkg" not in html


# --- GET /health --------------------------------------------------------------------------


def test_health_reports_services(db: None, client_for: Callable[[str | None], APIClient]) -> None:
    response = client_for(None).get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["version"] == leadml.__version__
    assert body["timestamp"]
    # The original's one word per service; the details under `checks`.
    assert body["services"] == {
        "database": "available", "job_queue": "available", "model_storage": "available", "models": "available"
    }
    checks = body["checks"]
    assert checks["database"]["status"] == "up"
    assert checks["job_queue"]["status"] == "up"
    assert checks["model_storage"]["status"] == "up"
    assert checks["models"]["status"] == "up"


def test_health_is_503_when_database_is_down(
    db: None, client_for: Callable[[str | None], APIClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leadml.health, "_check_database", lambda: {"status": "down"})
    response = client_for(None).get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["services"]["database"] == "unavailable"
    assert body["checks"]["database"]["status"] == "down"


# --- Registration errors --------------------------------------------------------------


def test_a_registration_refused_by_another_constraint_is_not_called_a_concurrent_one(
    lead_model: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A JSON check refusing NaN metrics once read "registered concurrently; retry": never true, never helped.
    def refused(self: ModelVersion, *args: Any, **kwargs: Any) -> None:
        raise IntegrityError("CHECK constraint failed: JSON_VALID(metrics)")

    monkeypatch.setattr(ModelVersion, "save", refused)
    with pytest.raises(IntegrityError, match="JSON_VALID"):
        second_lead_model(lead_model)


def test_a_version_number_taken_meanwhile_is_a_conflict(lead_model: ModelVersion, monkeypatch: pytest.MonkeyPatch) -> None:
    # The newest version read before another process registered its own: the same number twice.
    monkeypatch.setattr(registry.services, "Max", lambda field: Min(field) - 1)
    with pytest.raises(ConflictError, match="registered concurrently"):
        second_lead_model(lead_model, name=lead_model.name)
