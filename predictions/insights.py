"""`GET /insights/{user_id}/{model_type}`: what a tenant's models learned and how they are used.

The original service's fields (`total_models`, `model_types`, `avg_performance`,
`feature_importance_trends`, `prediction_patterns`) from the registry and the prediction
log, plus the active version's card: metrics, CV, importance, calibration and tier
thresholds.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import numpy as np
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from leadml.ml.types import is_classification
from predictions.models import Prediction
from registry.cache import bundle_load
from registry.models import ModelVersion
from registry.presenters import metrics_with_original_names
from registry.selectors import model_version_get_active

PATTERN_DAYS = 30
SCORE_SAMPLE = 20_000
# Percentile cut-offs of the held-out scores that start each tier (see services.tier_for_percentile).
TIER_PERCENTILES = {"A": 90, "B": 70, "C": 40}


NO_MODELS = "No models available for insights"


def insights_get(*, tenant: str, model_type: str) -> dict[str, Any]:
    """The original service's insight fields, plus the active version's card.

    With no model of that type the original answered only `{"error": NO_MODELS}`; the
    same `error` comes here, beside the (empty) figures.
    """
    versions = list(ModelVersion.objects.filter(tenant=tenant, model_type=model_type).order_by("created_at"))
    all_types = Counter(ModelVersion.objects.filter(tenant=tenant).values_list("model_type", flat=True))
    active = model_version_get_active(tenant=tenant, model_type=model_type)
    body: dict[str, Any] = {"success": True} if versions else {"success": False, "error": NO_MODELS, "detail": NO_MODELS}
    return body | {
        "user_id": tenant,
        "model_type": model_type,
        "total_models": len(versions),
        # The original's: the algorithms of the models, each once.
        "model_types": sorted({version.algorithm for version in versions}),
        "model_type_counts": dict(all_types),
        "avg_performance": _average_metrics(versions),
        "feature_importance_trends": _importance_trends(versions),
        "prediction_patterns": _prediction_patterns(tenant=tenant, model_type=model_type),
        "active_model": _active_card(active) if active is not None else None,
    }


def _average_metrics(versions: list[ModelVersion]) -> dict[str, dict[str, float]]:
    """Per metric (ours and the original's names), its mean, std, min and max over the versions."""
    totals: dict[str, list[float]] = defaultdict(list)
    for version in versions:
        for name, value in metrics_with_original_names(version.metrics or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "test_rows":
                totals[name].append(float(value))
    return {
        name: {
            "mean": round(float(np.mean(values)), 6),
            "std": round(float(np.std(values)), 6),
            "min": round(float(np.min(values)), 6),
            "max": round(float(np.max(values)), 6),
        }
        for name, values in sorted(totals.items())
    }


def _importance_trends(versions: list[ModelVersion]) -> dict[str, list[dict[str, Any]]]:
    """Per input column, its importance share in each version, oldest first."""
    trends: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for version in versions:
        for name, weight in version.feature_importance or []:
            trends[name].append(
                {"model_name": version.name, "version": version.version, "importance": weight,
                 "trained_at": version.created_at.isoformat()}
            )
    return dict(trends)


def _prediction_patterns(*, tenant: str, model_type: str) -> dict[str, Any]:
    predictions = Prediction.objects.filter(tenant=tenant, model_type=model_type)
    total = predictions.count()
    by_source = dict(predictions.values_list("source").annotate(count=Count("id")).values_list("source", "count"))
    since = timezone.now() - timedelta(days=PATTERN_DAYS)
    per_day = (
        predictions.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(count=Count("id"))
        .order_by("day")
    )
    values = np.asarray(
        list(predictions.order_by("-created_at").values_list("value", flat=True)[:SCORE_SAMPLE]), dtype=float
    )
    return {
        "total_predictions": total,
        "by_source": by_source,
        "rules_share": round(by_source.get(Prediction.Source.RULES, 0) / total, 4) if total else None,
        "per_day": [{"date": row["day"].isoformat(), "count": row["count"]} for row in per_day],
        "score_distribution": _distribution(values, classification=is_classification(model_type)),
        "average_value": round(float(values.mean()), 6) if len(values) else None,
    }


def _distribution(values: np.ndarray, *, classification: bool) -> list[dict[str, Any]]:
    """Counts per bin: tenths of probability for leads, deciles of the values for CLV."""
    if not len(values):
        return []
    if classification:
        edges = np.linspace(0.0, 1.0, 11)
    else:
        edges = np.unique(np.quantile(values, np.linspace(0, 1, 11)))
        if len(edges) < 2:
            return [{"from": float(values[0]), "to": float(values[0]), "count": int(len(values))}]
    counts, edges = np.histogram(values, bins=edges)
    return [
        {"from": round(float(low), 6), "to": round(float(high), 6), "count": int(count)}
        for low, high, count in zip(edges[:-1], edges[1:], counts)
    ]


def _active_card(version: ModelVersion) -> dict[str, Any]:
    report = version.training_report or {}
    return {
        "model_name": version.name,
        "version": version.version,
        "algorithm": version.algorithm,
        "trained_at": version.created_at.isoformat(),
        "metrics": version.metrics,
        "cross_validation": version.cross_validation,
        "feature_importance": version.feature_importance,
        "explanation_method": version.explanation_method,
        "calibration": report.get("calibration"),
        "tier_thresholds": tier_thresholds(version),
        "trained_rows": version.trained_rows,
    }


def tier_thresholds(version: ModelVersion) -> dict[str, float] | None:
    """The lowest score of each tier: percentiles of the held-out scores stored with the version."""
    try:
        bundle = bundle_load(version)
    except Exception:  # noqa: BLE001 - a broken artifact leaves the card without thresholds
        return None
    quantiles = bundle.score_quantiles
    if not quantiles:
        return None
    return {tier: round(float(quantiles[min(percentile, len(quantiles) - 1)]), 6)
            for tier, percentile in TIER_PERCENTILES.items()}
