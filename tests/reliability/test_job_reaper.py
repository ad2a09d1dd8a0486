"""The job reaper: jobs whose worker is gone are queued again once, then ended; live ones are left alone.

In-process: rows are set up as a dead worker leaves them (a stale heartbeat, a partial
artifact file) and the reaper, a late worker, a re-delivery or a cancel act on them.
Tasks run inline (`sync`), so a job queued again here trains at once. The kill -9 of
real worker processes is in test_killed_workers.py.
"""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone
from django_q.exceptions import TimeoutException
from django_q.models import Schedule
from rest_framework.test import APIClient

from monitoring.models import MonitoringEvent
from registry.models import ModelVersion
from tests.conftest import TENANT
from tests.factories import dataset_with_rows, running_job, training_job
from training.models import TrainingJob
from training.services import queue as queue_services
from training.services import reaper as reaper_services
from training.services import run as job_services
from training.config import job_config_parse
from training.services.jobs import training_job_create
from training.services.reaper import training_jobs_reap
from training.services.run import training_job_run
from training.services.schedule import SCHEDULE_FUNC, SCHEDULE_NAME, job_reaper_schedule_ensure
from training.tasks import training_jobs_reap_task

STALE = 120  # LEADML_JOB_STALE_SECONDS as these tests set it


@pytest.fixture(autouse=True)
def _reaper_settings(settings: Any) -> None:
    settings.LEADML_JOB_STALE_SECONDS = STALE
    settings.LEADML_JOB_MAX_ATTEMPTS = 2


def _running(name: str, *, silent_seconds: float, attempts: int = 1, **fields: Any) -> TrainingJob:
    """A job as a worker leaves it: running, last beat `silent_seconds` ago."""
    return running_job(TENANT, model_name=name, silent_seconds=silent_seconds, attempts=attempts, **fields)


def _partial_artifact(name: str) -> str:
    """A half-written artifact file, as a worker killed while writing it leaves it."""
    return storages["models"].save(f"{TENANT}/lead_conversion/{name}-0123456789abcdef.joblib", ContentFile(b"\x80\x05half"))


def test_a_job_with_a_fresh_heartbeat_is_never_touched(db: None) -> None:
    live = _running("live", silent_seconds=STALE - 30, artifact_path=_partial_artifact("live"))
    waiting = training_job(TENANT, model_name="waiting", enqueued_at=timezone.now() - timedelta(hours=1))

    assert training_jobs_reap() == []
    training_jobs_reap_task()  # what the schedule runs

    live.refresh_from_db()
    waiting.refresh_from_db()
    assert (live.status, live.attempts, live.error) == ("running", 1, "")
    assert storages["models"].exists(live.artifact_path)
    # Queued behind a job that is alive: waiting its turn, not lost.
    assert (waiting.status, waiting.attempts) == ("queued", 0)


def test_a_lost_retrain_is_failed_with_the_reason_its_partial_artifact_removed_and_its_slot_freed(
    db: None, lead_model: ModelVersion, settings: Any
) -> None:
    settings.LEADML_JOB_MAX_ATTEMPTS = 1
    versions = ModelVersion.objects.count()
    partial = _partial_artifact("leads_lr")
    lost = _running("leads_lr", silent_seconds=STALE + 30, retrain_of=lead_model, artifact_path=partial)

    reaped = training_jobs_reap()

    lost.refresh_from_db()
    assert [(item.job_id, item.action) for item in reaped] == [(str(lost.pk), "failed")]
    assert lost.status == "failed" and lost.finished_at is not None
    assert lost.error.startswith("worker lost: no heartbeat for 15") and "(attempt 1 of 1)" in lost.error, lost.error
    assert lost.log[-1]["step"] == "failed" and lost.log[-1]["error"] == lost.error
    assert not storages["models"].exists(partial) and lost.artifact_path == ""
    assert ModelVersion.objects.count() == versions
    assert storages["models"].exists(lead_model.artifact_path)  # a registered version keeps its file
    finished = MonitoringEvent.objects.get(kind=MonitoringEvent.Kind.RETRAIN_FINISHED)
    assert "worker lost" in finished.message
    # The model's one retrain slot is free again.
    again = training_job_create(
        tenant=TENANT, model_type="lead_conversion", algorithm="logistic_regression", model_name="leads_lr",
        training_config=job_config_parse({"cv_folds": 3}), requested_by="test", retrain_of=lead_model,
    )
    assert again.status == "queued"


