"""Write many predictions at once, in one transaction, the fastest way the database allows.

PostgreSQL: the ids are drawn from the table's sequence in one query, then the rows go
in through COPY (psycopg 3), several times faster than a multi-row INSERT for 10,000
predictions. Other databases: `bulk_create`.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection, transaction

from predictions.models import Prediction

# Columns in COPY order; `_copy_row` must follow it.
_COPY_COLUMNS = (
    "id",
    "tenant",
    "model_type",
    "model_version_id",
    "entity_id",
    "batch_id",
    "source",
    "input",
    "output",
    "value",
    "latency_ms",
    "created_at",
)


@dataclass(frozen=True)
class PredictionRow:
    """One prediction to store: what `Prediction` holds, minus the id."""

    tenant: str
    model_type: str
    model_version_id: int | None
    entity_id: str
    batch_id: UUID | None
    source: str
    input: dict[str, Any]
    output: dict[str, Any]
    value: float
    latency_ms: float
    created_at: datetime


def predictions_insert(rows: Sequence[PredictionRow]) -> list[int]:
    """Store the rows atomically and return their ids, in order."""
    if not rows:
        return []
    with transaction.atomic():
        if connection.vendor == "postgresql":
            return _copy(rows)
        created = Prediction.objects.bulk_create(
            [Prediction(**row.__dict__) for row in rows], batch_size=2000
        )
    if created[0].pk is not None:
        return [prediction.pk for prediction in created]
    # Backends that do not return ids from bulk inserts: read them back by batch.
    batch_id = rows[0].batch_id
    return list(Prediction.objects.filter(batch_id=batch_id).order_by("id").values_list("id", flat=True))


def _copy(rows: Sequence[PredictionRow]) -> list[int]:
    table = Prediction._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(rows)]
        )
        ids = [row[0] for row in cursor.fetchall()]
        # The psycopg cursor under Django's wrapper (COPY is psycopg 3's own API), with
        # its errors raised as Django's (IntegrityError, DataError, ...).
        statement = f'COPY "{table}" ({", ".join(_COPY_COLUMNS)}) FROM STDIN'
        with connection.wrap_database_errors, cursor.cursor.copy(statement) as copy:
            for prediction_id, row in zip(ids, rows):
                copy.write_row(_copy_row(prediction_id, row))
    return ids


def _copy_row(prediction_id: int, row: PredictionRow) -> tuple[Any, ...]:
    return (
        prediction_id,
        row.tenant,
        row.model_type,
        row.model_version_id,
        row.entity_id,
        row.batch_id,
        row.source,
        json.dumps(row.input),
        json.dumps(row.output),
        row.value,
        row.latency_ms,
        row.created_at,
    )
