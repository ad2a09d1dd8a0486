"""Retraining: the command, one retrain in flight, cooldown, the API, `monitor`, the schedule."""
from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import Schedule
from rest_framework.test import APIClient

from monitoring.models import MonitoringEvent, TriggerSettings
from monitoring.services.retrain import retrain_evaluate
from monitoring.services.schedule import (
    SCHEDULE_FUNC,
    SCHEDULE_NAME,
    monitoring_schedule_ensure,
)
from monitoring.tasks import triggers_evaluate_all_task
from registry.models import ModelVersion
from tests.conftest import OTHER_TENANT, TENANT
from tests.monitoring.conftest import (
    CLV,
    LEAD,
    lead_features,
    monitoring,
    score,
    triggers_of,
)
from training.models import TrainingJob


def _make_old(version: ModelVersion) -> None:
    """Make the max_age trigger fire for the version (over a one-day limit)."""
    TriggerSettings.objects.update_or_create(tenant=version.tenant, model_type=version.model_type, defaults={"max_age_days": 1})
    ModelVersion.objects.filter(pk=version.pk).update(created_at=timezone.now() - timedelta(days=3))
    version.refresh_from_db()


def _retrain(*args: str) -> str:
    out = io.StringIO()
    call_command("retrain", *args, stdout=out)
    return out.getvalue()


def _retrains() -> Any:
    return TrainingJob.objects.filter(retrain_of__isnull=False)


def _retrain_job(version: ModelVersion, status: str, **fields: Any) -> TrainingJob:
    return TrainingJob.objects.create(
        tenant=version.tenant, model_type=version.model_type, algorithm=version.algorithm, model_name=version.name,
        training_config=version.training_config, retrain_of=version, status=status, **fields,
    )


@pytest.mark.django_db
def test_retrain_dry_run_says_what_it_would_do_and_changes_nothing(lead_model: ModelVersion) -> None:
    _make_old(lead_model)
    jobs, events = TrainingJob.objects.count(), MonitoringEvent.objects.count()

    line = _retrain("--dry-run")

    assert "leads_lr v1" in line and "WOULD RETRAIN" in line and "max_age=" in line, line
    assert TrainingJob.objects.count() == jobs
    assert MonitoringEvent.objects.count() == events
    assert ModelVersion.objects.filter(tenant=TENANT).count() == 1


@pytest.mark.django_db
def test_retrain_queues_one_job_with_the_versions_own_algorithm_and_config(
    api: APIClient, lead_model: ModelVersion
) -> None:
    _make_old(lead_model)

    first = _retrain("--tenant", TENANT, "--model-type", LEAD)

    job = _retrains().get()
    assert f"RETRAIN queued job {job.id}" in first, first
    assert (job.retrain_of_id, job.status, job.model_name) == (lead_model.pk, "queued", lead_model.name)
    assert job.algorithm == lead_model.algorithm == "logistic_regression"
    assert job.training_config == lead_model.training_config
    assert job.retrain_reason.startswith("triggers: max_age") and job.requested_by == "manage.py retrain"
    fired = MonitoringEvent.objects.get(kind=MonitoringEvent.Kind.TRIGGER_FIRED)
    assert fired.values["name"] == "max_age" and fired.model_version_id == lead_model.pk
    queued = MonitoringEvent.objects.get(kind=MonitoringEvent.Kind.RETRAIN_QUEUED)
    assert queued.values["job_id"] == str(job.id) and queued.values["triggers"] == ["max_age"]
    # A retrain the triggers queued is not a manual request.
    assert triggers_of(monitoring(api))["manual"]["fired"] is False


@pytest.mark.django_db
def test_a_second_evaluation_while_the_retrain_is_queued_is_skipped(lead_model: ModelVersion) -> None:
    _make_old(lead_model)
    _retrain()

    second = _retrain()
    decision = retrain_evaluate(version=lead_model)

    assert "skipped" in second and "already queued" in second, second
    assert decision.action == "skipped" and decision.job is None
    assert _retrains().count() == 1
    # The trigger that fired again within the cooldown is not recorded twice.
    assert MonitoringEvent.objects.filter(kind=MonitoringEvent.Kind.TRIGGER_FIRED).count() == 1


@pytest.mark.django_db
def test_the_database_refuses_a_second_retrain_in_flight_for_a_model(lead_model: ModelVersion) -> None:
    _retrain_job(lead_model, TrainingJob.Status.QUEUED)

    for status in (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING):
        with pytest.raises(IntegrityError), transaction.atomic():
            _retrain_job(lead_model, status)

    # Finished retrains and ordinary training jobs of the same model are not limited.
    _retrain_job(lead_model, TrainingJob.Status.SUCCEEDED)
    TrainingJob.objects.create(
        tenant=TENANT, model_type=LEAD, algorithm="logistic_regression", model_name=lead_model.name
    )
    assert TrainingJob.objects.filter(model_name=lead_model.name).count() == 4


