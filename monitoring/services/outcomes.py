"""Record what really happened to scored leads and customers (README, "Monitoring and retraining").

Each outcome is linked to the latest prediction made for its entity and appended to the
tenant's training rows (the prediction's input plus the outcome, `source=outcome`), so
live metrics can be computed and the next retrain learns from it. Items are checked one
by one and refused by index with a reason; the accepted ones are stored in one
transaction. The same outcome sent again is stored once; a different outcome for an
entity that already has one replaces it (a lost lead that is won later).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from leadml.ml.targets import KNOWN_NEGATIVE, KNOWN_POSITIVE, normalise_label_text
from leadml.ml.types import is_classification
from monitoring.models import Outcome
from predictions.models import Prediction
from predictions.public_ids import MAX_ID as PUBLIC_MAX_ID
from predictions.public_ids import internal_id
from registry.selectors import model_version_get_active
from training.models import Dataset, DatasetRow
from training.selectors import dataset_for_outcomes, dataset_target_values
from training.services.outcome_rows import RowChange, outcome_rows_write, outcomes_dataset_lock

logger = logging.getLogger(__name__)

# Outcomes observed before this year are refused as typos.
EARLIEST_OBSERVED = 1970
# Largest id a prediction can have (a 64-bit primary key).
MAX_PREDICTION_ID = PUBLIC_MAX_ID
# Distinct target values read to recognise a tenant's own "not converted" statuses.
TARGET_VALUES_LIMIT = 1000


@dataclass
class OutcomesResult:
    accepted: int = 0
    stored: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    dataset_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "success": True,
            "accepted": self.accepted,
            "stored": self.stored,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "dataset_id": self.dataset_id,
        }


@dataclass
class _Item:
    index: int
    entity_id: str
    prediction_id: int | None  # the public id sent (predictions.public_ids)
    value: Any
    observed_at: datetime
    label: float = math.nan
    prediction: Prediction | None = None

    @property
    def entity_key(self) -> str:
        """One outcome per entity: the CRM id the prediction carried, else that prediction."""
        if self.prediction is not None:
            return self.prediction.entity_id or f"prediction:{self.prediction.pk}"
        return self.entity_id or f"prediction:{internal_id(self.prediction_id or 0)}"


class _Rejected(Exception):
    pass


def outcomes_record(*, tenant: str, model_type: str, items: Sequence[Any]) -> OutcomesResult:
    """Validate, link and store outcomes; refuse bad items by index, never the whole call."""
    result = OutcomesResult()
    now = timezone.now()
    dataset = _target_dataset(tenant=tenant, model_type=model_type)
    parsed: list[_Item] = []
    for index, raw in enumerate(items):
        try:
            parsed.append(_parse(index, raw, model_type=model_type, dataset=dataset, now=now))
        except _Rejected as error:
            result.rejected.append({"index": index, "error": str(error)})
    linked = _link(parsed, tenant=tenant, model_type=model_type, rejected=result.rejected)
    result.rejected.sort(key=lambda rejection: rejection["index"])
    if linked:
        _store(linked, tenant=tenant, model_type=model_type, dataset=dataset, result=result)
    result.accepted = result.stored + result.updated + result.duplicates
    logger.info(
        "outcomes_recorded tenant=%s model_type=%s stored=%s updated=%s duplicates=%s rejected=%s",
        tenant,
        model_type,
        result.stored,
        result.updated,
        result.duplicates,
        len(result.rejected),
    )
    return result


def _parse(index: int, raw: Any, *, model_type: str, dataset: Dataset | None, now: datetime) -> _Item:
    if not isinstance(raw, Mapping):
        raise _Rejected("each outcome must be a JSON object")
    entity_id = raw.get("entity_id")
    entity_id = "" if entity_id is None or (isinstance(entity_id, float) and math.isnan(entity_id)) else entity_id
    if isinstance(entity_id, float) and entity_id.is_integer():
        entity_id = int(entity_id)  # a CSV column of ids read as numbers
    entity_id = str(entity_id).strip()
    max_length = Outcome._meta.get_field("entity_id").max_length
    if max_length is not None and len(entity_id) > max_length:
        raise _Rejected("entity_id is longer than 200 characters")
    prediction_id = _prediction_id(raw.get("prediction_id"))
    if not entity_id and prediction_id is None:
        raise _Rejected("give entity_id (the lead or customer id) or prediction_id")
    if "outcome" not in raw or _blank(raw["outcome"]):
        raise _Rejected("outcome is required")
    value = raw["outcome"]
    label = _label(value, model_type=model_type, dataset=dataset)
    observed_at = _observed_at(raw.get("observed_at"), now)
    return _Item(index=index, entity_id=entity_id, prediction_id=prediction_id, value=value, observed_at=observed_at, label=label)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and math.isnan(value)
    )


def _prediction_id(value: Any) -> int | None:
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise _Rejected("prediction_id must be an integer")
    if isinstance(value, int):
        number: float | int = value
    else:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise _Rejected(f"prediction_id must be an integer, got {value!r}") from None
        if not number.is_integer():
            raise _Rejected(f"prediction_id must be a positive integer, got {value!r}")
    if not 1 <= number <= MAX_PREDICTION_ID:
        raise _Rejected(f"prediction_id must be a positive integer up to {MAX_PREDICTION_ID}, got {value!r}")
    return int(number)


def _label(value: Any, *, model_type: str, dataset: Dataset | None) -> float:
    """The outcome as a model label, read the way the tenant's training data spells it."""
    if isinstance(value, (dict, list)):
        raise _Rejected("outcome must be a single value")
    if not is_classification(model_type):
        number = None
        if not isinstance(value, bool):
            try:
                number = float(str(value).strip().replace(",", "")) if isinstance(value, str) else float(value)
            except (TypeError, ValueError, OverflowError):
                number = None
        if number is None or not math.isfinite(number):
            raise _Rejected(f"outcome must be a number (the customer's realised value), got {value!r}")
        if number < 0:
            raise _Rejected(f"outcome must not be negative for customer_lifetime_value, got {number:g}")
        return number
    text = normalise_label_text(value)
    positive_values = dataset.positive_values if dataset is not None else []
    positives = [normalise_label_text(item) for item in positive_values]
    negatives = (dataset.source_config or {}).get("negative_values") if dataset is not None else None
    if positives and negatives:
        # Read from a data source: its statuses say converted, not converted, or still open.
        if text in positives:
            return 1.0
        if text in KNOWN_NEGATIVE or text in {normalise_label_text(item) for item in negatives}:
            return 0.0
        raise _Rejected(
            f"outcome {value!r} is neither one of this tenant's positive_values {positive_values} nor "
            f"a negative one {negatives} (an open status is no outcome yet)"
        )
    if dataset is not None and positives:
        if text in positives:
            return 1.0
        if text in KNOWN_NEGATIVE or text in _target_values(dataset):
            return 0.0
        raise _Rejected(
            f"outcome {value!r} is neither one of this tenant's positive_values {positive_values} nor "
            "a value its training data uses for no conversion (or no/false/0/lost)"
        )
    if text in KNOWN_POSITIVE:
        return 1.0
    if text in KNOWN_NEGATIVE:
        return 0.0
    raise _Rejected(
        f"outcome {value!r} does not say whether the lead converted; send true/false, yes/no, 1/0, "
        "won/lost (or upload training data with positive_values naming your statuses)"
    )


