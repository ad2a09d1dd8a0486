"""Operator-configured data sources: read a tenant's rows from the CRM's PostgreSQL, read-only.

README, "Training from the CRM's database". A source is a `DataSource` row (the admin,
or LEADML_DATA_SOURCES loaded by `data_sources_load_settings`). Its query runs with the
tenant as `%(user_id)s`, in a read-only session and transaction under a
`statement_timeout`, through psycopg on a connection of its own (never a Django
database alias). The URL holds credentials: messages carry `masked_url` and errors are
scrubbed of it (`secrets_redact`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from leadml.api.errors import ApplicationError
from training.models import Dataset, DataSource
from training.services.datasets import dataset_create, transactions_dataset_create
from training.source_defaults import defaults_for
from training.source_urls import secrets_redact, url_problem

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10
# Rows read per round trip from the server-side cursor.
FETCH_BATCH = 2000
# What a transaction log's query must return (one row per purchase).
TRANSACTION_COLUMNS = ("customer_id", "date", "amount")


class SourceError(ApplicationError):
    """The source could not be read: unreachable, refused, or its query failed. Nothing was stored."""

    def __init__(self, message: str, *, field: str = "training_config.source") -> None:
        super().__init__(message, details={field: [message]})


@dataclass(frozen=True)
class SourceRead:
    columns: list[str]
    rows: list[dict[str, Any]]
    query_sha256: str
    read_at: datetime


def query_sha256(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


def terminal_values(source: DataSource) -> list[str]:
    return [str(value) for value in [*source.positive_values, *source.negative_values]]


def source_query(
    *, source: DataSource, query: str, params: dict[str, Any], limit: int | None = None
) -> SourceRead:
    """Run one query of `source` read-only and return its rows as JSON values.

    At most `limit` rows are read (None: up to LEADML_MAX_UPLOAD_ROWS; more is an
    error, never a silent cut). SourceError when the database cannot be reached or the
    query fails; the message names the source and never its credentials.
    """
    cap = limit if limit is not None else settings.LEADML_MAX_UPLOAD_ROWS
    timeout_ms = max(1, int(source.statement_timeout_seconds)) * 1000
    read_at = timezone.now()
    try:
        with psycopg.connect(
            source.url,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="leadml",
            # The whole session is read-only and bounded, whatever the query says.
            options=f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}",
        ) as connection:
            connection.read_only = True  # BEGIN READ ONLY as well
            with connection.transaction():
                connection.execute("SET TRANSACTION READ ONLY")
                with connection.cursor(name=f"leadml_{uuid.uuid4().hex[:12]}") as cursor:
                    cursor.itersize = FETCH_BATCH
                    cursor.execute(query, params)
                    columns = [column.name for column in cursor.description or []]
                    fetched = cursor.fetchmany(cap + 1)
    except psycopg.OperationalError as error:
        if isinstance(error, psycopg.errors.QueryCanceled):
            raise SourceError(
                f"data source '{source.name}': the query ran past its statement_timeout of "
                f"{source.statement_timeout_seconds} s"
            ) from None
        message = _first_line(secrets_redact(str(error), source.url))
        logger.warning("data_source_unreachable source=%s url=%s error=%s", source.name, source.masked_url, message)
        raise SourceError(f"data source '{source.name}' ({source.masked_url}) cannot be reached: {message}") from None
    except psycopg.Error as error:
        message = _first_line(secrets_redact(str(error), source.url))
        logger.warning("data_source_query_failed source=%s error=%s", source.name, message)
        raise SourceError(f"data source '{source.name}': the query failed: {message}") from None
    if limit is None and len(fetched) > cap:
        raise SourceError(
            f"data source '{source.name}' returned more than {cap} rows for one tenant (LEADML_MAX_UPLOAD_ROWS)"
        )
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        raise SourceError(f"data source '{source.name}': the query returns columns twice: {', '.join(duplicates)}")
    rows = [{name: _json_value(value) for name, value in zip(columns, row)} for row in fetched[:cap]]
    return SourceRead(columns=columns, rows=rows, query_sha256=query_sha256(query), read_at=read_at)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["unknown error"])[0]


def _json_value(value: Any) -> Any:
    """A database value as the JSON an upload would carry (dates ISO 8601, decimals as floats)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = value.astimezone(dt_timezone.utc)
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds() / 86400
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    return str(value)


