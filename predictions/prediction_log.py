"""Write many predictions at once, in one transaction, the fastest way the database allows.

PostgreSQL: a few rows (a `/predict`) go in with one `INSERT ... RETURNING id`, a single
round trip and atomic by itself, its values bound on the server (a prepared statement). More rows: the ids are drawn from the table's sequence
in one query, then the rows go in through COPY (psycopg 3), several times faster than a
multi-row INSERT for 10,000 predictions. The rows are sent as COPY text built here: JSON from orjson, the fields a
batch shares formatted once, so no value is adapted one at a time by psycopg. SQLite:
one `executemany` of rows adapted here, the ids read from the last one. Other
databases: `bulk_create`.

A scoring request's predictions share everything but their record (`PredictionBatch`);
`PredictionRow`s are for callers whose rows differ in more (the monitoring bench).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import psycopg
from django.db import connection, transaction
from psycopg.copy import QueuedLibpqWriter

from predictions.models import Prediction

# Columns in COPY order; `_copy_lines` must follow it.
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
# Up to this many rows, one INSERT beats the four round trips of BEGIN, nextval, COPY, COMMIT.
INSERT_MAX_ROWS = 32
# Rows per write to the COPY stream: the server parses one chunk while the next is built.
COPY_CHUNK_ROWS = 1000
# Above this many predictions, a batch is scored and stored part by part (`predictions_stream`).
STREAM_MIN_ROWS = 2000
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_NULL = b"\\N"
# COPY's text format: a backslash starts an escape, tab and newline end a field or row.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


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


@dataclass(frozen=True)
class PredictionBatch:
    """The predictions of one scoring request: shared fields once, then one entry per record."""

    tenant: str
    model_type: str
    model_version_id: int | None
    batch_id: UUID | None
    source: str
    latency_ms: float
    created_at: datetime
    entity_ids: Sequence[str]
    inputs: Sequence[Mapping[str, Any]]
    outputs: Sequence[Mapping[str, Any]]
    values: Sequence[float]

    def __len__(self) -> int:
        return len(self.entity_ids)

    def rows(self) -> Iterator[PredictionRow]:
        for entity_id, record, output, value in zip(self.entity_ids, self.inputs, self.outputs, self.values):
            yield PredictionRow(
                tenant=self.tenant,
                model_type=self.model_type,
                model_version_id=self.model_version_id,
                entity_id=entity_id,
                batch_id=self.batch_id,
                source=self.source,
                input=dict(record),
                output=dict(output),
                value=value,
                latency_ms=self.latency_ms,
                created_at=self.created_at,
            )


def predictions_insert(rows: Sequence[PredictionRow] | PredictionBatch) -> list[int]:
    """Store the rows atomically and return their ids, in order."""
    if not len(rows):
        return []
    if connection.vendor == "postgresql" and len(rows) <= INSERT_MAX_ROWS:
        return _insert_returning(rows)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            return _copy(rows)
        if connection.vendor == "sqlite" and isinstance(rows, PredictionBatch):
            return _sqlite_insert(rows)
        records = rows.rows() if isinstance(rows, PredictionBatch) else rows
        created = Prediction.objects.bulk_create([Prediction(**row.__dict__) for row in records], batch_size=2000)
    if created[0].pk is not None:
        return [prediction.pk for prediction in created]
    # Backends that do not return ids from bulk inserts: read them back by batch.
    batch_id = rows.batch_id if isinstance(rows, PredictionBatch) else rows[0].batch_id
    return list(Prediction.objects.filter(batch_id=batch_id).order_by("id").values_list("id", flat=True))


def _copy(rows: Sequence[PredictionRow] | PredictionBatch) -> list[int]:
    with connection.cursor() as cursor:
        ids = _ids_draw(cursor, len(rows))
        lines = _batch_lines(ids, rows) if isinstance(rows, PredictionBatch) else _row_lines(ids, rows)
        with _copy_open(cursor) as copy:
            for chunk in _chunks(lines, COPY_CHUNK_ROWS):
                copy.write(chunk)
    return ids


def _ids_draw(cursor: Any, count: int) -> list[int]:
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        [Prediction._meta.db_table, count],
    )
    return [row[0] for row in cursor.fetchall()]


@contextmanager
def _copy_open(cursor: Any) -> Iterator[Any]:
    """COPY into the log on the psycopg cursor under Django's wrapper (COPY is psycopg 3's own API).

    Errors are raised as Django's (IntegrityError, DataError, ...). The queued writer sends
    from a thread of its own, so the rows are built while the previous ones travel and the
    server parses them on its own core.
    """
    statement = f'COPY "{Prediction._meta.db_table}" ({", ".join(_COPY_COLUMNS)}) FROM STDIN'
    raw = cursor.cursor
    with connection.wrap_database_errors, raw.copy(statement, writer=QueuedLibpqWriter(raw)) as copy:
        yield copy


class PredictionStream:
    """The open COPY of `predictions_stream`: `write` a request's predictions part by part."""

    def __init__(self, ids: list[int], copy: Any) -> None:
        self._ids = ids
        self._copy = copy
        self.written = 0

    def write(self, part: PredictionBatch) -> list[int]:
        """Send these predictions on (stored when the stream closes); return their ids."""
        ids = self._ids[self.written : self.written + len(part)]
        if len(ids) != len(part):
            raise ValueError(f"{self.written + len(part)} predictions written to a stream of {len(self._ids)}")
        for chunk in _chunks(_batch_lines(ids, part), COPY_CHUNK_ROWS):
            self._copy.write(chunk)
        self.written += len(part)
        return ids


