"""Score records with the tenant's model (or the rules fallback) and log every prediction.

One path for single and batch requests: resolve the model version, load it (checksum
verified), validate the records against its feature schema, score, and store every
prediction in one transaction before answering.

Past the ~400 lines of the README's module rule on purpose: the scoring path (version,
load, validate, score, explain, store) is profiled and tuned as one; its steps are the
private functions below.
"""
from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from leadml.api.errors import ApplicationError, PayloadTooLargeError
from leadml.api.records import number_too_large, records_check
from leadml.ml.bundle import ModelBundle
from leadml.ml.confidence import class_probability, lead_confidence
from leadml.ml.errors import InputError
from leadml.ml.nested import flatten_records
from leadml.ml.reasons import Explainer, Explanation, explainer_for, reasons_of
from leadml.ml.rules import estimate_lifetime_value_by_rules, score_lead_by_rules
from leadml.ml.bundle import RECORD_WARNING_FIELD
from leadml.ml.transactions import CustomerFeatures, features_for_customers
from leadml.ml.types import is_classification
from leadml.ml.validation import PreparedRecords
from predictions.models import Prediction
from predictions.public_ids import public_ids
from predictions.prediction_log import PredictionBatch, predictions_insert, predictions_stream, streams
from predictions.results import RecordOutput, ScoringResult
from registry.cache import ArtifactUnusable, bundle_load, model_version_fallbacks_for_request, model_version_for_request
from registry.models import ModelVersion

logger = logging.getLogger(__name__)
TOP_FEATURES = 10
# Records scored, then sent to the database, at a time by `_model_score_streamed`. Each
# part pays the pandas transform's fixed cost again: on the 10,000-record bench batch, 12
# alternated rounds gave a median of 590 ms in parts of 2,000, 547 ms of 3,400 and 527 ms
# of 5,000 (BENCHMARKS.md).
STREAM_PART_ROWS = 5000
UNEXPLAINED_VERSION = "this version was trained before per-record reasons existed; retrain it to get them"


def prediction_class(probability: float) -> str:
    if probability > 0.7:
        return "high"
    if probability > 0.4:
        return "medium"
    return "low"


def value_category(value: float) -> str:
    if value > 10000:
        return "high_value"
    if value > 1000:
        return "medium_value"
    if value > 100:
        return "low_value"
    return "very_low_value"


def tier_for_percentile(percentile: float) -> str:
    """A: top 10% of held-out scores, B: next 20%, C: next 30%, D: the bottom 40%."""
    if percentile >= 90:
        return "A"
    if percentile >= 70:
        return "B"
    if percentile >= 40:
        return "C"
    return "D"


def entity_id_of(record: Mapping[str, Any], model_type: str) -> str:
    keys = ("id", "lead_id") if is_classification(model_type) else ("customer_id", "id")
    for key in keys:
        value = record.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def _entity_ids_resolve(
    records: Sequence[Mapping[str, Any]], model_type: str, entity_ids: Sequence[str] | None, batch: bool
) -> list[str]:
    """Return each record's entity id (given, else its `id` / `customer_id`), refusing over-long ones."""
    limit = Prediction._meta.get_field("entity_id").max_length
    assert limit is not None  # a CharField's
    resolved = []
    for index, record in enumerate(records):
        entity_id = (entity_ids[index] if entity_ids else "") or entity_id_of(record, model_type)
        if len(entity_id) > limit:
            where = f"data[{index}]" if batch else "data"
            raise ApplicationError(
                f"{where}: the record id is {len(entity_id)} characters; at most {limit} are allowed",
                details={where: [f"id longer than {limit} characters"]},
            )
        resolved.append(entity_id)
    return resolved


