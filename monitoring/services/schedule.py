"""The django-q2 schedules of monitoring: retraining triggers and the data sources' outcome sync."""
from __future__ import annotations

from django.conf import settings
from django_q.models import Schedule

from training.services.schedule import schedule_ensure

SCHEDULE_NAME = "leadml: evaluate retraining triggers"
SCHEDULE_FUNC = "monitoring.tasks.triggers_evaluate_all_task"
SOURCE_SYNC_SCHEDULE_NAME = "leadml: sync outcomes from data sources"
SOURCE_SYNC_SCHEDULE_FUNC = "monitoring.tasks.source_sync_task"


def monitoring_schedule_ensure(*, using: str = "default") -> Schedule | None:
    """The triggers' schedule, every LEADML_MONITORING_INTERVAL_MINUTES."""
    return schedule_ensure(
        name=SCHEDULE_NAME, func=SCHEDULE_FUNC, minutes=settings.LEADML_MONITORING_INTERVAL_MINUTES, using=using
    )


def source_sync_schedule_ensure(*, using: str = "default") -> Schedule | None:
    """The outcome sync's schedule, every LEADML_SOURCE_SYNC_MINUTES."""
    return schedule_ensure(
        name=SOURCE_SYNC_SCHEDULE_NAME,
        func=SOURCE_SYNC_SCHEDULE_FUNC,
        minutes=settings.LEADML_SOURCE_SYNC_MINUTES,
        using=using,
    )