def source_rows_read(*, source: DataSource, tenant: str, limit: int | None = None) -> SourceRead:
    """The tenant's rows from the source's main query (one per lead, or per purchase)."""
    params = {"user_id": tenant, "terminal_values": terminal_values(source)}
    query = source.query if limit is None else f"SELECT * FROM (\n{source.query}\n) AS leadml_source LIMIT {int(limit)}"
    read = source_query(source=source, query=query, params=params, limit=limit)
    return SourceRead(read.columns, read.rows, query_sha256(source.query), read.read_at)


def source_changes_read(*, source: DataSource, tenant: str, since: datetime, limit: int) -> SourceRead:
    """The tenant's leads whose status became terminal at or after `since` (entity_id, outcome, changed_at)."""
    params = {"user_id": tenant, "since": since, "terminal_values": terminal_values(source)}
    read = source_query(source=source, query=source.changes_query, params=params, limit=limit)
    missing = [name for name in ("entity_id", "outcome", "changed_at") if name not in read.columns]
    if missing:
        raise SourceError(
            f"data source '{source.name}': changes_query must return entity_id, outcome and changed_at; "
            f"missing {', '.join(missing)}",
            field="changes_query",
        )
    return read


def data_source_resolve(*, reference: Any, model_type: str) -> DataSource:
    """The enabled source a tenant's `training_config.source` names (by name or id); 400 otherwise.

    The message never repeats what was sent: a tenant who pasted a URL with a password
    must not see it echoed (or logged) back.
    """
    field = "training_config.source"
    if not isinstance(reference, (str, int)) or isinstance(reference, bool) or not str(reference).strip():
        raise ApplicationError(
            "training_config.source must be the name or id of a data source the operator configured",
            details={field: ["not a data source name or id"]},
        )
    text = str(reference).strip()
    sources = DataSource.objects.filter(enabled=True)
    source = sources.filter(name=text).first()
    if source is None and text.isdigit():
        source = sources.filter(pk=int(text)).first()
    if source is None:
        raise ApplicationError(
            "training_config.source names no enabled data source; tenants name a source the operator "
            "configured, never a URL or a query",
            details={field: ["unknown data source"]},
        )
    if source.model_type != model_type:
        raise ApplicationError(
            f"data source '{source.name}' holds {source.model_type} data, not {model_type}",
            details={field: ["model_type mismatch"]},
        )
    return source


def data_source_default(*, model_type: str) -> DataSource | None:
    """The one enabled source of a model type (None when there is none); 400 when several could be meant."""
    sources = list(DataSource.objects.filter(enabled=True, model_type=model_type).order_by("name")[:20])
    if len(sources) > 1:
        names = ", ".join(source.name for source in sources)
        raise ApplicationError(
            f"several data sources hold {model_type} data ({names}); name one in training_config.source",
            details={"training_config.source": ["required: more than one data source"]},
        )
    return sources[0] if sources else None


def source_dataset_pull(*, source: DataSource, tenant: str) -> Dataset:
    """Read the tenant's rows from the source into a new dataset (kind `source`); all rows or none.

    Records: the target column labels a row when its value is a positive or negative
    one; any other value (an open status) leaves it unlabelled: stored, not trained on.
    Transactions: the purchase log becomes the per-customer table as an upload would,
    with `calibration_end` the source's horizon before today.
    """
    read = source_rows_read(source=source, tenant=tenant)
    if not read.rows:
        raise SourceError(f"data source '{source.name}' has no rows for user_id '{tenant}'")
    recorded = {
        "source": source.name,
        "source_id": source.pk,
        "source_kind": source.kind,
        "query_sha256": read.query_sha256,
        "read_at": read.read_at.isoformat(),
        "source_rows": len(read.rows),
    }
    name = f"{source.name} {read.read_at:%Y-%m-%d %H:%M:%S}"
    origin = f"data source {source.name}"
    if source.kind == DataSource.Kind.TRANSACTIONS:
        dataset = _transactions_dataset_pull(
            source=source, tenant=tenant, read=read, name=name, origin=origin, recorded=recorded
        )
    else:
        dataset = _records_dataset_pull(
            source=source, tenant=tenant, read=read, name=name, origin=origin, recorded=recorded
        )
    logger.info(
        "data_source_pulled source=%s tenant=%s dataset=%s rows=%s labelled=%s",
        source.name, tenant, dataset.pk, dataset.row_count, dataset.labelled_row_count,
    )
    return dataset


