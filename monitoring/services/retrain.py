"""Decide whether a model retrains, and queue it through the ordinary training job.

A retrain runs the version's own algorithm and training configuration through
`training_job_create`, so it trains on the same dataset (plus the rows outcomes
appended since) and goes through the same promotion: a worse challenger stays a
candidate. At most one retrain per model is queued or running (checked here, and
enforced by a database constraint when two evaluations race), and after a retrain
finished its triggers rest for settings.LEADML_RETRAIN_COOLDOWN_HOURS.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from leadml.api.errors import ApplicationError, ConflictError, ServiceUnavailableError
from monitoring.models import MonitoringEvent
from monitoring.services.events import event_record
from monitoring.services.report import monitoring_report, window_resolve
from registry.models import ModelVersion
from training.models import TrainingJob
from training.config import job_config_parse
from training.services.jobs import training_job_create

logger = logging.getLogger(__name__)
IN_FLIGHT = (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING)


@dataclass
class RetrainDecision:
    version: ModelVersion
    action: str  # queued | would_retrain | not_due | skipped | failed
    reason: str
    fired: list[dict[str, Any]] = field(default_factory=list)
    job: TrainingJob | None = None
    # Why a retrain could not be queued for now (the job queue is down): a request says 503.
    unavailable: ServiceUnavailableError | None = None

    def line(self) -> str:
        """The one line `manage.py retrain` prints for this model."""
        version = self.version
        name = f"{version.tenant}/{version.name} v{version.version} ({version.model_type})"
        fired = ", ".join(f"{item['name']}={_short(item['value'])}" for item in self.fired) or "none"
        verbs = {
            "queued": f"RETRAIN queued job {self.job.id if self.job else '?'}",
            "would_retrain": "WOULD RETRAIN (dry run)",
            "not_due": "no retrain",
            "skipped": "skipped",
            "failed": "FAILED",
        }
        return f"{name}: {verbs[self.action]}; triggers fired: {fired}; {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.version.name,
            "version": self.version.version,
            "action": self.action,
            "reason": self.reason,
            "fired": self.fired,
            "job_id": str(self.job.id) if self.job else None,
        }


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def active_versions(*, tenant: str | None = None, model_type: str | None = None) -> QuerySet[ModelVersion]:
    versions = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).order_by("tenant", "model_type")
    if tenant:
        versions = versions.filter(tenant=tenant)
    if model_type:
        versions = versions.filter(model_type=model_type)
    return versions


def retrain_evaluate(
    *, version: ModelVersion, force: bool = False, dry_run: bool = False, actor: str = "retrain command"
) -> RetrainDecision:
    """Evaluate the version's triggers over the default window and retrain it if due."""
    report = monitoring_report(version=version, window=window_resolve(version=version, since=None, until=None, last=None))
    fired = [item for item in report["triggers"] if item["fired"]]
    if not fired and not force:
        quiet = "; ".join(f"{item['name']}: {item['reason']}" for item in report["triggers"] if item["enabled"])
        return RetrainDecision(version, "not_due", f"no trigger fired ({quiet})")
    why = "forced (--force)" if force and not fired else "; ".join(item["reason"] for item in fired)
    if dry_run:
        return RetrainDecision(version, "would_retrain", f"would retrain: {why}; nothing changed", fired)
    _record_fired(version, fired)
    blocked = _blocked(version, force=force)
    if blocked:
        return RetrainDecision(version, "skipped", blocked, fired)
    if not fired:  # --force with nothing due: a manual request, and shown as the manual trigger
        return _queue(version, actor=actor, reason=f"manual: forced by {actor}", fired=fired)
    names = ", ".join(item["name"] for item in fired)
    return _queue(version, actor=actor, reason=f"triggers: {names} ({why})", fired=fired)


