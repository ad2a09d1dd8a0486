"""django-q2 schedules: one helper for every periodic task, and the job reaper's schedule."""
from __future__ import annotations

from django.conf import settings
from django.db.utils import OperationalError, ProgrammingError
from django_q.models import Schedule

SCHEDULE_NAME = "leadml: reap lost training jobs"
SCHEDULE_FUNC = "training.tasks.training_jobs_reap_task"


def schedule_ensure(*, name: str, func: str, minutes: int, using: str = "default") -> Schedule | None:
    """Create or update the schedule called `name` (idempotent: run by every migrate and `serve`)."""
    try:
        schedule, _ = Schedule.objects.using(using).update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )
    except (OperationalError, ProgrammingError):  # django-q2's tables not migrated yet
        return None
    return schedule


def job_reaper_schedule_ensure(*, using: str = "default") -> Schedule | None:
    return schedule_ensure(
        name=SCHEDULE_NAME, func=SCHEDULE_FUNC, minutes=settings.LEADML_JOB_REAPER_INTERVAL_MINUTES, using=using
    )
