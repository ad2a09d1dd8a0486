"""The model card of the admin: a version's training report, charts and history in one context.

Charts are SVG strings from oversight.charts (server-rendered, no network); the numbers come
from what training stored with the version (metrics, curves, report) and from the
prediction log and monitoring report (usage, performance over time, drift).
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from oversight.charts import (
    Series,
    bar_chart,
    heatmap_chart,
    histogram_chart,
    line_chart,
    scatter_chart,
    stacked_bar_chart,
)
from leadml.ml.types import is_classification
from monitoring.services.report import monitoring_report, performance_over_time, window_resolve
from predictions.insights import tier_thresholds
from predictions.models import Prediction
from registry.models import ModelVersion
from registry.selectors import promotion_history

USAGE_DAYS = 30


def model_card(version: ModelVersion) -> dict[str, Any]:
    classification = is_classification(version.model_type)
    report = version.training_report or {}
    monitoring = monitoring_report(version=version, window=window_resolve(version=version, since=None, until=None, last=None))
    charts: list[tuple[str, SafeString]] = [("Feature importance", _importance(version))]
    if classification:
        charts += [
            ("ROC curve (held-out)", _roc(version)),
            ("Calibration (held-out)", _calibration(version)),
            ("Confusion matrix (held-out, threshold 0.5)", _confusion(version)),
        ]
    else:
        charts += [
            ("Predicted vs actual (held-out)", _predicted_vs_actual(version)),
            ("Residuals (held-out)", _residuals(version)),
        ]
    charts += [
        ("Score distribution and tiers", _score_distribution(version, classification)),
        (f"Predictions per day (last {USAGE_DAYS} days)", _usage(version)),
        ("Performance over time", _performance(version)),
        ("Drift per feature (last 7 days)", _drift(monitoring)),
    ]
    return {
        "version": version,
        "classification": classification,
        "metric_name": version.main_metric[0],
        "metric_value": version.main_metric[1],
        "cross_validation": version.cross_validation,
        "report": {
            "rows": report.get("rows"),
            "labelled_rows": report.get("labelled_rows"),
            "train_rows": report.get("train_rows"),
            "test_rows": report.get("test_rows"),
            "estimator": report.get("estimator"),
            "dropped_columns": report.get("dropped_columns", []),
            "leakage_excluded": report.get("leakage_excluded", []),
            "preprocessing": sorted((report.get("preprocessing") or {}).items()),
            "engineered": (report.get("feature_engineering") or {}).get("features", []),
            "candidates": report.get("candidates", []),
            "promotion": report.get("promotion"),
            "calibration": report.get("calibration"),
        },
        "params": sorted((version.params or {}).items()),
        "metrics": sorted(
            (key, value) for key, value in (version.metrics or {}).items() if isinstance(value, (int, float)) and not isinstance(value, bool)
        ),
        "charts": [{"title": title, "svg": svg} for title, svg in charts],
        "monitoring": monitoring,
        "fired_triggers": [item for item in monitoring["triggers"] if item["fired"]],
        "history": list(
            promotion_history(tenant=version.tenant, model_type=version.model_type).filter(
                Q(to_version__name=version.name) | Q(from_version__name=version.name)
            )[:50]
        ),
        "siblings": list(
            ModelVersion.objects.filter(tenant=version.tenant, name=version.name).order_by("-version").only(
                "pk", "version", "status", "algorithm", "metrics", "created_at", "model_type"
            )
        ),
    }


def _importance(version: ModelVersion) -> SafeString:
    items = [(str(name), float(weight)) for name, weight in (version.feature_importance or [])]
    return mark_safe(bar_chart(items, title="Feature importance", value_label=version.explanation_method or "importance"))


def _roc(version: ModelVersion) -> SafeString:
    points = [(point["fpr"], point["tpr"]) for point in version.metrics.get("roc_curve", [])]
    auc = version.metrics.get("roc_auc")
    name = f"ROC (AUC {auc:.3f})" if auc is not None else "ROC"
    return mark_safe(
        line_chart(
            [Series(name=name, points=points, markers=False)] if points else [],
            title="ROC curve", x_label="false positive rate", y_label="true positive rate",
            y_range=(0.0, 1.0), diagonal=True,
        )
    )


def _calibration(version: ModelVersion) -> SafeString:
    points = [(item["mean_predicted"], item["fraction_positive"]) for item in version.metrics.get("calibration_curve", [])]
    return mark_safe(
        line_chart(
            [Series(name="model", points=points)] if points else [],
            title="Calibration", x_label="mean predicted probability", y_label="observed conversion rate",
            y_range=(0.0, 1.0), diagonal=True,
        )
    )


def _confusion(version: ModelVersion) -> SafeString:
    matrix = version.metrics.get("confusion_matrix") or []
    return mark_safe(
        heatmap_chart(
            matrix, row_labels=["not converted", "converted"], col_labels=["predicted no", "predicted yes"],
            title="Confusion matrix", x_label="predicted", y_label="actual",
        )
    )


def _predicted_vs_actual(version: ModelVersion) -> SafeString:
    pairs = [(predicted, actual) for predicted, actual in version.metrics.get("predicted_vs_actual", [])]
    return mark_safe(
        scatter_chart(pairs, title="Predicted vs actual", x_label="predicted value", y_label="actual value", diagonal=True)
    )


def _residuals(version: ModelVersion) -> SafeString:
    pairs = [(predicted, actual - predicted) for predicted, actual in version.metrics.get("predicted_vs_actual", [])]
    return mark_safe(
        scatter_chart(pairs, title="Residuals", x_label="predicted value", y_label="actual - predicted", hline=0.0)
    )


def _score_distribution(version: ModelVersion, classification: bool) -> SafeString:
    bins = [(item["low"], item["high"], item["count"]) for item in version.metrics.get("score_histogram", [])]
    tiers = tier_thresholds(version) or {}
    thresholds = [(value, f"tier {tier}") for tier, value in sorted(tiers.items(), reverse=True)]
    label = "conversion probability" if classification else "lifetime value"
    return mark_safe(histogram_chart(bins, title="Held-out scores", x_label=label, thresholds=thresholds))


def _usage(version: ModelVersion) -> SafeString:
    since = timezone.now() - timedelta(days=USAGE_DAYS)
    rows = (
        Prediction.objects.filter(tenant=version.tenant, model_type=version.model_type, created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day", "source")
        .annotate(count=Count("id"))
    )
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["day"].isoformat(), {})[row["source"]] = row["count"]
    days = sorted(counts)
    model = [float(counts[day].get(Prediction.Source.MODEL, 0)) for day in days]
    rules = [float(counts[day].get(Prediction.Source.RULES, 0)) for day in days]
    return mark_safe(
        stacked_bar_chart(
            days,
            [("model", model, "#2563eb"), ("rules fallback", rules, "#f59e0b")] if days else [],
            title="Predictions per day", y_label="predictions",
        )
    )


def _performance(version: ModelVersion) -> SafeString:
    points = performance_over_time(version=version)
    metric = version.main_metric[0]
    series = [
        Series(name=f"training {metric}", points=[(p["day"], p["training"]) for p in points], color="#6b7280", dashed=True, markers=False),
        Series(name=f"live {metric}", points=[(p["day"], p["live"]) for p in points], color="#16a34a"),
    ]
    if is_classification(version.model_type):
        series.append(Series(name=f"estimated {metric} (CBPE)", points=[(p["day"], p["estimated"]) for p in points], color="#9333ea"))
    has_data = any(p["live"] is not None or p["estimated"] is not None for p in points) or version.metrics.get(metric) is not None
    return mark_safe(
        line_chart(series if has_data else [], title="Performance over time", x_label="day", y_label=metric, x_is_date=True)
    )


def _drift(monitoring: dict[str, Any]) -> SafeString:
    """PSI per feature (one scale for every kind), red where the feature's own test flagged drift."""
    features = [item for item in monitoring["data_drift"].get("features", []) if item.get("psi") is not None]
    items = [(str(item["name"]), float(item["psi"])) for item in features]
    drifted = {str(item["name"]) for item in features if item.get("drifted")}
    return mark_safe(
        bar_chart(items, title="Drift per feature", value_label="PSI", highlight=lambda name, value: name in drifted)
    )
