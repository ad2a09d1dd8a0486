"""JSON shapes of registry objects, shared by the APIs and the job results."""
from __future__ import annotations

from typing import Any

from registry.models import ModelVersion, PromotionEvent


# The original service's metric names (the CRM stores and charts these), beside ours.
ORIGINAL_METRIC_NAMES = {
    "f1": "f1_score",
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "r2": "r2_score",
    "rmse": "root_mean_squared_error",
}


def metrics_with_original_names(metrics: dict[str, Any]) -> dict[str, Any]:
    """Return the metrics with the original names added (accuracy, precision, recall, roc_auc are shared)."""
    named = dict(metrics)
    for ours, original in ORIGINAL_METRIC_NAMES.items():
        if ours in metrics:
            named.setdefault(original, metrics[ours])
    return named


def model_version_metadata(model_version: ModelVersion) -> dict[str, Any]:
    """Return the original service's `metadata` block, with the registry's extra facts."""
    report = model_version.training_report or {}
    feature_names = [column["name"] for column in model_version.feature_schema.get("columns", [])]
    return {
        # The original's keys first.
        "training_samples": report.get("train_rows"),
        "test_samples": report.get("test_rows"),
        "features": feature_names,
        "feature_importance": {name: weight for name, weight in model_version.feature_importance},
        "model_class": report.get("estimator"),
        # Figures only: the curves and histograms are in the version's `metrics`.
        "metrics": {
            name: value
            for name, value in metrics_with_original_names(model_version.metrics).items()
            if isinstance(value, (int, float)) or value is None
        },
        "best_params": model_version.params,
        "model_type": model_version.model_type,
        "algorithm": model_version.algorithm,
        "model_name": model_version.name,
        "user_id": model_version.tenant,
        "version": model_version.version,
        "training_date": model_version.created_at.isoformat(),
        "cross_validation": model_version.cross_validation,
        "feature_names": feature_names,
        "dropped_columns": model_version.feature_schema.get("dropped", []),
        # Ranked [name, weight] pairs, largest first (the object above has no order to rely on).
        "feature_importance_ranked": model_version.feature_importance,
        "explanation_method": model_version.explanation_method,
        "training_rows": report.get("train_rows"),
        "test_rows": report.get("test_rows"),
        "estimator": report.get("estimator"),
        "candidates": report.get("candidates", []),
        "preprocessing": report.get("preprocessing", {}),
        "feature_engineering": report.get("feature_engineering"),
        "leakage_excluded": report.get("leakage_excluded", []),
        "calibration": report.get("calibration"),
        "promotion": report.get("promotion"),
    }


def model_version_summary(model_version: ModelVersion) -> dict[str, Any]:
    metric_name, metric_value = model_version.main_metric
    return {
        "id": model_version.pk,
        "model_name": model_version.name,
        "version": model_version.version,
        "model_type": model_version.model_type,
        "algorithm": model_version.algorithm,
        "status": model_version.status,
        "is_active": model_version.status == ModelVersion.Status.ACTIVE,
        "model_path": model_version.artifact_path,
        "file_size": model_version.artifact_size,
        "sha256": model_version.artifact_sha256,
        "main_metric": {"name": metric_name, "value": metric_value},
        "metrics": metrics_with_original_names(model_version.metrics),
        "metadata": model_version_metadata(model_version),
        "created_at": model_version.created_at.isoformat(),
    }


def promotion_event_summary(event: PromotionEvent) -> dict[str, Any]:
    return {
        "from_version": event.from_version.version if event.from_version else None,
        "from_model_name": event.from_version.name if event.from_version else None,
        "to_version": event.to_version.version if event.to_version else None,
        "to_model_name": event.to_version.name if event.to_version else None,
        "actor": event.actor,
        "reason": event.reason,
        "at": event.created_at.isoformat(),
    }