def retrain_request(*, version: ModelVersion, actor: str, reason: str) -> RetrainDecision:
    """A manual retrain (API, admin, `retrain --force`): queued unless one is in flight."""
    blocked = _blocked(version, force=True)
    if blocked:
        raise ConflictError(blocked)
    decision = _queue(version, actor=actor, reason=f"manual: {reason}", fired=[])
    if decision.action == "skipped":  # another request queued one between the check and the insert
        raise ConflictError(decision.reason)
    if decision.unavailable is not None:
        raise decision.unavailable
    if decision.action == "failed":
        raise ApplicationError(decision.reason)
    return decision


def retrain_all(*, actor: str, tenant: str | None = None, model_type: str | None = None) -> list[RetrainDecision]:
    decisions = []
    for version in active_versions(tenant=tenant, model_type=model_type):
        try:
            decisions.append(retrain_evaluate(version=version, actor=actor))
        except Exception:  # one tenant's broken model must not stop the others' evaluation
            logger.exception("trigger_evaluation_failed version=%s", version.pk)
    for decision in decisions:
        logger.info("trigger_evaluation %s", decision.line())
    return decisions


def _record_fired(version: ModelVersion, fired: list[dict[str, Any]]) -> None:
    """An event per fired trigger; one that fired for this version within the cooldown is not repeated."""
    since = timezone.now() - timedelta(hours=settings.LEADML_RETRAIN_COOLDOWN_HOURS)
    recent = set(
        MonitoringEvent.objects.filter(
            model_version_id=version.pk, kind=MonitoringEvent.Kind.TRIGGER_FIRED, created_at__gte=since
        ).values_list("values__name", flat=True)
    )
    for item in fired:
        if item["name"] == "manual" or item["name"] in recent:
            continue
        event_record(
            tenant=version.tenant,
            model_type=version.model_type,
            kind=MonitoringEvent.Kind.TRIGGER_FIRED,
            message=f"{item['name']}: {item['reason']}",
            values={key: item[key] for key in ("name", "value", "threshold")},
            model_version=version,
        )


def _blocked(version: ModelVersion, *, force: bool) -> str | None:
    jobs = TrainingJob.objects.filter(tenant=version.tenant, model_name=version.name)
    in_flight = jobs.filter(status__in=IN_FLIGHT).first()
    if in_flight is not None:
        return f"a training job of '{version.name}' is already {in_flight.status} (job {in_flight.id}); not queued again"
    if force:
        return None
    since = timezone.now() - timedelta(hours=settings.LEADML_RETRAIN_COOLDOWN_HOURS)
    recent = jobs.filter(retrain_of__isnull=False, finished_at__gte=since).order_by("-finished_at").first()
    if recent is not None:
        return (
            f"retrained {recent.finished_at:%Y-%m-%d %H:%M} UTC (job {recent.id}, {recent.status}); "
            f"triggers rest {settings.LEADML_RETRAIN_COOLDOWN_HOURS:g} h after a retrain"
        )
    return None


def _queue(version: ModelVersion, *, actor: str, reason: str, fired: list[dict[str, Any]]) -> RetrainDecision:
    try:
        job = training_job_create(
            tenant=version.tenant,
            model_type=version.model_type,
            algorithm=version.algorithm,
            model_name=version.name,
            training_config=job_config_parse(version.training_config),
            requested_by=actor,
            retrain_of=version,
            retrain_reason=reason,
        )
    except ConflictError as error:
        return RetrainDecision(version, "skipped", error.message, fired)
    except ServiceUnavailableError as error:
        # Nothing was queued and nothing recorded: the next evaluation tries again.
        return RetrainDecision(version, "failed", f"cannot retrain now: {error.message}", fired, unavailable=error)
    except ApplicationError as error:
        return RetrainDecision(version, "failed", f"cannot retrain: {error.message}", fired)
    event_record(
        tenant=version.tenant,
        model_type=version.model_type,
        kind=MonitoringEvent.Kind.RETRAIN_QUEUED,
        message=f"retrain of v{version.version} queued by {actor}: {reason}",
        values={"job_id": str(job.id), "triggers": [item["name"] for item in fired]},
        model_version=version,
    )
    job.refresh_from_db()  # an inline (sync) worker may have run it already
    return RetrainDecision(version, "queued", reason, fired, job)
