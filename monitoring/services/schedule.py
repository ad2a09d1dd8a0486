"""The django-q2 schedule that evaluates every tenant's retraining triggers."""
from __future__ import annotations

from django.conf import settings
from django.db.utils import OperationalError, ProgrammingError
from django_q.models import Schedule

SCHEDULE_NAME = "leadml: evaluate retraining triggers"
SCHEDULE_FUNC = "monitoring.tasks.triggers_evaluate_all_task"


def monitoring_schedule_ensure(*, using: str = "default") -> Schedule | None:
    """Create or update the one schedule (idempotent: run by every migrate and `serve`)."""
    try:
        schedule, _ = Schedule.objects.using(using).update_or_create(
            name=SCHEDULE_NAME,
            defaults={
                "func": SCHEDULE_FUNC,
                "schedule_type": Schedule.MINUTES,
                "minutes": settings.LEADML_MONITORING_INTERVAL_MINUTES,
                "repeats": -1,
            },
        )
    except (OperationalError, ProgrammingError):  # django-q2's tables not migrated yet
        return None
    return schedule


SOURCE_SYNC_SCHEDULE_NAME = "leadml: sync outcomes from data sources"
SOURCE_SYNC_SCHEDULE_FUNC = "monitoring.tasks.source_sync_task"


def source_sync_schedule_ensure(*, using: str = "default") -> Schedule | None:
    """The outcome sync's schedule, every LEADML_SOURCE_SYNC_MINUTES (idempotent, as above)."""
    try:
        schedule, _ = Schedule.objects.using(using).update_or_create(
            name=SOURCE_SYNC_SCHEDULE_NAME,
            defaults={
                "func": SOURCE_SYNC_SCHEDULE_FUNC,
                "schedule_type": Schedule.MINUTES,
                "minutes": settings.LEADML_SOURCE_SYNC_MINUTES,
                "repeats": -1,
            },
        )
    except (OperationalError, ProgrammingError):  # django-q2's tables not migrated yet
        return None
    return schedule