def _target_values(dataset: Dataset) -> set[str]:
    """The target values the dataset's uploaded rows use (cached on the instance for the call)."""
    cached = getattr(dataset, "_target_values", None)
    if cached is None:
        values = dataset_target_values(dataset=dataset, limit=TARGET_VALUES_LIMIT)
        cached = {text for text in map(normalise_label_text, values) if text is not None}
        # A cache for this request's items on the instance, not a field: django-stubs knows no such attribute.
        dataset._target_values = cached  # type: ignore[attr-defined]
    return cached


def _observed_at(value: Any, now: datetime) -> datetime:
    if _blank(value):
        return now
    text = str(value).strip()
    try:
        parsed = parse_datetime(text)
        if parsed is None:
            day = parse_date(text)
            if day is None:
                raise ValueError("not ISO 8601")
            parsed = datetime(day.year, day.month, day.day)
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, dt_timezone.utc)
        parsed = parsed.astimezone(dt_timezone.utc)
    except (ValueError, OverflowError) as error:
        raise _Rejected(f"observed_at must be an ISO 8601 date or time, got {value!r} ({error})") from None
    if not EARLIEST_OBSERVED <= parsed.year <= now.year + 1:
        raise _Rejected(f"observed_at {value!r} is not a plausible date (years {EARLIEST_OBSERVED} to {now.year + 1})")
    return parsed