@pytest.mark.django_db
def test_an_evaluation_racing_past_the_in_flight_check_is_skipped_by_the_constraint(
    lead_model: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_old(lead_model)
    _retrain_job(lead_model, TrainingJob.Status.QUEUED)
    # As if another scheduler queued its retrain between this one's check and its insert.
    monkeypatch.setattr("monitoring.services.retrain._blocked", lambda version, force: None)

    decision = retrain_evaluate(version=lead_model)

    assert decision.action == "skipped" and "already queued or running" in decision.reason, decision.reason
    assert _retrains().count() == 1
    assert not MonitoringEvent.objects.filter(kind=MonitoringEvent.Kind.RETRAIN_QUEUED).exists()


@pytest.mark.django_db
def test_triggers_rest_for_the_cooldown_after_a_finished_retrain(lead_model: ModelVersion) -> None:
    _make_old(lead_model)
    finished = _retrain_job(lead_model, TrainingJob.Status.SUCCEEDED, finished_at=timezone.now() - timedelta(hours=1))

    resting = retrain_evaluate(version=lead_model)
    TrainingJob.objects.filter(pk=finished.pk).update(
        finished_at=timezone.now() - timedelta(hours=settings.LEADML_RETRAIN_COOLDOWN_HOURS + 1)
    )
    rested = retrain_evaluate(version=lead_model)

    assert resting.action == "skipped" and "triggers rest" in resting.reason, resting.reason
    assert rested.action == "queued" and rested.job is not None
    assert _retrains().filter(status=TrainingJob.Status.QUEUED).count() == 1


@pytest.mark.django_db
def test_force_retrains_when_no_trigger_fired(lead_model: ModelVersion) -> None:
    quiet = _retrain()
    assert "no retrain" in quiet and not _retrains().exists(), quiet

    forced = _retrain("--force")

    job = _retrains().get()
    assert "RETRAIN queued" in forced and "forced" in job.retrain_reason, forced
    assert job.retrain_of_id == lead_model.pk


@pytest.mark.django_db
def test_retrain_api_queues_a_job_and_refuses_a_second_while_queued(api: APIClient, lead_model: ModelVersion) -> None:
    url = f"/models/{TENANT}/{lead_model.name}/retrain"

    first = api.post(url, {"reason": "quarterly"}, format="json")
    second = api.post(url, {}, format="json")

    assert first.status_code == 202, first.json()
    body = first.json()
    job = _retrains().get()
    assert (body["job_id"], body["status"], body["retrain_of"]) == (str(job.id), "queued", 1)
    assert body["status_url"] == f"/jobs/{job.id}"
    assert job.retrain_reason == "manual: quarterly"
    assert second.status_code == 409 and str(job.id) in second.json()["error"]
    assert _retrains().count() == 1


@pytest.mark.django_db
def test_retrain_api_refuses_unknown_models_versions_and_other_tenants(
    api: APIClient, client_for: Any, other_tenant_key: str, lead_model: ModelVersion
) -> None:
    assert api.post(f"/models/{TENANT}/nope/retrain", {}, format="json").status_code == 404
    assert api.post(f"/models/{TENANT}/{lead_model.name}/retrain", {"version": 9}, format="json").status_code == 404
    other = client_for(other_tenant_key)
    assert other.post(f"/models/{TENANT}/{lead_model.name}/retrain", {}, format="json").status_code == 403
    assert other.post(f"/models/{OTHER_TENANT}/{lead_model.name}/retrain", {}, format="json").status_code == 404
    assert not _retrains().exists()


@pytest.mark.django_db
def test_a_retrain_requested_through_the_api_trains_a_new_version(
    api: APIClient, lead_model: ModelVersion, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # the job worker runs inline in tests
        response = api.post(f"/models/{TENANT}/{lead_model.name}/retrain", {}, format="json")

    assert response.status_code == 202
    job = _retrains().get()
    assert job.status == "succeeded", job.error
    assert (job.model_version.name, job.model_version.version) == (lead_model.name, 2)
    assert "promotion" in job.model_version.training_report
    kinds = set(MonitoringEvent.objects.filter(tenant=TENANT).values_list("kind", flat=True))
    assert {"retrain_queued", "retrain_finished"} <= kinds


@pytest.mark.django_db
def test_monitor_prints_a_header_and_one_row_per_active_model(
    api: APIClient, lead_model: ModelVersion, clv_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    score(api, lead_features(lead_rows[:7]))
    out = io.StringIO()

    call_command("monitor", stdout=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    header = re.split(r"\s{2,}", lines[0])
    assert header[:5] == ["tenant", "model_type", "model", "predictions", "outcomes"] and header[-1] == "fired"
    rows = {cells[1]: cells for cells in (re.split(r"\s{2,}", line) for line in lines[1:])}
    assert set(rows) == {LEAD, CLV}
    assert rows[LEAD][:4] == [TENANT, LEAD, "leads_lr v1", "7"]
    assert rows[CLV][:4] == [TENANT, CLV, "clv_lr v1", "0"]
    with pytest.raises(CommandError):
        call_command("monitor", "--tenant", "nobody", stdout=io.StringIO())


@pytest.mark.django_db
def test_the_trigger_schedule_is_created_once_with_the_configured_interval(settings: Any) -> None:
    settings.LEADML_MONITORING_INTERVAL_MINUTES = 15

    monitoring_schedule_ensure()
    monitoring_schedule_ensure()

    schedule = Schedule.objects.get(func=SCHEDULE_FUNC)
    assert schedule.func == "monitoring.tasks.triggers_evaluate_all_task"
    assert (schedule.name, schedule.schedule_type, schedule.minutes) == (SCHEDULE_NAME, Schedule.MINUTES, 15)
    assert schedule.repeats == -1


@pytest.mark.django_db
def test_the_scheduled_task_queues_at_most_one_retrain_per_model(lead_model: ModelVersion) -> None:
    _make_old(lead_model)

    triggers_evaluate_all_task()
    triggers_evaluate_all_task()

    assert _retrains().count() == 1
    assert _retrains().get().requested_by == "schedule"


@pytest.mark.django_db
def test_the_scheduled_task_does_not_retrain_again_after_a_finished_retrain(
    lead_model: ModelVersion, django_capture_on_commit_callbacks: Any
) -> None:
    _make_old(lead_model)

    with django_capture_on_commit_callbacks(execute=True):
        triggers_evaluate_all_task()
    with django_capture_on_commit_callbacks(execute=True):
        triggers_evaluate_all_task()

    job = _retrains().get()
    assert job.status == "succeeded", job.error