def transaction_records_expand(
    records: Sequence[Mapping[str, Any]], *, model_type: str, batch: bool
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Turn CLV records that carry `transactions` into the per-customer features.

    `{"customer_id": ..., "as_of": "YYYY-MM-DD", "transactions": [{"date", "amount"}, ...]}`
    becomes the row the transaction-built training table has for that customer (the same
    builder, run once for the whole batch), `as_of` defaulting to today. A customer with
    no purchase on or before `as_of` (every purchase refunded) is scored from the
    no-purchase row, with a warning. Unreadable parts are one 400 naming every one of
    them. Returns (records for the model, records for the rules fallback, which reads
    order counts and purchase dates).
    """
    if is_classification(model_type) or not any(isinstance(r, Mapping) and "transactions" in r for r in records):
        return list(records), list(records)
    today = timezone.now().date().isoformat()
    positions, built = _customer_features_build(records, today=today, batch=batch)
    expanded: list[Mapping[str, Any]] = list(records)
    for_rules: list[Mapping[str, Any]] = list(records)
    for index, result in zip(positions, built):
        record = records[index]
        features = result.features
        assert features is not None
        row = {key: value for key, value in record.items() if key not in ("transactions", "as_of")}
        row |= {name: (None if value is None or math.isnan(value) else value) for name, value in features.items()}
        if result.warning:
            row[RECORD_WARNING_FIELD] = result.warning
        expanded[index] = row
        for_rules[index] = _rules_view(row, features, as_of=record.get("as_of") or today)
    return expanded, for_rules


def _customer_features_build(
    records: Sequence[Mapping[str, Any]], *, today: str, batch: bool
) -> tuple[list[int], list[CustomerFeatures]]:
    """The positions of the records with transactions and their built features; one 400 naming every problem."""
    positions: list[int] = []
    histories: list[tuple[Any, Any]] = []
    problems: dict[str, list[str]] = {}
    for index, record in enumerate(records):
        if not isinstance(record, Mapping) or "transactions" not in record:
            continue
        where = f"data[{index}]." if batch else ""
        as_of = record.get("as_of") or today
        found = _transactions_check(record["transactions"], as_of, where)
        if found:
            problems |= found
            continue
        positions.append(index)
        histories.append((record["transactions"], as_of))
    built = features_for_customers(histories)
    for index, result in zip(positions, built):
        where = f"data[{index}]." if batch else ""
        for field_name, message in result.problems:
            problems.setdefault(f"{where}{field_name}", []).append(message)
    if problems:
        _transactions_refuse(problems)
    return positions, built


def _rules_view(row: dict[str, Any], features: Mapping[str, Any], *, as_of: Any) -> dict[str, Any]:
    """The customer's row as the rules fallback reads it: order counts and purchase dates."""
    try:
        day = date.fromisoformat(str(as_of)[:10])
    except ValueError:  # YYYYMMDD and other forms the feature builder reads
        day = timezone.now().date()
    tenure, recency = row["tenure_days"], row["recency_days"]
    return row | {
        "as_of": day.isoformat(),
        "total_orders": features["purchase_days"],
        "total_spent": features["total_spend"],
        "avg_order_value": features["avg_spend"],
        "first_purchase_date": None if tenure is None else (day - timedelta(days=tenure)).isoformat(),
        "last_purchase_date": None if recency is None else (day - timedelta(days=recency)).isoformat(),
    }


def _transactions_check(transactions: Any, as_of: Any, where: str) -> dict[str, list[str]]:
    """Every number too large to compute with, found before the feature builder sees it."""
    problems: dict[str, list[str]] = {}
    if number_too_large(as_of):
        problems[f"{where}as_of"] = [f"{where}as_of is not a date"]
    if not isinstance(transactions, list):
        return problems  # the feature builder names the problem
    for position, element in enumerate(transactions):
        if isinstance(element, Mapping):
            for key, value in element.items():
                if number_too_large(value):
                    name = f"{where}transactions[{position}].{key}"
                    problems[name] = [f"{name} is a number too large to read"]
    return problems


def _transactions_refuse(problems: dict[str, list[str]]) -> None:
    """One 400 for the whole request, naming every unreadable field."""
    first_field, first_messages = next(iter(problems.items()))
    count = len(problems)
    summary = first_messages[0] if count == 1 else f"{count} unreadable transaction fields, e.g. {first_messages[0]}"
    raise ApplicationError(summary, details=problems)


def _load(model_version: ModelVersion) -> tuple[ModelVersion, ModelBundle | None, str | None, str | None]:
    """Load the chosen version, or the model's newest older version this host can load.

    Returns (the version served, its bundle or None, why there is no bundle, a warning
    for every answer when an older version stands in). An artifact this host cannot
    load is its own fault (registry.cache.bundle_load remembers it and retries): the
    version is not marked broken for every other host.
    """
    if model_version.status != ModelVersion.Status.BROKEN:
        try:
            return model_version, bundle_load(model_version), None, None
        except ArtifactUnusable as error:
            reason = f"model version {model_version.version} of '{model_version.name}' is unusable here ({error.reason})"
    else:
        reason = f"model version {model_version.version} of '{model_version.name}' is broken: {model_version.broken_reason}"
    for older in model_version_fallbacks_for_request(model_version):
        try:
            bundle = bundle_load(older)
        except ArtifactUnusable:
            continue
        return older, bundle, None, f"{reason}; served by version {older.version}"
    return model_version, None, reason, None


def predictions_make(
    *,
    tenant: str,
    model_type: str,
    records: Sequence[Mapping[str, Any]],
    model_name: str | None = None,
    version: int | None = None,
    entity_ids: Sequence[str] | None = None,
    batch: bool = False,
    explain: bool | None = None,
) -> ScoringResult:
    """Score records and store one Prediction per record, atomically.

    The model: `model_name`'s newest usable version (or its `version`), else the
    tenant's active model for the type (registry.selectors.model_version_select).
    `explain` (default: for single records, not for batches) adds each record's reasons.
    """
    if explain is None:
        explain = not batch
    _records_admit(records)
    original_records = records
    records, rules_records = transaction_records_expand(records, model_type=model_type, batch=batch)
    records_check(records, field="data", indexed=batch)
    resolved_entity_ids = _entity_ids_resolve(records, model_type, entity_ids, batch)
    started = time.perf_counter()
    model_version = model_version_for_request(tenant=tenant, model_type=model_type, model_name=model_name, version=version)
    bundle: ModelBundle | None = None
    fallback_reason: str | None = "no trained model for this user_id and model_type"
    stand_in: str | None = None
    if model_version is not None:
        model_version, bundle, fallback_reason, stand_in = _load(model_version)
    # Object fields become `field.key` columns, except the model's own columns, whose
    # schema check refuses an object by name (leadml.ml.nested).
    records = flatten_records(records, keep=set(bundle.schema.names) if bundle is not None else ())

    result: ScoringResult | None = None
    stored = False  # large batches are stored while they are scored
    if bundle is not None and model_version is not None:
        _transactions_fit_check(model_version, bundle, original_records)
        result, fallback_reason, stored = _model_score(
            tenant, model_version, bundle, records, resolved_entity_ids, stand_in=stand_in, explain=explain,
            batch=batch, fallback_reason=fallback_reason,
        )
    if result is None:
        # Flattened only now: most batches are scored by a model and never read them.
        result = _rules_outputs(model_type, flatten_records(rules_records), fallback_reason or "model unavailable")

    latency_ms = (time.perf_counter() - started) * 1000.0
    if not stored:
        _stored(
            tenant=tenant, result=result, records=records, entity_ids=resolved_entity_ids, latency_ms=latency_ms,
            batch=batch,
        )
    logger.info(
        "predictions_made tenant=%s model_type=%s version=%s source=%s count=%s latency_ms=%.2f",
        tenant, model_type, result.model_version.pk if result.model_version else None, result.source, len(records),
        latency_ms,
    )
    return result


def _stored(
    *,
    tenant: str,
    result: ScoringResult,
    records: Sequence[Mapping[str, Any]],
    entity_ids: list[str],
    latency_ms: float,
    batch: bool,
) -> None:
    """Log every answer (one transaction) and give each its public prediction id."""
    ids = _store(
        tenant=tenant, result=result, records=records, entity_ids=entity_ids, latency_ms=latency_ms / len(records),
        batch=batch,
    )
    _ids_given(result, ids, entity_ids)


def _ids_given(result: ScoringResult, prediction_ids: list[int], entity_ids: list[str]) -> None:
    result.prediction_ids = prediction_ids
    result.entity_ids = entity_ids
    for output, prediction_id in zip(result.outputs, public_ids(result.prediction_ids)):
        output["prediction_id"] = prediction_id


def _records_admit(records: Sequence[Mapping[str, Any]]) -> None:
    if not records:
        raise ApplicationError("data is empty", details={"data": ["at least one record is required"]})
    if len(records) > settings.LEADML_MAX_BATCH_ROWS:
        raise PayloadTooLargeError(
            f"{len(records)} records exceed the batch limit of {settings.LEADML_MAX_BATCH_ROWS}",
            details={"data": ["too many records"]},
        )


def _transactions_fit_check(model_version: ModelVersion, bundle: ModelBundle, original_records: Sequence[Any]) -> None:
    """Refuse transaction logs sent to a model that was not trained on per-customer transaction features."""
    from_transactions = any(isinstance(r, Mapping) and "transactions" in r for r in original_records)
    if from_transactions and "frequency" not in bundle.schema.names:
        message = (
            f"model '{model_version.name}' v{model_version.version} was trained on per-customer fields "
            f"({', '.join(bundle.schema.names[:6])}, ...), not on transaction logs: send those fields, or train "
            "on a dataset uploaded with kind=transactions"
        )
        raise ApplicationError(message, details={"data": ["transactions given to a model not trained on them"]})


def _model_score(
    tenant: str,
    model_version: ModelVersion,
    bundle: ModelBundle,
    records: list[dict[str, Any]],
    entity_ids: list[str],
    *,
    stand_in: str | None,
    explain: bool,
    batch: bool,
    fallback_reason: str | None,
) -> tuple[ScoringResult | None, str | None, bool]:
    """The model's answers and whether they are stored already, or (None, why, False) when the model fails.

    The rules answer when the model fails. Large batches on PostgreSQL are stored as
    they are scored (`_model_score_streamed`); the others are stored by the caller.
    """
    if batch and streams(len(records)):
        result, reason = _model_score_streamed(
            tenant, model_version, bundle, records, entity_ids, stand_in=stand_in, explain=explain,
            fallback_reason=fallback_reason,
        )
        return result, reason, result is not None
    prepared = _prepared(bundle, records, batch=batch)
    try:
        answers = _model_answers(model_version, bundle, prepared, records, stand_in, explain, batch)
    except _ModelFailed as failure:
        return None, failure.reason, False
    return answers, fallback_reason, False


class _ModelFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _prepared(bundle: ModelBundle, records: Sequence[Mapping[str, Any]], *, batch: bool) -> PreparedRecords:
    """The records checked against the model's schema; a 400 naming the field (and row) otherwise."""
    try:
        return bundle.prepare(records)
    except InputError as error:
        raise _refused(error, batch=batch) from error


def _refused(error: InputError, *, batch: bool) -> ApplicationError:
    """The 400 for a record the model refuses, naming the field (and, in a batch, the record)."""
    where = f"data[{error.row}]." if batch and error.row is not None else ""
    field_name = f"{where}{error.field}" if error.field else "data"
    return ApplicationError(error.message, details={field_name: [error.message]})


def _model_answers(
    model_version: ModelVersion,
    bundle: ModelBundle,
    prepared: PreparedRecords,
    records: Sequence[Mapping[str, Any]],
    stand_in: str | None,
    explain: bool,
    batch: bool,
) -> ScoringResult:
    """The model's answers to prepared records; _ModelFailed when the model cannot score them."""
    try:
        inputs = bundle.model_input(prepared)
        values, explained = _score(bundle, inputs, explain=explain, batch=batch)
    except InputError as error:  # a number the estimator cannot compute with
        raise _refused(error, batch=batch) from error
    except Exception as error:  # a model that cannot score must not take the CRM down with it
        logger.exception("model_error version=%s", model_version.pk)
        raise _ModelFailed(f"model error: {error.__class__.__name__}") from error
    warnings = [[stand_in, *record] for record in prepared.warnings] if stand_in else prepared.warnings
    result = _model_outputs(model_version, bundle, values, warnings)
    if explain:
        _add_reasons(result.outputs, explained, records)
    return result


def _model_score_streamed(
    tenant: str,
    model_version: ModelVersion,
    bundle: ModelBundle,
    records: list[dict[str, Any]],
    entity_ids: list[str],
    *,
    stand_in: str | None,
    explain: bool,
    fallback_reason: str | None,
) -> tuple[ScoringResult | None, str | None]:
    """Score a large batch part by part and store each part while the next is scored; one transaction.

    The database parses and indexes one part on its own core while this process scores the
    next, so storing costs little more than the last part. What is answered is what
    scoring the whole batch at once, then `_stored`, would give (ages are taken at each part's scoring time),
    and each prediction's `latency_ms` is its part's scoring time per record. A model
    failure in any part stores nothing: (None, why). Nothing in the parts may query the
    database: the connection is busy with the COPY until the stream closes.
    """
    prepared = _prepared(bundle, records, batch=True)  # every record checked before any is stored
    batch_id = uuid.uuid4()
    # Parts of equal size, each over half of STREAM_PART_ROWS: every part takes the path the
    # whole batch would (pandas and sklearn, not the small-input compiled forms).
    size = math.ceil(len(records) / math.ceil(len(records) / STREAM_PART_ROWS))
    parts: list[ScoringResult] = []
    prediction_ids: list[int] = []
    try:
        with predictions_stream(len(records)) as stream:
            for start in range(0, len(records), size):
                stop = start + size
                started = time.perf_counter()
                part = _model_answers(
                    model_version, bundle, prepared.slice(start, stop), records[start:stop], stand_in, explain, True
                )
                latency_ms = (time.perf_counter() - started) * 1000.0 / len(part.outputs)
                rows = _log_rows(
                    tenant, part, records[start:stop], entity_ids[start:stop], latency_ms=latency_ms, batch_id=batch_id
                )
                prediction_ids += stream.write(rows)
                parts.append(part)
    except _ModelFailed as failure:  # raised inside the stream: the COPY was aborted, nothing stored
        return None, failure.reason
    result = parts[0]
    result.outputs = [output for part in parts for output in part.outputs]
    _ids_given(result, prediction_ids, entity_ids)
    return result, fallback_reason


def _model_outputs(
    model_version: ModelVersion, bundle: ModelBundle, values: Any, warnings: list[list[str]]
) -> ScoringResult:
    values = np.asarray(values, dtype=float)
    percentiles = bundle.percentiles(values)
    if bundle.classification:
        outputs = _lead_outputs(values, percentiles, warnings)
    else:
        outputs = _value_outputs(values, percentiles, warnings, _lifetime_value_confidence(bundle, values))
    top = [[name, weight] for name, weight in bundle.feature_importance[:TOP_FEATURES]]
    return ScoringResult(
        model_type=bundle.model_type,
        source="model",
        outputs=outputs,
        model_info={
            "model_path": model_version.artifact_path,
            "algorithm": model_version.algorithm,
            "training_date": model_version.created_at.isoformat(),
            "model_name": model_version.name,
            "version": model_version.version,
            "model_version_id": model_version.pk,
        },
        feature_importance={
            "top_features": top,
            "feature_count": len(bundle.schema.columns),
            "explanation_method": bundle.explanation_method,
        },
        model_version=model_version,
    )


# Every record's answer fields at once: numpy for the arithmetic (the same IEEE operations
# as `lead_confidence` and friends on one value), Python's `round` for the rounding, so
# each figure is exactly what the one-value functions give.


def _rounded(values: np.ndarray, digits: int) -> list[float]:
    return [round(value, digits) for value in values.tolist()]


def _lead_outputs(probabilities: np.ndarray, percentiles: np.ndarray, warnings: list[list[str]]) -> list[RecordOutput]:
    conversion = _rounded(probabilities, 6)
    confidence = _rounded(lead_confidences(probabilities), 6)
    class_confidence = _rounded(np.maximum(probabilities, 1.0 - probabilities), 6)
    classes = prediction_classes(probabilities)
    scores = [round(score) for score in (probabilities * 100).tolist()]
    tiers = tiers_for_percentiles(percentiles)
    return [
        {
            "warnings": record_warnings,
            "source": "model",
            "conversion_probability": probability,
            "confidence": confidence_value,
            "confidence_detail": {"value": detail, "method": "class_probability"},
            "prediction_class": prediction_class_,
            "score": score,
            "tier": tier,
        }
        for record_warnings, probability, confidence_value, detail, prediction_class_, score, tier in zip(
            warnings, conversion, confidence, class_confidence, classes, scores, tiers
        )
    ]


def _value_outputs(
    values: np.ndarray, percentiles: np.ndarray, warnings: list[list[str]], confidence: tuple[str, Any]
) -> list[RecordOutput]:
    method, confidences = confidence
    confidence_values = _rounded(np.asarray(confidences, dtype=float), 6)
    categories = value_categories(values)
    scores = [round(percentile) for percentile in percentiles.tolist()]
    tiers = tiers_for_percentiles(percentiles)
    return [
        {
            "warnings": record_warnings,
            "source": "model",
            "lifetime_value": value,
            "confidence": confidence_value,
            "confidence_detail": {"value": confidence_value, "method": method},
            "value_category": category,
            "score": score,
            "tier": tier,
        }
        for record_warnings, value, confidence_value, category, score, tier in zip(
            warnings, _rounded(values, 2), confidence_values, categories, scores, tiers
        )
    ]


def lead_confidences(probabilities: np.ndarray) -> np.ndarray:
    """`lead_confidence` of every probability."""
    return (np.minimum(2.0 * np.abs(probabilities - 0.5), 1.0) + np.maximum(probabilities, 1.0 - probabilities)) / 2.0


# Below this many values the one-value functions beat np.select (tens of microseconds a call).
_SELECT_MIN_VALUES = 16


def prediction_classes(probabilities: np.ndarray) -> list[str]:
    """`prediction_class` of every probability."""
    if len(probabilities) < _SELECT_MIN_VALUES:
        return [prediction_class(probability) for probability in probabilities.tolist()]
    return np.select([probabilities > 0.7, probabilities > 0.4], ["high", "medium"], "low").tolist()


def value_categories(values: np.ndarray) -> list[str]:
    """`value_category` of every value."""
    if len(values) < _SELECT_MIN_VALUES:
        return [value_category(value) for value in values.tolist()]
    return np.select(
        [values > 10000, values > 1000, values > 100], ["high_value", "medium_value", "low_value"], "very_low_value"
    ).tolist()


def tiers_for_percentiles(percentiles: np.ndarray) -> list[str]:
    """`tier_for_percentile` of every percentile."""
    if len(percentiles) < _SELECT_MIN_VALUES:
        return [tier_for_percentile(percentile) for percentile in percentiles.tolist()]
    return np.select([percentiles >= 90, percentiles >= 70, percentiles >= 40], ["A", "B", "C"], "D").tolist()


def _lifetime_value_confidence(bundle: ModelBundle, values: Any) -> tuple[str, Any]:
    """Each value's confidence: held-out coverage of its band (leadml.ml.confidence).

    Versions trained before that existed fall back to their held-out R², one figure for all.
    """
    if bundle.value_confidence is not None:
        return "holdout_band_coverage", bundle.value_confidence.of(values)
    r2 = max(0.0, min(1.0, float(bundle.metrics.get("r2") or 0.0)))
    return "training_r2", [r2] * len(values)


def _score(
    bundle: ModelBundle, inputs: Any, *, explain: bool, batch: bool
) -> tuple[Any, tuple[Explainer, list[Explanation]] | str | None]:
    """Score the estimator inputs; with `explain`, also return the explanations.

    Explanations are an extra: when they fail or the version predates them, the scores
    are returned with the reason there are none.
    """
    if not explain:
        return bundle.predict_matrix(inputs), None
    budget = settings.LEADML_EXPLAIN_BATCH_MAX_ROWS if batch else settings.LEADML_EXPLAIN_MAX_ROWS
    try:
        explainer = explainer_for(bundle)
        if explainer is None:
            return bundle.predict_matrix(inputs), UNEXPLAINED_VERSION
        values, explanations = explainer.score_and_explain(inputs, max_rows_per_record=budget)
    except Exception as error:
        logger.exception("explanation_error algorithm=%s", bundle.algorithm)
        return bundle.predict_matrix(inputs), f"explanation failed: {error.__class__.__name__}"
    return values, (explainer, explanations)


def _add_reasons(
    outputs: list[RecordOutput],
    explained: tuple[Explainer, list[Explanation]] | str | None,
    records: Sequence[Mapping[str, Any]],
) -> None:
    """Give each output its `reasons` and `explanation` (method, baseline, unit)."""
    if not isinstance(explained, tuple):
        for output in outputs:
            output |= {"reasons": [], "explanation": {"method": "unavailable", "detail": explained}}
        return
    explainer, explanations = explained
    for output, explanation, record in zip(outputs, explanations, records):
        output["reasons"] = reasons_of(explanation, explainer, record)
        output["explanation"] = {
            "method": explanation.method,
            "baseline": round(explanation.baseline, 4),
            "unit": explainer.unit,
        }


def _rules_outputs(model_type: str, records: Sequence[Mapping[str, Any]], reason: str) -> ScoringResult:
    outputs = [_rules_output(model_type, record, reason) for record in records]
    top = _rules_top_features(outputs)
    return ScoringResult(
        model_type=model_type,
        source="rules",
        outputs=outputs,
        model_info={"model_path": None, "algorithm": "rules", "training_date": None},
        feature_importance={
            "top_features": top,
            "feature_count": len(top),
            "explanation_method": "rules",
        },
        model_version=None,
        fallback_reason=reason,
    )


def _rules_output(model_type: str, record: Mapping[str, Any], reason: str) -> RecordOutput:
    """One record's answer from the rule-based fallback (leadml.ml.rules)."""
    warnings = [f"scored by the rule-based fallback: {reason}"]
    if is_classification(model_type):
        scored = score_lead_by_rules(record)
        probability = scored.conversion_probability
        output: RecordOutput = {
            "source": "rules",
            "conversion_probability": round(probability, 6),
            "confidence": round(lead_confidence(probability), 6),
            "confidence_detail": {"value": round(class_probability(probability), 6), "method": "rules"},
            "prediction_class": prediction_class(probability),
            "score": scored.score,
            "tier": tier_for_percentile(float(scored.score)),
            "warnings": warnings,
        }
        reasons = scored.reasons
    else:
        estimated = estimate_lifetime_value_by_rules(record, as_of=record.get("as_of"))
        output = {
            "source": "rules",
            "lifetime_value": round(estimated.lifetime_value, 2),
            "confidence": estimated.confidence,
            "confidence_detail": {"value": estimated.confidence, "method": "rules_evidence"},
            "value_category": value_category(estimated.lifetime_value),
            "score": None,
            "tier": None,
            "warnings": warnings,
        }
        reasons = estimated.reasons
    output["fallback_reason"] = reason
    output["reasons"] = [
        {"feature": r.feature, "contribution": round(r.contribution, 4), "description": r.description} for r in reasons
    ]
    return output


def _rules_top_features(outputs: list[RecordOutput]) -> list[list[Any]]:
    """Rank the fields the rules used by their summed absolute contribution."""
    totals: dict[str, float] = {}
    for output in outputs:
        for reason in output["reasons"]:
            totals[reason["feature"]] = totals.get(reason["feature"], 0.0) + abs(reason["contribution"])
    grand = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda pair: pair[1], reverse=True)
    return [[name, round(weight / grand, 6)] for name, weight in ranked[:TOP_FEATURES]]


