"""The job queue's broker is down: requests say 503 with Retry-After, nothing stays queued, nothing crashes.

In-process, django-q2 is pointed at a Redis on a closed port (tests/reliability/brokers.py);
the last test runs `serve` itself with REDIS_URL on a closed port.
"""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import Schedule
from rest_framework.test import APIClient

from demo.data import generate_leads
from monitoring.models import MonitoringEvent, TenantWebhook, TriggerSettings
from monitoring.tasks import triggers_evaluate_all_task
from registry.models import ModelVersion
from tests.conftest import TENANT
from tests.factories import dataset_with_rows, running_job, tenant_client, trained_model
from tests.reliability.brokers import broker_down, closed_port
from tests.reliability.processes import Service, count_rows, http_request, manage, service_env, wait_for
from tests.reliability.test_serve_command import _answers_http, _free_port, _request
from training.models import TrainingJob
from training.services.reaper import training_jobs_reap

TRAIN = {"model_type": "lead_conversion", "algorithm": "logistic_regression", "model_name": "m", "user_id": TENANT}


@pytest.fixture
def api_outside_transactions(transactional_db: None) -> APIClient:
    # Outside a test transaction: the job row commits, so its enqueue (and the failure) happens in the request.
    return tenant_client(TENANT)


def _assert_503(response: Any) -> dict[str, Any]:
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "30"
    body = response.json()
    assert body["success"] is False and body["error"] == body["detail"] and "job queue" in body["error"]
    assert body["details"] == {"job_queue": ["unavailable"]}
    return body


def test_train_answers_503_with_retry_after_and_leaves_no_job(
    api_outside_transactions: APIClient, lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_with_rows(TENANT, "lead_conversion", lead_rows)
    broker_down(monkeypatch)

    _assert_503(api_outside_transactions.post("/train", TRAIN, format="json"))
    _assert_503(api_outside_transactions.post("/train?async=true", TRAIN, format="json"))

    assert not TrainingJob.objects.exists()


def test_retrain_answers_503_and_queues_nothing(
    api_outside_transactions: APIClient, lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    version = trained_model(TENANT, "lead_conversion", lead_rows)
    broker_down(monkeypatch)

    _assert_503(api_outside_transactions.post(f"/models/{TENANT}/leads_lr/retrain", {}, format="json"))

    assert not TrainingJob.objects.filter(retrain_of=version).exists()
    assert not MonitoringEvent.objects.filter(kind=MonitoringEvent.Kind.RETRAIN_QUEUED).exists()


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_trigger_evaluation_survives_the_broker_being_down(
    lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.LEADML_WEBHOOK_ALLOW_PRIVATE = True
    version = trained_model(TENANT, "lead_conversion", lead_rows)
    # max_age fires; the tenant's webhook wants every event.
    TriggerSettings.objects.create(tenant=TENANT, model_type="lead_conversion", max_age_days=1)
    ModelVersion.objects.filter(pk=version.pk).update(created_at=timezone.now() - timedelta(days=3))
    TenantWebhook.objects.create(tenant=TENANT, url="http://127.0.0.1:9/hook", secret="s" * 20)
    broker_down(monkeypatch)

    triggers_evaluate_all_task()  # must not raise

    assert not TrainingJob.objects.filter(retrain_of__isnull=False).exists()
    fired = MonitoringEvent.objects.get(kind=MonitoringEvent.Kind.TRIGGER_FIRED)
    assert fired.webhook_status == "pending"
    # The delivery waits in the database for the worker's scheduler instead of the broker.
    assert Schedule.objects.filter(name=f"webhook-{fired.pk}-1", func="monitoring.tasks.webhook_deliver_task").exists()
    # The next evaluation tries again: no cooldown started, no retrain recorded as queued.
    assert not MonitoringEvent.objects.filter(kind=MonitoringEvent.Kind.RETRAIN_QUEUED).exists()


@pytest.mark.django_db(transaction=True)
def test_the_reaper_keeps_a_lost_job_queued_when_it_cannot_hand_it_out(monkeypatch: pytest.MonkeyPatch) -> None:
    lost = running_job(TENANT, model_name="lost", silent_seconds=3600)
    broker_down(monkeypatch)

    assert [item.action for item in training_jobs_reap()] == ["requeued"]

    lost.refresh_from_db()
    assert lost.status == "queued"  # a later pass hands it out, or fails it when its attempts are used


def test_serve_answers_predictions_and_503_for_training_while_its_redis_is_down(tmp_path: Path) -> None:
    """The whole service with REDIS_URL on a closed port: the API stays up, the worker is retried."""
    env = service_env(tmp_path, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")
    database = tmp_path / "leadml.sqlite3"
    key = manage("create_api_token", "--service", env=env).strip()
    port = _free_port()
    serve = Service(["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        wait_for("serve to answer HTTP", lambda: _answers_http(port), timeout=60, explain=serve.log)
        status, health = _request(port, "GET", "/health")
        # Degraded, not unhealthy: the process still scores, so load balancers keep it.
        assert status == 200 and health["status"] == "degraded", health
        assert health["services"]["job_queue"] == "unavailable", health
        rows = json.loads(generate_leads(200, seed=4).to_json(orient="records"))
        status, body = _request(port, "POST", "/datasets", {
            "user_id": TENANT, "model_type": "lead_conversion", "name": "crm", "target": "status",
            "positive_values": ["customer", "won"], "rows": rows,
        }, key)
        assert status == 201, body

        status, headers, body = http_request(port, "POST", "/train", TRAIN, key)

        assert status == 503 and body["details"] == {"job_queue": ["unavailable"]}, body
        assert headers["Retry-After"] == "30"
        assert count_rows(database, "training_trainingjob") == 0
        status, body = _request(port, "POST", "/predict", {
            "model_type": "lead_conversion", "user_id": TENANT, "data": {"email": "a@acme.com"},
        }, key)
        assert status == 200 and body["source"] == "rules", body
        # qcluster gives up on its broker and exits; serve says why and starts it again.
        wait_for("a qcluster restart", lambda: "qcluster restarted" in serve.log(), timeout=60, explain=serve.log)
        assert "qcluster exited unexpectedly (exit code 1)" in serve.log()
        assert serve.process.poll() is None
        assert _request(port, "GET", "/health")[0] == 200  # still answering
    finally:
        serve.kill_all()
