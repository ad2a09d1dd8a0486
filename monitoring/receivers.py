"""Monitoring events from what other apps announce (registry.signals, training.signals); schedules after migrate.

The apps below monitoring send these signals explicitly from their services; a signal,
not a call, because the layers run one way (README, "Architecture"). The schedules are
ensured after `migrate` for the reason training/receivers.py gives.
"""
from __future__ import annotations

from typing import Any

from django.db.models.signals import post_migrate
from django.dispatch import receiver

from monitoring.models import MonitoringEvent
from monitoring.services.events import event_record
from monitoring.services.schedule import monitoring_schedule_ensure, source_sync_schedule_ensure
from registry.models import PromotionEvent
from registry.signals import version_promoted
from training.models import TrainingJob
from training.signals import job_finished


@receiver(version_promoted, dispatch_uid="monitoring_promotion_event")
def promotion_recorded(sender: Any, event: PromotionEvent, **kwargs: Any) -> None:
    instance = event
    to_version = instance.to_version
    from_version = instance.from_version
    change = f"v{from_version.version} -> " if from_version is not None else ""
    event_record(
        tenant=instance.tenant,
        model_type=instance.model_type,
        kind=MonitoringEvent.Kind.PROMOTION,
        message=f"{change}v{to_version.version if to_version else '?'} active, by {instance.actor}: {instance.reason}",
        values={
            "from_version_id": instance.from_version_id,
            "to_version_id": instance.to_version_id,
            "actor": instance.actor,
            "reason": instance.reason,
        },
        model_version=to_version,
    )


@receiver(job_finished, dispatch_uid="monitoring_retrain_finished")
def retrain_finished(sender: Any, job: TrainingJob, **kwargs: Any) -> None:
    if job.retrain_of_id is None:
        return
    values: dict[str, Any] = {"job_id": str(job.id), "status": job.status, "retrain_of_id": job.retrain_of_id}
    if job.model_version is not None:
        promotion = (job.model_version.training_report or {}).get("promotion", {})
        values |= {"new_version": job.model_version.version, "new_status": job.model_version.status, "promotion": promotion}
        outcome = (
            f"v{job.model_version.version} registered ({job.model_version.status}): "
            f"{promotion.get('reason', 'no promotion decision recorded')}"
        )
    else:
        outcome = job.error or job.status
    event_record(
        tenant=job.tenant,
        model_type=job.model_type,
        kind=MonitoringEvent.Kind.RETRAIN_FINISHED,
        message=f"retrain {job.status}: {outcome}",
        values=values,
        model_version=job.model_version or job.retrain_of,
        model_name=job.model_name,
    )


@receiver(post_migrate, dispatch_uid="monitoring_schedule")
def schedule_after_migrate(sender: Any, app_config: Any = None, **kwargs: Any) -> None:
    if app_config is not None and app_config.label == "monitoring":
        monitoring_schedule_ensure(using=kwargs.get("using", "default"))
        source_sync_schedule_ensure(using=kwargs.get("using", "default"))