def test_a_lost_job_is_queued_again_once_and_then_trains(db: None, lead_rows: list[dict[str, Any]]) -> None:
    dataset_with_rows(TENANT, "lead_conversion", lead_rows)
    partial = _partial_artifact("retried")
    lost = _running("retried", silent_seconds=STALE + 1, artifact_path=partial)

    reaped = training_jobs_reap()

    lost.refresh_from_db()
    assert [item.action for item in reaped] == ["requeued"]
    assert "worker lost: no heartbeat for 12" in reaped[0].reason and "attempt 2 of 2" in reaped[0].reason
    # Queued again and (tasks run inline here) trained by the next delivery.
    assert lost.status == "succeeded" and lost.attempts == 2 and lost.error == ""
    steps = [entry["step"] for entry in lost.log]
    assert steps[0] == "requeued" and "worker lost" in lost.log[0]["error"] and steps[-1] == "succeeded"
    assert ModelVersion.objects.filter(name="retried").count() == 1
    assert not storages["models"].exists(partial)
    assert storages["models"].exists(lost.model_version.artifact_path)


def test_a_job_lost_on_its_last_attempt_is_failed(db: None) -> None:
    lost = _running("twice", silent_seconds=STALE * 3, attempts=2)

    assert [item.action for item in training_jobs_reap()] == ["failed"]

    lost.refresh_from_db()
    assert lost.status == "failed" and "(attempt 2 of 2)" in lost.error


def test_a_lost_job_someone_asked_to_cancel_is_cancelled_not_retried(db: None) -> None:
    lost = _running("stop", silent_seconds=STALE + 10, cancel_requested=True)

    assert [item.action for item in training_jobs_reap()] == ["cancelled"]

    lost.refresh_from_db()
    assert lost.status == "cancelled" and lost.error.startswith("cancelled on request; worker lost")


def test_cancel_of_a_running_job_whose_worker_is_gone_ends_it_at_once(db: None, api: APIClient) -> None:
    partial = _partial_artifact("gone")
    gone = _running("gone", silent_seconds=STALE + 5, artifact_path=partial)
    live = _running("alive", silent_seconds=2)

    response = api.post(f"/jobs/{gone.pk}/cancel")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "cancelled" and "worker lost: no heartbeat" in body["error"]
    assert not storages["models"].exists(partial)
    # A live worker is only asked: it stops at its next step.
    response = api.post(f"/jobs/{live.pk}/cancel")
    live.refresh_from_db()
    assert response.status_code == 200 and live.status == "running" and live.cancel_requested