def streams(count: int) -> bool:
    """Whether `predictions_stream` serves this many predictions (PostgreSQL, a large batch)."""
    return connection.vendor == "postgresql" and count > STREAM_MIN_ROWS


@contextmanager
def predictions_stream(count: int) -> Iterator[PredictionStream]:
    """Store `count` predictions written part by part while the caller computes the next part.

    PostgreSQL only (`streams`). One transaction and one COPY: the ids are drawn first, the
    parts go to the server as they come, and nothing is stored unless all `count` were
    written and the block ends without an exception (which aborts the COPY and rolls back).
    """
    with transaction.atomic(), connection.cursor() as cursor:
        ids = _ids_draw(cursor, count)
        with _copy_open(cursor) as copy:
            stream = PredictionStream(ids, copy)
            yield stream
            if stream.written != count:
                raise ValueError(f"{stream.written} of {count} predictions written: none stored")


def _sqlite_insert(batch: PredictionBatch) -> list[int]:
    """One `executemany` of rows adapted here; call inside the transaction.

    `bulk_create` adapts every field of every row through the ORM and `json.dumps`; here
    the fields a batch shares are adapted once (as the ORM would: the UUID as hex, the
    time as UTC text) and the JSON comes from orjson. The ids: a transaction that has
    written holds SQLite's one write lock until it ends, so the rows took consecutive
    ids, ending at the last one inserted.
    """
    fields = Prediction._meta
    shared = (
        batch.tenant,
        batch.model_type,
        batch.model_version_id,
        fields.get_field("batch_id").get_db_prep_value(batch.batch_id, connection),
        batch.source,
        batch.latency_ms,
        fields.get_field("created_at").get_db_prep_value(batch.created_at, connection),
    )
    tenant, model_type, version, batch_id, source, latency, created = shared
    columns = _COPY_COLUMNS[1:]
    statement = (
        f'INSERT INTO "{fields.db_table}" ({", ".join(columns)}) VALUES ({", ".join(["%s"] * len(columns))})'
    )
    params = [
        (tenant, model_type, version, entity_id, batch_id, source, _json_text(record), _json_text(output), value,
         latency, created)
        for entity_id, record, output, value in zip(batch.entity_ids, batch.inputs, batch.outputs, batch.values)
    ]
    with connection.cursor() as cursor:
        cursor.executemany(statement, params)
        cursor.execute("SELECT last_insert_rowid()")
        last = cursor.fetchone()[0]
    return list(range(last - len(params) + 1, last + 1))