def _store(
    *,
    tenant: str,
    result: ScoringResult,
    records: Sequence[Mapping[str, Any]],
    entity_ids: Sequence[str],
    latency_ms: float,
    batch: bool,
) -> list[int]:
    rows = _log_rows(
        tenant, result, records, entity_ids, latency_ms=latency_ms, batch_id=uuid.uuid4() if batch else None
    )
    return predictions_insert(rows)


def _log_rows(
    tenant: str,
    result: ScoringResult,
    records: Sequence[Mapping[str, Any]],
    entity_ids: Sequence[str],
    *,
    latency_ms: float,
    batch_id: uuid.UUID | None,
) -> PredictionBatch:
    return PredictionBatch(
        tenant=tenant,
        model_type=result.model_type,
        model_version_id=result.model_version.pk if result.model_version else None,
        batch_id=batch_id,
        source=result.source,
        latency_ms=round(latency_ms, 3),
        created_at=timezone.now(),
        entity_ids=entity_ids,
        inputs=records,
        outputs=result.outputs,
        values=_served_values(result),
    )


def _served_values(result: ScoringResult) -> list[float]:
    """Each record's served figure (the probability or the value), the log's `value` column."""
    if is_classification(result.model_type):
        return [output["conversion_probability"] for output in result.outputs]
    return [output["lifetime_value"] for output in result.outputs]
