"""Retraining triggers: each one's setting for a tenant, and whether it fires now.

Settings come from settings.LEADML_TRIGGER_DEFAULTS, overridden field by field by the
tenant's TriggerSettings row (admin, PUT /monitoring/{user_id}/{model_type}/triggers).
Evaluation reads a monitoring report (leadml.ml.drift figures) plus the training
rows and jobs in the database, and answers one entry per trigger:
`{name, enabled, fired, value, threshold, reason}`.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring.models import TriggerSettings
from registry.models import ModelVersion
from training.models import Dataset, DatasetRow, TrainingJob

TRIGGER_FIELDS = tuple(settings.LEADML_TRIGGER_DEFAULTS)


def trigger_settings_get(*, tenant: str, model_type: str) -> dict[str, Any]:
    """Effective settings (defaults + overrides) and the overrides alone."""
    defaults = dict(settings.LEADML_TRIGGER_DEFAULTS)
    row = TriggerSettings.objects.filter(tenant=tenant, model_type=model_type).first()
    overrides = {name: getattr(row, name) for name in TRIGGER_FIELDS if row is not None and getattr(row, name) is not None}
    return {"effective": defaults | overrides, "overrides": overrides, "defaults": defaults}


@transaction.atomic
def trigger_settings_update(*, tenant: str, model_type: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Set (a value) or clear (None: back to the default) the named overrides."""
    row, _ = TriggerSettings.objects.select_for_update().get_or_create(tenant=tenant, model_type=model_type)
    for name, value in changes.items():
        setattr(row, name, value)
    row.save()
    return trigger_settings_get(tenant=tenant, model_type=model_type)


def triggers_evaluate(*, version: ModelVersion, report: dict[str, Any]) -> list[dict[str, Any]]:
    config = trigger_settings_get(tenant=version.tenant, model_type=version.model_type)["effective"]
    return [
        _live_performance(version, report, config),
        _estimated_performance(version, report, config),
        _data_drift(report, config),
        _new_rows(version, config),
        _max_age(version, config),
        _manual(version),
    ]


def _entry(name: str, enabled: bool, fired: bool, value: Any, threshold: Any, reason: str) -> dict[str, Any]:
    return {
        "name": name,
        "enabled": enabled,
        "fired": bool(enabled and fired),
        "value": value,
        "threshold": threshold,
        "reason": reason if enabled else f"disabled ({reason})",
    }


def _main_metric(version: ModelVersion) -> str:
    return version.main_metric[0]


def _live_performance(version: ModelVersion, report: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    key = _main_metric(version)
    margin = config["live_performance_margin"]
    minimum = config["live_performance_min_outcomes"]
    training = report["performance"]["training"].get(key)
    live = report["performance"]["live"]
    rows = live.get("rows", 0)
    value = live.get(key)
    enabled = config["live_performance_enabled"]
    threshold = None if training is None else round(training - margin, 6)
    if rows < minimum:
        return _entry("live_performance", enabled, False, value, threshold, f"{rows} outcomes in the window; {minimum} needed")
    if value is None or training is None:
        return _entry("live_performance", enabled, False, value, threshold, f"live {key} cannot be computed")
    fired = value < threshold
    verb = "below" if fired else "not below"
    return _entry(
        "live_performance", enabled, fired, value, threshold,
        f"live {key} {value:.3f} on {rows} outcomes is {verb} training {training:.3f} - {margin:g}",
    )


def _estimated_performance(version: ModelVersion, report: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    enabled = config["estimated_performance_enabled"]
    estimated = report["performance"]["estimated"]
    if estimated is None:
        return _entry("estimated_performance", False, False, None, None, "only lead models have calibrated probabilities to estimate from")
    margin = config["estimated_performance_margin"]
    minimum = config["estimated_performance_min_predictions"]
    training = report["performance"]["training"].get("roc_auc")
    value = estimated.get("roc_auc")
    threshold = None if training is None else round(training - margin, 6)
    rows = report["window"]["sampled"]
    if rows < minimum:
        return _entry("estimated_performance", enabled, False, value, threshold, f"{rows} predictions in the window; {minimum} needed")
    if value is None or training is None:
        return _entry("estimated_performance", enabled, False, value, threshold, "expected roc_auc cannot be computed")
    fired = value < threshold
    verb = "below" if fired else "not below"
    return _entry(
        "estimated_performance", enabled, fired, value, threshold,
        f"expected roc_auc {value:.3f} (CBPE) is {verb} training {training:.3f} - {margin:g}",
    )


def _data_drift(report: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    enabled = config["data_drift_enabled"]
    drift = report["data_drift"]
    minimum = config["data_drift_min_predictions"]
    share = drift.get("drift_share")
    threshold = drift.get("threshold")
    rows = report["window"]["sampled"]
    if "unavailable" in drift:
        return _entry("data_drift", enabled, False, share, threshold, drift["unavailable"])
    if rows < minimum:
        return _entry("data_drift", enabled, False, share, threshold, f"{rows} predictions in the window; {minimum} needed")
    drifted = [feature["name"] for feature in drift["features"] if feature.get("drifted")]
    if drift["dataset_drift"]:
        reason = f"{len(drifted)} of {drift.get('tested_features')} features drifted ({', '.join(drifted[:8])})"
    else:
        reason = f"drift share {share:.2f} below {threshold:g}" + (f" (drifted: {', '.join(drifted[:8])})" if drifted else "")
    return _entry("data_drift", enabled, drift["dataset_drift"], share, threshold, reason)


def new_labelled_rows(version: ModelVersion) -> int:
    """Labelled training rows added (uploads or outcomes) since the version was trained."""
    rows = DatasetRow.objects.filter(
        tenant=version.tenant,
        model_type=version.model_type,
        label__isnull=False,
        created_at__gt=version.created_at,
        dataset__status=Dataset.Status.READY,
    ).exclude(
        # A snapshot read from a data source is the CRM as it was, not new rows: what is
        # new there arrives as outcomes (monitoring/services/source_sync.py).
        source=DatasetRow.Source.DATA_SOURCE
    )
    dataset_id = (version.training_config or {}).get("dataset_id")
    if dataset_id:
        rows = rows.filter(dataset_id=dataset_id)
    return rows.count()


def _new_rows(version: ModelVersion, config: dict[str, Any]) -> dict[str, Any]:
    enabled = config["new_rows_enabled"]
    minimum = config["new_rows_min"]
    count = new_labelled_rows(version)
    fired = count >= minimum
    return _entry(
        "new_labelled_rows", enabled, fired, count, minimum,
        f"{count} labelled rows added since training ({'at least' if fired else 'fewer than'} {minimum})",
    )


def _max_age(version: ModelVersion, config: dict[str, Any]) -> dict[str, Any]:
    enabled = config["max_age_enabled"]
    limit = config["max_age_days"]
    age = round((timezone.now() - version.created_at).total_seconds() / 86400.0, 2)
    fired = age > limit
    return _entry("max_age", enabled, fired, age, limit, f"trained {age:g} days ago ({'over' if fired else 'within'} {limit} days)")


def _manual(version: ModelVersion) -> dict[str, Any]:
    pending = (
        TrainingJob.objects.filter(retrain_of=version, status__in=[TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING])
        .exclude(retrain_reason__startswith="triggers:")
        .first()
    )
    if pending is None:
        return _entry("manual", True, False, None, None, "no manual retrain requested")
    return _entry("manual", True, True, str(pending.id), None, f"retrain {pending.status} ({pending.retrain_reason})")
