"""The reaper: jobs whose worker is gone (no heartbeat for LEADML_JOB_STALE_SECONDS) are queued again or ended."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models.functions import Coalesce
from django.utils import timezone

from registry.services import model_artifact_discard
from training.services.queue import JobQueueUnavailableError, training_job_announce, training_job_enqueue
from training.models import TrainingJob

logger = logging.getLogger(__name__)
Status = TrainingJob.Status



@dataclass(frozen=True)
class ReapedJob:
    """What the reaper did to one job whose worker was gone."""

    job_id: str
    action: str  # requeued | failed | cancelled
    reason: str



def _stale_cutoff(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.LEADML_JOB_STALE_SECONDS)



def _last_sign_of_life(job: TrainingJob) -> datetime:
    return job.heartbeat_at or job.started_at or job.created_at



def training_jobs_reap(*, now: datetime | None = None) -> list[ReapedJob]:
    """Find the jobs whose worker is gone; queue each again while attempts remain, else end it.

    A running job is lost when its heartbeat is older than LEADML_JOB_STALE_SECONDS; it
    is cancelled if a cancel was asked for, queued again if it has used fewer than
    LEADML_JOB_MAX_ATTEMPTS deliveries, failed otherwise, and any artifact file it was
    writing is removed. A queued job is lost when no worker took its task that long
    while no job is running: a busy worker is not a lost one, and an idle one takes a
    task within a second (Redis forgets a task whose worker died; the ORM broker hands
    it out again only after Q_CLUSTER's retry). Run by the job worker's schedule and by
    `serve` before it starts the worker.
    """
    now = now or timezone.now()
    cutoff = _stale_cutoff(now)
    reaped: list[ReapedJob] = []
    running = TrainingJob.objects.filter(status=Status.RUNNING)
    lost: list[TrainingJob] = list(running.alias(seen=Coalesce("heartbeat_at", "started_at", "created_at")).filter(seen__lt=cutoff))
    if not running.filter(heartbeat_at__gte=cutoff).exists():
        queued = TrainingJob.objects.filter(status=Status.QUEUED).alias(since=Coalesce("enqueued_at", "created_at"))
        lost += list(queued.filter(since__lt=cutoff).order_by("created_at"))
    for job in lost:
        try:
            if job.status == Status.RUNNING:
                outcome = _reap_running(job, now=now, enqueue=True)
            else:
                outcome = _reap_queued(job, now=now)
        except Exception:  # one job's trouble must not keep the others lost
            logger.exception("training_job_reap_failed id=%s", job.pk)
            continue
        if outcome is not None:
            logger.warning("training_job_reaped id=%s action=%s reason=%s", outcome.job_id, outcome.action, outcome.reason)
            reaped.append(outcome)
    return reaped



def _reap_running(job: TrainingJob, *, now: datetime, enqueue: bool, cancel: bool = False) -> ReapedJob | None:
    """Take a running job over from its lost worker: cancel, queue again or fail it.

    Applies only to the row as read (status, attempts and heartbeat unchanged), so a
    worker that beat in between keeps its job; once this applied, that worker's next
    write (a beat, progress, its registration) matches nothing.
    """
    most = settings.LEADML_JOB_MAX_ATTEMPTS
    reason = f"worker lost: no heartbeat for {int((now - _last_sign_of_life(job)).total_seconds())} s"
    changes: dict[str, Any] = {"artifact_path": ""}
    if cancel or job.cancel_requested:
        action, error = "cancelled", f"cancelled on request; {reason}"
        changes |= {"status": Status.CANCELLED, "finished_at": now}
    elif job.attempts < most:
        action, error = "requeued", ""
        reason = f"{reason}; queued again (attempt {job.attempts + 1} of {most})"
        changes |= {"status": Status.QUEUED, "enqueued_at": now, "progress_step": "requeued", "progress_percent": 0}
    else:
        action, error = "failed", f"{reason} (attempt {job.attempts} of {most})"
        changes |= {"status": Status.FAILED, "finished_at": now}
    changes |= {"error": error, "log": [*job.log, {"at": now.isoformat(), "step": action, "percent": None, "error": error or reason}]}
    applied = TrainingJob.objects.filter(
        pk=job.pk, status=Status.RUNNING, attempts=job.attempts, heartbeat_at=job.heartbeat_at
    ).update(**changes)
    if not applied:
        return None
    # No version can be registered with it any more: the worker's registration is
    # conditional on the row it just lost.
    model_artifact_discard(path=job.artifact_path)
    if action == "requeued":
        if enqueue:
            _enqueue_quietly(job_id=str(job.pk))
    else:
        training_job_announce(job.pk)
    return ReapedJob(str(job.pk), action, error or reason)



def _reap_queued(job: TrainingJob, *, now: datetime) -> ReapedJob | None:
    """Hand a queued job's lost task out again (the lost delivery counts as an attempt), or fail it."""
    most = settings.LEADML_JOB_MAX_ATTEMPTS
    used = job.attempts + 1
    waited = int((now - (job.enqueued_at or job.created_at)).total_seconds())
    reason = f"worker lost: queued for {waited} s and no worker took it"
    if used < most:
        action, error = "requeued", ""
        reason = f"{reason}; queued again (attempt {used + 1} of {most})"
        changes: dict[str, Any] = {"enqueued_at": now}
    else:
        action, error = "failed", f"{reason} (attempt {used} of {most})"
        changes = {"status": Status.FAILED, "finished_at": now, "error": error}
    changes |= {"attempts": used, "log": [*job.log, {"at": now.isoformat(), "step": action, "percent": None, "error": error or reason}]}
    applied = TrainingJob.objects.filter(
        pk=job.pk, status=Status.QUEUED, attempts=job.attempts, enqueued_at=job.enqueued_at
    ).update(**changes)
    if not applied:
        return None
    if action == "requeued":
        _enqueue_quietly(job_id=str(job.pk))
    else:
        training_job_announce(job.pk)
    return ReapedJob(str(job.pk), action, error or reason)



def _enqueue_quietly(*, job_id: str) -> None:
    # The broker being down is no reason to stop reaping: the job stays queued and a
    # later pass hands it out again (or fails it once its attempts are used).
    try:
        training_job_enqueue(job_id=job_id)
    except JobQueueUnavailableError:
        pass