def _insert_returning(rows: Sequence[PredictionRow] | PredictionBatch) -> list[int]:
    """One multi-row INSERT: the statement is atomic on its own, and ids come back in VALUES order."""
    records = list(rows.rows()) if isinstance(rows, PredictionBatch) else rows
    columns = _COPY_COLUMNS[1:]
    placeholder = "(" + ", ".join("%s::jsonb" if name in ("input", "output") else "%s" for name in columns) + ")"
    params: list[Any] = []
    for row in records:
        params += [
            row.tenant, row.model_type, row.model_version_id, row.entity_id, row.batch_id, row.source,
            _json_text(row.input), _json_text(row.output), row.value, row.latency_ms, row.created_at,
        ]
    statement = (
        f'INSERT INTO "{Prediction._meta.db_table}" ({", ".join(columns)}) '
        f"VALUES {', '.join([placeholder] * len(records))} RETURNING id"
    )
    # A psycopg cursor of its own, binding on the server: Django's quotes every value into
    # the statement text (the JSON too), and the same text is parsed and planned anew for
    # every /predict, where a bound statement is prepared after a few executions.
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(statement, params)
        return [row[0] for row in cursor.fetchall()]


def _batch_lines(ids: Sequence[int], batch: PredictionBatch) -> Iterator[bytes]:
    """COPY text lines of a batch: the shared fields formatted once."""
    before_entity = b"\t".join((_text(batch.tenant), _text(batch.model_type), _number(batch.model_version_id)))
    before_input = b"\t".join((_uuid(batch.batch_id), _text(batch.source)))
    after_value = b"\t".join((_number(batch.latency_ms), _timestamp(batch.created_at)))
    for prediction_id, entity_id, record, output, value in zip(
        ids, batch.entity_ids, batch.inputs, batch.outputs, batch.values
    ):
        yield b"%d\t%b\t%b\t%b\t%b\t%b\t%b\t%b\n" % (
            prediction_id, before_entity, _text(entity_id), before_input, _json(record), _json(output),
            _number(value), after_value,
        )


def _row_lines(ids: Sequence[int], rows: Sequence[PredictionRow]) -> Iterator[bytes]:
    for prediction_id, row in zip(ids, rows):
        fields = (
            _number(prediction_id),
            _text(row.tenant),
            _text(row.model_type),
            _number(row.model_version_id),
            _text(row.entity_id),
            _uuid(row.batch_id),
            _text(row.source),
            _json(row.input),
            _json(row.output),
            _number(row.value),
            _number(row.latency_ms),
            _timestamp(row.created_at),
        )
        yield b"\t".join(fields) + b"\n"


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[bytes]:
    chunk: list[bytes] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    return value.translate(_COPY_ESCAPES).encode() if _needs_escape(value) else value.encode()


def _needs_escape(value: str) -> bool:
    return "\\" in value or "\t" in value or "\n" in value or "\r" in value


def _json_text(value: Any) -> str:
    """The value as JSON text (orjson; the standard library for what orjson refuses, as before)."""
    try:
        return orjson.dumps(value, option=_JSON_OPTIONS).decode()
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits, a lone surrogate
        return json.dumps(value)


def _json(value: Any) -> bytes:
    """The value as JSON (orjson; the standard library for what orjson refuses, as before), escaped for COPY."""
    try:
        encoded = orjson.dumps(value, option=_JSON_OPTIONS)
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits, a lone surrogate
        encoded = json.dumps(value).encode()
    # JSON escapes every control character, so a backslash is the only one COPY would misread.
    return encoded.replace(b"\\", b"\\\\") if b"\\" in encoded else encoded


def _number(value: float | int | None) -> bytes:
    if value is None:
        return _NULL
    return str(value).encode() if type(value) is int else repr(float(value)).encode()


def _uuid(value: UUID | None) -> bytes:
    return _NULL if value is None else str(value).encode()


def _timestamp(value: datetime | None) -> bytes:
    return _NULL if value is None else value.isoformat().encode()


def predictions_tenant_delete(*, tenant: str) -> int:
    """Delete a tenant's prediction log (see `tenant_delete`); return how many rows went."""
    deleted, _ = Prediction.objects.filter(tenant=tenant).delete()
    return deleted


def predictions_backdate(*, prediction_ids: Sequence[int], created_at: datetime) -> None:
    """Move stored predictions to another time: the demo's and the benches' made-up history."""
    Prediction.objects.filter(pk__in=list(prediction_ids)).update(created_at=created_at)
