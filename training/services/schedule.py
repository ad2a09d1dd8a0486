"""The django-q2 schedule that looks for training jobs lost with their worker."""
from __future__ import annotations

from django.conf import settings
from django.db.utils import OperationalError, ProgrammingError
from django_q.models import Schedule

SCHEDULE_NAME = "leadml: reap lost training jobs"
SCHEDULE_FUNC = "training.tasks.training_jobs_reap_task"


def job_reaper_schedule_ensure(*, using: str = "default") -> Schedule | None:
    """Create or update the one schedule (idempotent: run by every migrate and `serve`)."""
    try:
        schedule, _ = Schedule.objects.using(using).update_or_create(
            name=SCHEDULE_NAME,
            defaults={
                "func": SCHEDULE_FUNC,
                "schedule_type": Schedule.MINUTES,
                "minutes": settings.LEADML_JOB_REAPER_INTERVAL_MINUTES,
                "repeats": -1,
            },
        )
    except (OperationalError, ProgrammingError):  # django-q2's tables not migrated yet
        return None
    return schedule
