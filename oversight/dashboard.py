"""The admin index's dashboard: one row per tenant and model type with an active model."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import Count
from django.utils import timezone

from monitoring.services.report import monitoring_summary
from predictions.models import Prediction
from registry.models import ModelVersion

logger = logging.getLogger(__name__)
# Monitoring summaries are computed per row; past this many active models the dashboard
# lists the rest without them (the model list and `manage.py monitor` have them all).
SUMMARY_LIMIT = 50
# A summary is reused this long (per process cache): reloading the index stays cheap.
SUMMARY_SECONDS = 60


def dashboard_rows() -> list[dict[str, Any]]:
    actives = list(ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).order_by("tenant", "model_type"))
    since = timezone.now() - timedelta(days=7)
    recent = {
        (row["tenant"], row["model_type"]): row["count"]
        for row in Prediction.objects.filter(created_at__gte=since)
        .values("tenant", "model_type")
        .annotate(count=Count("id"))
    }
    rows = []
    for index, version in enumerate(actives):
        metric, value = version.main_metric
        summary = None
        if index < SUMMARY_LIMIT:
            key = f"leadml:dashboard:{version.pk}"
            summary = _cache_get(key)
            if summary is None:
                try:
                    summary = monitoring_summary(version=version)
                except Exception:  # one broken model must not take the admin index down
                    logger.exception("dashboard_summary_failed version=%s", version.pk)
                else:
                    _cache_set(key, summary)
        rows.append(
            {
                "version": version,
                "metric": metric,
                "metric_value": value,
                "predictions_7d": recent.get((version.tenant, version.model_type), 0),
                "drift": None if summary is None else summary["data_drift"],
                "fired": [] if summary is None else summary["fired_triggers"],
            }
        )
    return rows


def _cache_get(key: str) -> Any:
    """The cached summary, or None when the cache is unreachable (the admin still works)."""
    try:
        return cache.get(key)
    except Exception as error:  # noqa: BLE001 - any backend's connection error
        logger.warning("dashboard_cache_unavailable error=%s", error.__class__.__name__)
        return None


def _cache_set(key: str, summary: Any) -> None:
    try:
        cache.set(key, summary, SUMMARY_SECONDS)
    except Exception as error:  # noqa: BLE001 - any backend's connection error
        logger.warning("dashboard_cache_unavailable error=%s", error.__class__.__name__)
