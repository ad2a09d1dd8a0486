"""The job queue as the training app uses it: enqueue a job's task, refuse clearly when the broker is down, announce a finished job."""
from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from django_q.tasks import async_task
from redis.exceptions import RedisError

from leadml.api.errors import ServiceUnavailableError
from training.models import TrainingJob
from training.signals import job_finished

logger = logging.getLogger(__name__)
Status = TrainingJob.Status


# What a client is told to wait when the job queue is down: about a broker restart.
QUEUE_RETRY_AFTER_SECONDS = 30


# The broker could not take the task: Redis unreachable or timing out, or the ORM
# broker's database refusing the write (locked, gone). Anything else is a bug.
BROKER_ERRORS = (RedisError, DatabaseError, OSError)


class JobQueueUnavailableError(ServiceUnavailableError):
    def __init__(self) -> None:
        super().__init__(
            "The job queue cannot be reached; nothing was queued. Retry later.",
            retry_after_seconds=QUEUE_RETRY_AFTER_SECONDS,
            details={"job_queue": ["unavailable"]},
        )


def training_job_enqueue(*, job_id: str) -> None:
    """Hand the job's task to the broker; JobQueueUnavailableError when it cannot take it."""
    # Before the task: with `sync` (tests) the task runs inside async_task.
    TrainingJob.objects.filter(pk=job_id, status=Status.QUEUED).update(enqueued_at=timezone.now())
    try:
        async_task(
            "training.tasks.training_job_run_task",
            job_id,
            task_name=f"train-{job_id}",
            timeout=settings.LEADML_JOB_TIMEOUT_SECONDS,
        )
    except BROKER_ERRORS as error:
        logger.error("training_job_enqueue_failed id=%s error=%s: %s", job_id, type(error).__name__, error)
        raise JobQueueUnavailableError() from error


def training_job_announce(job_id: Any) -> None:
    """Tell the other apps the job ended (training.signals.job_finished), with its row as stored."""
    job_finished.send(sender=TrainingJob, job=TrainingJob.objects.select_related("model_version").get(pk=job_id))