def _transactions_dataset_pull(
    *, source: DataSource, tenant: str, read: SourceRead, name: str, origin: str, recorded: dict[str, Any]
) -> Dataset:
    """A transaction source's rows as an uploaded purchase log would be stored: the query
    must name the three columns the per-customer table is built from, and the calibration
    ends the source's horizon before the read."""
    missing = [column for column in TRANSACTION_COLUMNS if column not in read.columns]
    if missing:
        raise SourceError(
            f"data source '{source.name}': a transaction query must return customer_id, date and amount; "
            f"missing {', '.join(missing)}"
        )
    return transactions_dataset_create(
        tenant=tenant,
        name=name,
        rows=read.rows,
        customer_column="customer_id",
        date_column="date",
        amount_column="amount",
        calibration_end=(read.read_at - timedelta(days=source.horizon_days)).date(),
        horizon_days=source.horizon_days,
        source_filename=origin,
        kind=Dataset.Kind.SOURCE,
        extra_source_config=recorded,
        data_source=source,
    )


def _records_dataset_pull(
    *, source: DataSource, tenant: str, read: SourceRead, name: str, origin: str, recorded: dict[str, Any]
) -> Dataset:
    """A records source's rows as an uploaded table would be stored, labelled by the
    source's positive and negative values (the negatives kept in its config: outcomes
    posted later are labelled by them too, an open status refused)."""
    return dataset_create(
        tenant=tenant,
        model_type=source.model_type,
        name=name,
        target=source.target_column,
        rows=read.rows,
        positive_values=list(source.positive_values) or None,
        negative_values=list(source.negative_values) or None,
        source_filename=origin,
        kind=Dataset.Kind.SOURCE,
        source_config={**recorded, "negative_values": list(source.negative_values)},
        data_source=source,
    )


# --- sources from the environment ---------------------------------------------------

SETTINGS_KEYS = {
    "name", "url", "url_env", "model_type", "kind", "query", "changes_query", "target_column", "positive_values",
    "negative_values", "horizon_days", "statement_timeout_seconds", "enabled",
}


def data_sources_load_settings(*, using: str = "default") -> list[DataSource]:
    """Create or update the sources LEADML_DATA_SOURCES describes (idempotent; run at migrate, `serve` and by the commands).

    Each entry: {name, url or url_env (the variable holding the URL), model_type, kind,
    and optionally query, changes_query, target_column, positive_values, negative_values,
    horizon_days, statement_timeout_seconds, enabled}; what is left out takes the
    defaults of training/source_defaults.py. A bad entry stops with an error naming it
    and never its URL.
    """
    import os

    loaded = []
    for index, entry in enumerate(settings.LEADML_DATA_SOURCES):
        where = f"LEADML_DATA_SOURCES[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object")
        unknown = sorted(set(entry) - SETTINGS_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(SETTINGS_KEYS))}")
        url = entry.get("url") or os.environ.get(str(entry.get("url_env") or ""), "")
        if not url:
            raise ValueError(f"{where}: give url, or url_env naming a variable that holds it")
        if url_problem(url):
            raise ValueError(f"{where}: url {url_problem(url)}")
        model_type = entry.get("model_type", "lead_conversion")
        kind = entry.get("kind", DataSource.Kind.RECORDS)
        values = {**defaults_for(model_type=model_type, kind=kind)}
        values |= {key: entry[key] for key in SETTINGS_KEYS - {"name", "url", "url_env"} if key in entry}
        # A missing name stays None here, and full_clean below says so.
        values |= {"name": entry.get("name"), "url": url, "model_type": model_type, "kind": kind, "from_settings": True}
        source = DataSource.objects.using(using).filter(name=entry.get("name")).first() or DataSource()
        for key, value in values.items():
            setattr(source, key, value)
        try:
            source.full_clean(exclude=["last_sync_status"])
        except ValidationError as error:
            problems = json.dumps({key: [str(m) for m in messages] for key, messages in error.message_dict.items()})
            raise ValueError(f"{where} ({entry.get('name')!r}): {problems}") from None
        with transaction.atomic(using=using):
            source.save(using=using)
        loaded.append(source)
    return loaded


def data_source_sync_record(*, source: DataSource, errors: list[str], rows_read: int, outcomes_recorded: int) -> None:
    """Store how the source's last outcome sync went over all its tenants (the admin list, /health)."""
    DataSource.objects.filter(pk=source.pk).update(
        last_sync_at=timezone.now(),
        last_sync_status=DataSource.SyncStatus.FAILED if errors else DataSource.SyncStatus.OK,
        last_sync_error="; ".join(errors[:5]),
        last_sync_rows_read=rows_read,
        last_sync_outcomes_recorded=outcomes_recorded,
        outcomes_recorded_total=F("outcomes_recorded_total") + outcomes_recorded,
    )
