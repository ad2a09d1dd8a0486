"""GET /monitoring: how a model version is doing on its recent predictions (README, "Monitoring and retraining").

A window of the prediction log (since/until, the last N, or the last days) is read as a
sample of at most settings.LEADML_MONITORING_SAMPLE_ROWS predictions, stratified over
time, so the answer costs the same on a log of a thousand or a million rows. The
sample is compared with the training records stored with the version (data drift, data
quality), with the held-out scores of training (prediction drift), and, where outcomes
came back, with what really happened (live performance). For leads the calibrated
probabilities alone also give the expected performance (CBPE) before any outcome.
The statistics themselves live in leadml.ml.drift; this module reads the database.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from leadml.api.errors import ApplicationError, NotFoundError
from leadml.ml.bundle import ModelBundle
from leadml.ml.dates import to_datetime
from leadml.ml.drift import (
    DriftThresholds,
    data_drift,
    data_quality,
    estimate_performance,
    live_metrics,
    score_drift,
)
from leadml.ml.errors import ArtifactIntegrityError
from leadml.ml.nested import tag_set
from leadml.ml.parsing import to_numeric
from leadml.ml.types import FeatureSchema, is_classification
from monitoring.models import Outcome
from monitoring.services.triggers import triggers_evaluate
from predictions.models import Prediction
from registry.cache import bundle_load
from registry.models import ModelVersion
from registry.selectors import model_version_select

logger = logging.getLogger(__name__)

# A sample beyond the window's size is drawn from this many equal slices of time.
TIME_SLICES = 10
TRAINING_KEYS = {
    True: ("roc_auc", "accuracy", "precision", "recall", "f1", "brier"),
    False: ("mae", "rmse", "r2"),
}


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    last: int | None = None
    # last=N: the (created_at, id) of the N-th latest prediction. A batch shares one
    # created_at, so the time alone would take in the rest of the batch at the boundary.
    boundary: tuple[datetime, int] | None = None


@dataclass
class _Sample:
    ids: list[int]
    entity_ids: list[str]
    inputs: list[dict[str, Any]]
    values: np.ndarray
    created_at: list[datetime]


def monitoring_version(
    *, tenant: str, model_type: str, model_name: str | None, version_number: int | None = None
) -> ModelVersion:
    version = model_version_select(tenant=tenant, model_type=model_type, model_name=model_name, version=version_number)
    if version is None:
        raise NotFoundError(f"user_id '{tenant}' has no active {model_type} model; train one or name model_name")
    return version


def window_resolve(
    *, version: ModelVersion, since: datetime | None, until: datetime | None, last: int | None
) -> Window:
    """The window asked for: explicit bounds, the last N predictions, or the default days."""
    now = timezone.now()
    if last is not None:
        if since is not None or until is not None:
            raise ApplicationError("give either last or since/until, not both", details={"last": ["conflicts with since/until"]})
        boundary = (
            _version_predictions(version).order_by("-created_at", "-id").values_list("created_at", "id")[last - 1 : last]
        ).first()
        oldest = boundary[0] if boundary else (
            _version_predictions(version).order_by("created_at").values_list("created_at", flat=True).first()
        )
        return Window(since=oldest or now, until=now + timedelta(microseconds=1), last=last, boundary=boundary)
    until = until or now + timedelta(microseconds=1)
    try:
        since = since or until - timedelta(days=settings.LEADML_MONITORING_WINDOW_DAYS)
    except OverflowError:
        raise ApplicationError("until is too early to take a window before it", details={"until": ["out of range"]}) from None
    if since >= until:
        raise ApplicationError("since must be before until", details={"since": ["not before until"]})
    return Window(since=since, until=until)


def monitoring_report(*, version: ModelVersion, window: Window, with_triggers: bool = True) -> dict[str, Any]:
    """The whole monitoring answer for one version and window (see the module docstring)."""
    classification = is_classification(version.model_type)
    in_window = _window_predictions(version, window)
    total = in_window.count()
    sample = _sample(in_window, total=total, limit=settings.LEADML_MONITORING_SAMPLE_ROWS)
    labelled = _labelled(in_window, version=version, limit=settings.LEADML_MONITORING_SAMPLE_ROWS)

    thresholds = DriftThresholds(**settings.LEADML_DRIFT_THRESHOLDS)
    bundle, unusable = _bundle(version)
    if bundle is not None and bundle.reference_sample is not None and sample.inputs:
        reference, current, kinds = _comparable_frames(bundle, version, sample)
        drift = data_drift(reference, current, kinds, thresholds)
        quality = data_quality(reference, current, bundle.schema.columns, margin=settings.LEADML_QUALITY_MARGIN)
    else:
        reason = unusable or (
            "no predictions by this version in the window" if not sample.inputs
            else "this version was trained before reference samples were stored; retrain it to monitor drift"
        )
        drift = {"dataset_drift": False, "drift_share": None, "features": [], "unavailable": reason}
        quality = []
    prediction_drift = score_drift(
        list(bundle.score_quantiles) if bundle is not None else [],
        int(version.metrics.get("test_rows") or 0),
        sample.values,
        thresholds,
    )
    performance = {
        "training": {key: version.metrics.get(key) for key in TRAINING_KEYS[classification]},
        "live": live_metrics(classification, labelled[1], labelled[0]) if len(labelled[0]) else {"rows": 0},
        "estimated": estimate_performance(sample.values) if classification else None,
    }
    report: dict[str, Any] = {
        "success": True,
        "user_id": version.tenant,
        "model_type": version.model_type,
        "model": {
            "name": version.name,
            "version": version.version,
            "algorithm": version.algorithm,
            "status": version.status,
            "trained_at": version.created_at.isoformat(),
        },
        "window": {
            "since": window.since.isoformat(),
            "until": window.until.isoformat(),
            "last": window.last,
            "predictions": total,
            "sampled": len(sample.ids),
            "with_outcomes": len(labelled[0]),
        },
        "data_drift": drift,
        "prediction_drift": prediction_drift,
        "data_quality": quality,
        "performance": performance,
    }
    if with_triggers:
        report["triggers"] = triggers_evaluate(version=version, report=report)
    return report


def _version_predictions(version: ModelVersion) -> QuerySet[Prediction]:
    # Scored by this version's model (rules answers are not the model's behaviour).
    return Prediction.objects.filter(model_version_id=version.pk, source=Prediction.Source.MODEL)


def _window_predictions(version: ModelVersion, window: Window) -> QuerySet[Prediction]:
    predictions = _version_predictions(version).filter(created_at__lt=window.until)
    if window.boundary is None:
        return predictions.filter(created_at__gte=window.since)
    created_at, pk = window.boundary
    # The plain range lets the index bound the scan; the OR settles ties at the boundary.
    return predictions.filter(created_at__gte=created_at).filter(
        Q(created_at__gt=created_at) | Q(created_at=created_at, id__gte=pk)
    )


def _sample(in_window: QuerySet[Prediction], *, total: int, limit: int) -> _Sample:
    """At most `limit` predictions: all of a small window, else a sample stratified by time.

    A large window is cut into TIME_SLICES equal spans of time; each span gives its latest
    predictions in proportion to how many it holds (one indexed count per span), so quiet
    days and batch bursts are represented as they were.
    """
    fields = ("id", "entity_id", "input", "value", "created_at")
    ordered = in_window.order_by("-created_at", "-id")
    if total <= limit:
        rows = list(ordered.values_list(*fields)[:limit])
    else:
        first = in_window.order_by("created_at", "id").values_list("created_at", flat=True).first()
        latest = ordered.values_list("created_at", flat=True).first()
        assert first is not None and latest is not None
        step = (latest - first) / TIME_SLICES
        spans = [
            ordered.filter(
                created_at__gte=first + step * index,
                created_at__lt=latest + timedelta(microseconds=1) if index == TIME_SLICES - 1 else first + step * (index + 1),
            )
            for index in range(TIME_SLICES)
        ]
        quotas = _proportional([span.count() for span in spans], limit)
        rows = []
        for span, quota in zip(spans, quotas):
            if quota:
                rows.extend(span.values_list(*fields)[:quota])
    return _Sample(
        ids=[row[0] for row in rows],
        entity_ids=[row[1] for row in rows],
        inputs=[row[2] for row in rows],
        values=np.asarray([row[3] for row in rows], dtype=float),
        created_at=[row[4] for row in rows],
    )


def _proportional(counts: list[int], limit: int) -> list[int]:
    """Split `limit` over the counts in proportion (largest remainders), never above a count."""
    total = sum(counts)
    exact = [count * limit / total for count in counts]
    quotas = [min(count, math.floor(share)) for count, share in zip(counts, exact)]
    by_remainder = sorted(range(len(counts)), key=lambda index: exact[index] - quotas[index], reverse=True)
    for index in by_remainder:
        if sum(quotas) >= limit:
            break
        if quotas[index] < counts[index]:
            quotas[index] += 1
    return quotas


def _labelled(in_window: QuerySet[Prediction], *, version: ModelVersion, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, outcome) of the window's predictions with an outcome, the latest per entity."""
    outcomes = Outcome.objects.filter(tenant=version.tenant, model_type=version.model_type)
    ordered = in_window.order_by("-created_at", "-id")
    by_entity = ordered.filter(
        entity_id__in=outcomes.exclude(entity_id="").values("entity_id")
    ).values_list("id", "entity_id", "value")[:limit]
    by_prediction = ordered.filter(
        id__in=outcomes.filter(entity_id="").values("prediction_id")
    ).values_list("id", "entity_id", "value")[:limit]
    rows = list(by_entity) + list(by_prediction)
    labels_by_entity = dict(
        outcomes.filter(entity_id__in={row[1] for row in rows if row[1]}).values_list("entity_id", "label")
    )
    labels_by_prediction = dict(
        outcomes.filter(entity_id="", prediction_id__in={row[0] for row in rows if not row[1]}).values_list(
            "prediction_id", "label"
        )
    )
    predicted: list[float] = []
    actual: list[float] = []
    seen: set[str] = set()
    for pk, entity_id, value in rows:  # newest first: the latest prediction of an entity counts
        key = entity_id or f"prediction:{pk}"
        label = labels_by_entity.get(entity_id) if entity_id else labels_by_prediction.get(pk)
        if key in seen or label is None:
            continue
        seen.add(key)
        predicted.append(value)
        actual.append(label)
    return np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)


