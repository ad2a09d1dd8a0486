"""JSON shapes of registry objects, shared by the APIs and the job results."""
from __future__ import annotations

from typing import Any

from registry.models import ModelVersion, PromotionEvent


def model_version_metadata(model_version: ModelVersion) -> dict[str, Any]:
    """Return the original service's `metadata` block, with the registry's extra facts."""
    report = model_version.training_report or {}
    return {
        "model_type": model_version.model_type,
        "algorithm": model_version.algorithm,
        "model_name": model_version.name,
        "user_id": model_version.tenant,
        "version": model_version.version,
        "training_date": model_version.created_at.isoformat(),
        "best_params": model_version.params,
        "cross_validation": model_version.cross_validation,
        "feature_names": [column["name"] for column in model_version.feature_schema.get("columns", [])],
        "dropped_columns": model_version.feature_schema.get("dropped", []),
        "feature_importance": model_version.feature_importance,
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
        "metrics": model_version.metrics,
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
