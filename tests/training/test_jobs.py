"""Training jobs: claimed once, progress recorded, failures register nothing."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.storage import storages
from django.utils import timezone
from rest_framework.test import APIClient

from registry.models import ModelVersion, PromotionEvent
from tests.conftest import TENANT, make_dataset, train_inline
from training.models import TrainingJob
from training.services import run as job_services
from training.services.run import training_job_run


def test_job_trains_registers_and_activates_first_model(db: None, lead_rows: list[dict[str, Any]]) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    job = train_inline(TENANT, "lead_conversion", "gradient_boosting", "first")
    assert job.status == "succeeded", job.error
    assert job.progress_percent == 100 and job.started_at and job.finished_at
    steps = [entry["step"] for entry in job.log]
    assert steps[0] == "load_data" and "evaluate" in steps and steps[-1] == "succeeded"
    version = job.model_version
    assert version.status == "active" and version.version == 1
    assert storages["models"].exists(version.artifact_path)
    assert version.metrics["roc_auc"] > 0.7
    assert PromotionEvent.objects.get(to_version=version).reason == "first model of this type"


def test_second_model_stays_candidate_and_versions_count_up(db: None, lead_rows: list[dict[str, Any]]) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    first = train_inline(TENANT, "lead_conversion", "logistic_regression", "leads").model_version
    second = train_inline(TENANT, "lead_conversion", "logistic_regression", "leads").model_version
    first.refresh_from_db()
    assert (first.version, second.version) == (1, 2)
    assert first.status == "active" and second.status == "candidate"
    assert first.artifact_path != second.artifact_path


def test_duplicate_delivery_trains_once(db: None, lead_rows: list[dict[str, Any]]) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    job = train_inline(TENANT, "lead_conversion", "logistic_regression", "once")
    training_job_run(job_id=job.pk)  # the queue delivers the same task again
    assert ModelVersion.objects.filter(name="once").count() == 1
    job.refresh_from_db()
    assert job.attempts == 1


def test_job_lost_with_its_worker_is_claimed_again(db: None, lead_rows: list[dict[str, Any]]) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    stale = timezone.now() - timedelta(hours=2)
    job = TrainingJob.objects.create(
        tenant=TENANT, model_type="lead_conversion", algorithm="logistic_regression", model_name="retried",
        training_config={"cv_folds": 3}, status="running", started_at=stale, heartbeat_at=stale, attempts=1,
    )
    training_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 2


def test_failing_job_ends_failed_and_registers_nothing(db: None, lead_rows: list[dict[str, Any]]) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    # Queued while the column existed (creation refuses it now): the run finds it gone.
    job = TrainingJob.objects.create(
        tenant=TENANT, model_type="lead_conversion", algorithm="logistic_regression", model_name="broken",
        training_config={"features": ["no_such_column"]}, requested_by="test",
    )
    training_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "no_such_column" in job.error
    assert not ModelVersion.objects.filter(name="broken").exists()


def test_failure_while_registering_leaves_no_artifact(
    db: None, lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    saved: list[str] = []
    original_save = job_services.model_version_register.__globals__["artifacts"].artifact_save

    def recording_save(**kwargs: Any) -> str:
        path = original_save(**kwargs)
        saved.append(path)
        return path

    def explode(model_version: ModelVersion) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr("registry.artifacts.artifact_save", recording_save)
    original_register = job_services.model_version_register
    monkeypatch.setattr(
        job_services, "model_version_register", lambda **kwargs: original_register(**{**kwargs, "on_registered": explode})
    )
    job = train_inline(TENANT, "lead_conversion", "logistic_regression", "half")
    assert job.status == "failed" and "database went away" in job.error
    assert not ModelVersion.objects.filter(name="half").exists()
    assert saved and not storages["models"].exists(saved[0])


def test_cancel_queued_job_and_refuse_cancel_of_finished(db: None, api: APIClient) -> None:
    job = TrainingJob.objects.create(
        tenant=TENANT, model_type="lead_conversion", algorithm="random_forest", model_name="c"
    )
    response = api.post(f"/jobs/{job.pk}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    training_job_run(job_id=job.pk)  # a late delivery must not revive it
    job.refresh_from_db()
    assert job.status == "cancelled"
    again = api.post(f"/jobs/{job.pk}/cancel")
    assert again.status_code == 409 and again.json()["success"] is False


def test_cancel_requested_while_running_stops_the_job(
    db: None, lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    original = job_services._JobProgress.__call__

    def cancel_on_split(self: Any, step: str, percent: int) -> None:
        if step == "split":
            TrainingJob.objects.filter(pk=self.job_id).update(cancel_requested=True)
        original(self, step, percent)

    monkeypatch.setattr(job_services._JobProgress, "__call__", cancel_on_split)
    job = train_inline(TENANT, "lead_conversion", "logistic_regression", "stopped")
    assert job.status == "cancelled"
    assert not ModelVersion.objects.filter(name="stopped").exists()


def test_train_api_answers_202_with_a_job(
    db: None, api: APIClient, lead_rows: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    body = {"model_type": "lead_conversion", "algorithm": "random_forest", "model_name": "rf", "user_id": TENANT,
            "training_config": {"cv_folds": 3}}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/train", body, format="json")
    assert response.status_code == 202
    payload = response.json()
    assert payload["success"] is True and payload["status"] == "queued" and payload["job_id"]
    job = api.get(f"/jobs/{payload['job_id']}").json()
    assert job["status"] == "succeeded"
    assert job["progress"] == {"step": "succeeded", "percent": 100}
    steps = [entry["step"] for entry in job["log"]]
    # Progress moves after every cross-validation fit, not only between stages.
    assert "search:random_forest fit 1/12" in steps and "search:random_forest fit 12/12" in steps
    assert steps.index("calibrate") < steps.index("compare") < steps.index("register")
    percents = [entry["percent"] for entry in job["log"] if entry["percent"] is not None]
    assert percents == sorted(percents)
    assert job["result"]["metadata"]["best_params"]
    assert job["duration_seconds"] >= 0


@pytest.mark.django_db(transaction=True)
def test_train_wait_answers_in_the_original_synchronous_shape(
    client_for: Any, lead_rows: list[dict[str, Any]]
) -> None:
    from registry.services import api_token_create

    _, key = api_token_create(name="t", tenant=TENANT)
    make_dataset(TENANT, "lead_conversion", lead_rows)
    body = {"model_type": "lead_conversion", "algorithm": "gradient_boosting", "model_name": "sync", "user_id": TENANT,
            "training_config": {"cv_folds": 3}}
    response = client_for(key).post("/train?wait=120", body, format="json")
    assert response.status_code == 200, response.json()
    payload = response.json()
    assert payload["success"] is True
    assert payload["model_path"].endswith(".joblib")
    assert "best_params" in payload["metadata"] and payload["metadata"]["algorithm"] == "gradient_boosting"
    assert payload["metrics"]["roc_auc"] > 0.7


@pytest.mark.parametrize(
    ("body_changes", "field"),
    [
        ({"algorithm": "linear_regression"}, "algorithm"),
        ({"algorithm": "deep_magic"}, "algorithm"),
        ({"model_type": "churn"}, "model_type"),
        ({"training_config": {"preprocessing": {"scaling": "cubic"}}}, "preprocessing.scaling"),
        ({"training_config": {"cv_folds": 1}}, "training_config.cv_folds"),
        ({"training_config": {"param_grid": {"n_trees": [3]}}}, "param_grid"),
        ({"model_name": "../../etc"}, "model_name"),
        ({"training_config": {"colour": "blue"}}, "training_config.colour"),
        ({"training_config": {"feature_engineering": {"log_transform": "often"}}}, "feature_engineering.log_transform"),
        ({"training_config": {"feature_engineering": {"polynomials": True}}}, "feature_engineering.polynomials"),
        ({"training_config": {"time_budget_s": 0}}, "training_config.time_budget_s"),
        ({"training_config": {"min_improvement": -1}}, "training_config.min_improvement"),
        ({"training_config": {"allow_columns": "duration"}}, "training_config.allow_columns"),
    ],
)
def test_train_rejects_bad_requests_with_a_named_field(
    db: None, api: APIClient, lead_rows: list[dict[str, Any]], body_changes: dict[str, Any], field: str
) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    body = {"model_type": "lead_conversion", "algorithm": "random_forest", "model_name": "m", "user_id": TENANT}
    response = api.post("/train", {**body, **body_changes}, format="json")
    assert response.status_code == 400
    payload = response.json()
    assert payload["success"] is False and field in payload["details"]
    assert not TrainingJob.objects.exists()


def test_train_without_data_is_a_clear_400(db: None, api: APIClient) -> None:
    body = {"model_type": "customer_lifetime_value", "algorithm": "random_forest", "model_name": "m", "user_id": TENANT}
    response = api.post("/train", body, format="json")
    assert response.status_code == 400
    assert "POST /datasets" in response.json()["error"]


def test_a_new_version_is_promoted_only_when_it_beats_the_active_one(
    db: None, api: APIClient, lead_rows: list[dict[str, Any]]
) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    first = train_inline(TENANT, "lead_conversion", "gradient_boosting", "leads")
    assert first.model_version.status == "active"
    assert first.model_version.training_report["promotion"]["reason"] == "no active model of this type"

    # The same training again cannot beat itself by +0.002 ROC-AUC: it stays a candidate.
    again = train_inline(TENANT, "lead_conversion", "gradient_boosting", "leads")
    promotion = again.model_version.training_report["promotion"]
    assert again.model_version.status == "candidate"
    assert promotion["promote"] is False and promotion["champion_version"] == 1
    assert promotion["champion_score"] == pytest.approx(promotion["challenger_score"], abs=1e-9)

    # Make a one-column model the champion; a full model then beats it and takes over.
    ModelVersion.objects.filter(pk=first.model_version.pk).update(status="candidate")
    weak = train_inline(TENANT, "lead_conversion", "logistic_regression", "weak", {"features": ["industry"]})
    assert weak.model_version.status == "active"  # no active model at that moment
    strong = train_inline(TENANT, "lead_conversion", "gradient_boosting", "leads")
    decision = strong.model_version.training_report["promotion"]
    assert decision["promote"] is True, decision
    assert decision["challenger_score"] >= decision["champion_score"] + 0.002
    assert ModelVersion.objects.get(pk=strong.model_version.pk).status == "active"
    assert ModelVersion.objects.get(pk=weak.model_version.pk).status == "candidate"
    listing = api.get(f"/models/{TENANT}").json()
    history = listing["promotion_history"]["lead_conversion"]
    assert history[0]["reason"].startswith("automatic promotion: beats the active model")
    assert history[0]["from_model_name"] == "weak" and history[0]["to_model_name"] == "leads"
    assert history[0]["to_version"] == strong.model_version.version and history[0]["actor"] == "test"
    entry = next(m for m in listing["models"] if m["id"] == strong.model_version.pk)
    assert entry["metadata"]["promotion"]["promote"] is True


def test_min_improvement_is_configurable(db: None, lead_rows: list[dict[str, Any]]) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    weak = train_inline(TENANT, "lead_conversion", "logistic_regression", "weak", {"features": ["industry"]})
    assert weak.model_version.status == "active"
    strong = train_inline(TENANT, "lead_conversion", "gradient_boosting", "strong", {"min_improvement": 0.9})
    assert strong.model_version.status == "candidate"
    assert "needed +0.9" in strong.model_version.training_report["promotion"]["reason"]