def _link(items: list[_Item], *, tenant: str, model_type: str, rejected: list[dict[str, Any]]) -> list[_Item]:
    """Attach each item's prediction; refuse ids that are unknown or not this tenant's."""
    scope = Prediction.objects.filter(tenant=tenant, model_type=model_type)
    wanted_ids = {item.prediction_id: internal_id(item.prediction_id) for item in items if item.prediction_id}
    found = scope.in_bulk({number for number in wanted_ids.values() if number is not None})
    by_id = {public: found[number] for public, number in wanted_ids.items() if number in found}
    wanted_entities = {item.entity_id for item in items if item.entity_id and item.prediction_id is None}
    latest: dict[str, tuple[Any, int]] = {}
    for entity_id, pk, created_at in scope.filter(entity_id__in=wanted_entities).values_list(
        "entity_id", "pk", "created_at"
    ):
        if entity_id not in latest or (created_at, pk) > latest[entity_id]:
            latest[entity_id] = (created_at, pk)
    by_entity_pk = {entity_id: pk for entity_id, (_, pk) in latest.items()}
    by_pk = scope.in_bulk(set(by_entity_pk.values()))

    linked: list[_Item] = []
    for item in items:
        if item.prediction_id is not None:
            prediction = by_id.get(item.prediction_id)
            if prediction is None:
                rejected.append(
                    {"index": item.index, "error": f"prediction_id {item.prediction_id} is not a {model_type} prediction of this user_id"}
                )
                continue
            if item.entity_id and prediction.entity_id and item.entity_id != prediction.entity_id:
                rejected.append(
                    {
                        "index": item.index,
                        "error": f"prediction {item.prediction_id} was made for entity_id {prediction.entity_id!r}, not {item.entity_id!r}",
                    }
                )
                continue
            # Stored as the prediction's own id (blank when it had none), so live metrics
            # pair the two whichever way the outcome named it.
            item.entity_id = prediction.entity_id
        else:
            prediction = by_pk.get(by_entity_pk.get(item.entity_id))
            if prediction is None:
                rejected.append(
                    {"index": item.index, "error": f"no {model_type} prediction was made for entity_id {item.entity_id!r}"}
                )
                continue
        item.prediction = prediction
        linked.append(item)
    return linked


def _target_dataset(*, tenant: str, model_type: str) -> Dataset | None:
    active = model_version_get_active(tenant=tenant, model_type=model_type)
    return dataset_for_outcomes(tenant=tenant, model_type=model_type, active=active)


@transaction.atomic
def _store(items: list[_Item], *, tenant: str, model_type: str, dataset: Dataset | None, result: OutcomesResult) -> None:
    dataset = outcomes_dataset_lock(tenant=tenant, model_type=model_type, dataset=dataset)
    result.dataset_id = str(dataset.pk)
    existing = {
        outcome.entity_key: outcome
        for outcome in Outcome.objects.select_related("dataset_row").filter(
            tenant=tenant, model_type=model_type, entity_key__in={item.entity_key for item in items}
        )
    }
    # Outcomes that get a new training row, by entity, in the order the rows are written.
    pending: dict[str, tuple[Outcome, _Item]] = {}
    new_outcomes: list[Outcome] = []
    changed_outcomes: dict[int, Outcome] = {}
    changed_rows: dict[int, RowChange] = {}
    superseded: list[DatasetRow] = []  # rows of datasets outcomes no longer join, replaced here
    for item in items:
        outcome = existing.get(item.entity_key)
        # An outcome's row must live in the dataset outcomes now join (the active model's):
        # one deleted, or left in a dataset the model no longer trains on, is written again.
        # A row this call is about to write is current too.
        row_pending = item.entity_key in pending
        row = outcome.dataset_row if outcome is not None and not row_pending else None
        row_current = row_pending or (row is not None and row.dataset_id == dataset.pk)
        if outcome is not None and outcome.label == item.label and outcome.value == item.value and row_current:
            result.duplicates += 1
            continue
        if outcome is None:
            outcome = Outcome(tenant=tenant, model_type=model_type, entity_id=item.entity_id, entity_key=item.entity_key)
            new_outcomes.append(outcome)
            existing[item.entity_key] = outcome  # a repeat within the same call updates it in memory
            result.stored += 1
        else:
            if outcome.pk is not None:
                changed_outcomes[outcome.pk] = outcome
            result.updated += 1
        _fill(outcome, item)
        if row is not None and row_current:
            changed_rows[row.pk] = RowChange(row=row, data=_training_row(item, dataset.target), label=item.label)
        else:
            if row is not None:
                superseded.append(row)
            pending[item.entity_key] = (outcome, item)
    new_rows = outcome_rows_write(
        dataset=dataset,
        new=[(_training_row(item, dataset.target), item.label) for _, item in pending.values()],
        changed=list(changed_rows.values()),
        superseded=superseded,
    )
    for (outcome, _), row in zip(pending.values(), new_rows, strict=True):
        outcome.dataset_row = row
    Outcome.objects.bulk_create(new_outcomes, batch_size=2000)
    Outcome.objects.bulk_update(
        list(changed_outcomes.values()),
        ["value", "label", "observed_at", "prediction", "model_version", "dataset_row", "updated_at"],
        batch_size=2000,
    )


def _training_row(item: _Item, target: str) -> dict[str, Any]:
    """The prediction's input as a training record, with the outcome in the target column."""
    source = item.prediction.input if item.prediction is not None else {}
    data = {key: value for key, value in source.items() if not isinstance(value, (dict, list))}
    data[target] = item.value
    return data


def _fill(outcome: Outcome, item: _Item) -> None:
    outcome.value = item.value
    outcome.label = item.label
    outcome.observed_at = item.observed_at
    outcome.prediction = item.prediction
    outcome.model_version_id = item.prediction.model_version_id if item.prediction else None
    outcome.updated_at = timezone.now()  # bulk_update does not run auto_now