def _bundle(version: ModelVersion) -> tuple[ModelBundle | None, str | None]:
    try:
        return bundle_load(version), None
    except (ArtifactIntegrityError, OSError, ValueError) as error:
        logger.warning("monitoring_bundle_unusable version=%s error=%s", version.pk, error)
        return None, f"the version's artifact cannot be loaded ({error.__class__.__name__})"


def _comparable_frames(
    bundle: ModelBundle, version: ModelVersion, sample: _Sample
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Training sample and window as the drift tests compare them, and each column's kind.

    Both go through the same validation as scoring (placeholders to missing, numbers
    read as numbers). Dates become ages in days (at training time for the reference,
    at prediction time for the window), or every window would drift as time passes.
    E-mail addresses compare by domain, job titles by their normalised text.
    """
    cached = bundle.__dict__.get("_cached_monitoring_reference")
    if cached is None:
        assert bundle.reference_sample is not None
        records = bundle.reference_sample.astype(object).where(bundle.reference_sample.notna(), None).to_dict("records")
        trained_at = pd.Timestamp(bundle.trained_at)
        trained_at = trained_at.tz_localize("UTC") if trained_at.tzinfo is None else trained_at
        reference_at = pd.Series([trained_at] * len(records))
        cached = _as_comparable(bundle.prepare(records, lenient=True).frame, bundle.schema, reference_at)
        bundle.__dict__["_cached_monitoring_reference"] = cached
    current = _as_comparable(
        bundle.prepare(sample.inputs, lenient=True).frame, bundle.schema, pd.Series(pd.to_datetime(sample.created_at, utc=True))
    )
    kinds = {
        column.name: ("numeric" if column.kind in ("numeric", "datetime", "tags") else "categorical")
        for column in bundle.schema.columns
    }
    return cached, current, kinds


def _as_comparable(frame: pd.DataFrame, schema: FeatureSchema, at: pd.Series) -> pd.DataFrame:
    out = {}
    for column in schema.columns:
        values = frame[column.name]
        if column.kind == "numeric":
            out[column.name] = to_numeric(values)
        elif column.kind == "datetime":
            dates = to_datetime(values, getattr(column, "date_format", None))
            out[column.name] = (at.reset_index(drop=True) - dates.reset_index(drop=True)).dt.total_seconds() / 86400.0
        elif column.kind == "email":
            out[column.name] = values.map(lambda value: value.rsplit("@", 1)[-1].strip().lower() if isinstance(value, str) and value.strip() else None)
        elif column.kind == "tags":
            # A list field compares by how many of the model's tags each record carries.
            known = set(column.categories)
            out[column.name] = values.map(
                lambda value, known=known: float(len(tags & known)) if (tags := tag_set(value)) is not None else np.nan
            ).astype(float)
        else:
            out[column.name] = values.map(lambda value: str(value).strip().lower() if value is not None else None)
    return pd.DataFrame(out)


def monitoring_summary(*, version: ModelVersion) -> dict[str, Any]:
    """The default window's drift, quality and trigger findings in a few fields (insights)."""
    report = monitoring_report(version=version, window=window_resolve(version=version, since=None, until=None, last=None))
    drift = report["data_drift"]
    metric = version.main_metric[0]
    performance = report["performance"]
    return {
        "window": report["window"],
        "data_drift": {
            "dataset_drift": drift["dataset_drift"],
            "drift_share": drift.get("drift_share"),
            "drifted_features": [item["name"] for item in drift.get("features", []) if item.get("drifted")],
            **({"unavailable": drift["unavailable"]} if "unavailable" in drift else {}),
        },
        "prediction_drift": {key: report["prediction_drift"].get(key) for key in ("drifted", "psi", "statistic")},
        "data_quality": {
            "flagged_features": [
                {"name": item["name"], "reason": item.get("reason")} for item in report["data_quality"] if item.get("flagged")
            ],
        },
        "performance": {
            "metric": metric,
            "training": performance["training"].get(metric),
            "live": performance["live"].get(metric),
            "live_rows": performance["live"].get("rows", 0),
            "estimated": (performance["estimated"] or {}).get(metric),
        },
        "fired_triggers": [item["name"] for item in report["triggers"] if item["fired"]],
    }


def performance_over_time(*, version: ModelVersion, days: int = 14, per_day: int = 2000) -> list[dict[str, Any]]:
    """Per day of the last `days`: training, live and (leads) estimated main metric, with counts.

    Each day reads at most `per_day` predictions of the version, like the report's sample.
    """
    classification = is_classification(version.model_type)
    metric = version.main_metric[0]
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    points = []
    for offset in range(days - 1, -1, -1):
        start = today - timedelta(days=offset)
        window = Window(since=start, until=start + timedelta(days=1))
        in_window = _window_predictions(version, window)
        values = np.asarray(list(in_window.order_by("-created_at").values_list("value", flat=True)[:per_day]), dtype=float)
        predicted, actual = _labelled(in_window, version=version, limit=per_day)
        live = live_metrics(classification, actual, predicted) if len(predicted) else {}
        estimated = estimate_performance(values) if classification and len(values) else {}
        points.append(
            {
                "day": start.date().isoformat(),
                "predictions": len(values),
                "outcomes": len(predicted),
                "training": version.metrics.get(metric),
                "live": live.get(metric),
                "estimated": estimated.get(metric),
            }
        )
    return points