def test_a_queued_job_no_worker_took_is_handed_out_again_then_failed(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(queue_services, "async_task", lambda func, job_id, **options: sent.append(job_id))
    lost = training_job(TENANT, model_name="forgotten", enqueued_at=timezone.now() - timedelta(seconds=STALE + 60))

    first = training_jobs_reap()

    lost.refresh_from_db()
    assert [item.action for item in first] == ["requeued"] and sent == [str(lost.pk)]
    assert lost.status == "queued" and lost.attempts == 1  # the lost delivery counts
    assert "no worker took it" in first[0].reason
    assert training_jobs_reap() == []  # just handed out: its time starts again

    TrainingJob.objects.filter(pk=lost.pk).update(enqueued_at=timezone.now() - timedelta(seconds=STALE + 1))
    second = training_jobs_reap()

    lost.refresh_from_db()
    assert [item.action for item in second] == ["failed"] and len(sent) == 1
    assert lost.status == "failed" and lost.error.startswith("worker lost: queued for 12")


def test_a_late_worker_cannot_register_a_job_the_reaper_took_over(
    db: None, lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """The worker was only slow: as it starts writing its artifact, the reaper fails its job."""
    settings.LEADML_JOB_MAX_ATTEMPTS = 1
    dataset_with_rows(TENANT, "lead_conversion", lead_rows)
    written: list[str] = []
    original_register = job_services.model_version_register

    def register_after_the_reaper(**kwargs: Any) -> ModelVersion:
        record_artifact = kwargs["on_artifact_path"]

        def reaped_meanwhile(path: str) -> None:
            record_artifact(path)
            written.append(path)
            TrainingJob.objects.filter(model_name="late").update(heartbeat_at=timezone.now() - timedelta(hours=1))
            assert [item.action for item in training_jobs_reap()] == ["failed"]

        return original_register(**{**kwargs, "on_artifact_path": reaped_meanwhile})

    monkeypatch.setattr(job_services, "model_version_register", register_after_the_reaper)
    job = training_job(TENANT, model_name="late")

    training_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == "failed" and job.error.startswith("worker lost"), job.error
    assert not ModelVersion.objects.filter(name="late").exists()
    # The late worker wrote its file and then found the job was not its own any more.
    assert written and not storages["models"].exists(written[0])
    assert job.log[-1]["step"] == "failed"


def test_a_worker_that_beats_before_the_reaper_acts_keeps_its_job(db: None) -> None:
    job = _running("just-in-time", silent_seconds=STALE + 1)
    read_by_the_reaper = TrainingJob.objects.get(pk=job.pk)
    TrainingJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())  # the worker's beat

    assert reaper_services._reap_running(read_by_the_reaper, now=timezone.now(), enqueue=True) is None

    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == ("running", 1, "")


def test_a_worker_presumed_dead_stops_at_its_next_step_when_its_job_was_claimed_again(
    db: None, lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_with_rows(TENANT, "lead_conversion", lead_rows)
    job = _running("claimed", silent_seconds=STALE + 1)
    old_run = job_services._JobProgress(job.pk, attempt=1)

    training_job_run(job_id=job.pk)  # a re-delivery takes the job over and trains it

    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 2
    with pytest.raises(job_services.JobCancelled):
        old_run("evaluate", 80)
    assert not job_services._finish(job.pk, "failed", old_run, error="the old run's crash")
    job.refresh_from_db()
    assert job.status == "succeeded" and job.error == ""


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_goes_on_during_a_step_that_reports_nothing(
    lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """A long fit (a final refit, calibration) reports no progress: the worker's own thread beats."""
    settings.LEADML_JOB_HEARTBEAT_SECONDS = 0.1
    dataset_with_rows(TENANT, "lead_conversion", lead_rows)
    seen: list[Any] = []
    real_train = job_services.train_model

    def long_silent_fit(*args: Any, **kwargs: Any) -> Any:
        claimed = TrainingJob.objects.get(model_name="beating").heartbeat_at
        time.sleep(1.0)
        seen.append(TrainingJob.objects.get(model_name="beating").heartbeat_at - claimed)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(job_services, "train_model", long_silent_fit)
    job = training_job(TENANT, model_name="beating")

    training_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert seen and seen[0] >= timedelta(seconds=0.5), seen


def test_a_job_past_its_time_limit_is_failed_before_the_worker_is_replaced(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def too_long(job: TrainingJob, progress: Any) -> Any:
        raise TimeoutException("Task exceeded maximum timeout value")

    monkeypatch.setattr(job_services, "_train", too_long)
    job = training_job(TENANT, model_name="slow")

    with pytest.raises(TimeoutException):
        training_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == "failed" and job.error.startswith("timed out after")


def test_the_reaper_schedule_is_created_once_with_the_configured_interval(db: None, settings: Any) -> None:
    settings.LEADML_JOB_REAPER_INTERVAL_MINUTES = 3

    job_reaper_schedule_ensure()
    job_reaper_schedule_ensure()

    schedule = Schedule.objects.get(func=SCHEDULE_FUNC)
    assert (schedule.name, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        SCHEDULE_NAME, Schedule.MINUTES, 3, -1
    )
