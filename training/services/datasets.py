"""Ingest training data: parse CSV or JSON rows, validate, report quality, store atomically."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from leadml.api.errors import ApplicationError, PayloadTooLargeError
from leadml.api.records import records_check
from leadml.api.uploads import columns_check
from leadml.ml.errors import DataError, RecordsError
from leadml.ml.nested import flatten_records
from leadml.ml.quality import quality_report
from leadml.ml.targets import check_trainable, encode_target, normalise_label_text
from leadml.ml.transactions import FEATURE_DESCRIPTIONS, TransactionColumns, TransactionLog, read_transactions, training_table
from leadml.ml.transactions import TARGET_NAME as TRANSACTION_TARGET
from leadml.ml.types import CUSTOMER_LIFETIME_VALUE
from training.models import Dataset, DataSource, DatasetRow, TrainingJob

logger = logging.getLogger(__name__)
# Rows per insert transaction: short enough that SQLite's one write lock is never held long.
ROW_INSERT_BATCH = 2000
# A dataset still `loading` after this long was abandoned by a process that died.
STALE_LOAD_SECONDS = 3600


def rows_validate(rows: Sequence[Any]) -> list[dict[str, Any]]:
    if not rows:
        raise ApplicationError("rows is empty", details={"rows": ["at least one row is required"]})
    records_check(rows, field="rows")
    return list(rows)


def _records_read(
    rows: list[dict[str, Any]],
    *,
    target: str,
    model_type: str,
    positive_values: Sequence[Any] | None,
    negative_values: Sequence[Any] | None = None,
) -> tuple[list[dict[str, Any]], pd.DataFrame, pd.Series, list[str]]:
    """Check an upload's size and target column; return its rows, frame, labels and columns.

    The rows come back flattened (object fields into `field.key` columns,
    leadml.ml.nested): what is stored is what training reads. With `negative_values`
    (a data source's), a lead whose target is neither positive nor negative (an open
    status) is unlabelled: stored, never trained on.
    """
    rows = flatten_records(rows)
    if len(rows) > settings.LEADML_MAX_UPLOAD_ROWS:
        raise PayloadTooLargeError(
            f"{len(rows)} rows exceed the limit of {settings.LEADML_MAX_UPLOAD_ROWS} rows per upload",
            details={"rows": ["too many rows"]},
        )
    columns: list[str] = list(dict.fromkeys(key for row in rows for key in row))
    columns_check(len(columns), field="rows")
    if target not in columns:
        raise ApplicationError(
            f"target column '{target}' is not in the data; columns are: {', '.join(columns)}",
            details={"target": [f"column '{target}' not found"]},
        )
    frame = pd.DataFrame.from_records(rows, columns=columns)
    try:
        labels = encode_target(frame[target], model_type=model_type, positive_values=positive_values)
    except DataError as error:
        raise ApplicationError(error.message, details={error.field or "rows": [error.message]}) from error
    if negative_values and positive_values:
        known = {normalise_label_text(value) for value in [*positive_values, *negative_values]}
        open_rows = ~frame[target].map(normalise_label_text).isin(known)
        labels = labels.mask(open_rows)
    return rows, frame, labels, columns


def dataset_create(
    *,
    tenant: str,
    model_type: str,
    name: str,
    target: str,
    rows: list[dict[str, Any]],
    positive_values: list[Any] | None = None,
    source_filename: str = "",
    kind: str = Dataset.Kind.RECORDS,
    source_config: dict[str, Any] | None = None,
    negative_values: list[Any] | None = None,
    data_source: DataSource | None = None,
) -> Dataset:
    """Validate records and store them with their labels; all rows or none.

    The quality report is computed before anything is written, and the rows go in in
    short transactions (on SQLite each holds the one write lock, which every other
    request needs) under a dataset marked `loading`, which nothing reads; one last
    update makes it `ready`. A failure on the way deletes what was written.
    """
    rows, frame, labels, columns = _records_read(
        rows, target=target, model_type=model_type, positive_values=positive_values, negative_values=negative_values
    )
    _trainable_check(labels, model_type=model_type)
    report = _upload_quality_report(
        frame, labels, target=target, model_type=model_type, kind=kind, source_config=source_config
    )
    dataset = Dataset(
        tenant=tenant,
        model_type=model_type,
        name=name,
        target=target,
        positive_values=list(positive_values or []),
        columns=columns,
        row_count=len(rows),
        labelled_row_count=report["labelled_rows"],
        quality_report=report,
        source_filename=source_filename,
        kind=kind,
        source_config=source_config or {},
        status=Dataset.Status.LOADING,
        data_source=data_source,
    )
    _dataset_store(dataset, rows, labels)
    logger.info(
        "dataset_created id=%s tenant=%s model_type=%s rows=%s labelled=%s",
        dataset.id,
        tenant,
        model_type,
        dataset.row_count,
        dataset.labelled_row_count,
    )
    return dataset


def _upload_quality_report(
    frame: pd.DataFrame,
    labels: pd.Series,
    *,
    target: str,
    model_type: str,
    kind: str,
    source_config: dict[str, Any] | None,
) -> dict[str, Any]:
    """The quality report of a new dataset, computed before anything is written.

    A transaction table's columns (from a log upload or a transaction source) are trusted:
    the service built them from purchases before the cut-off, so they cannot leak.
    """
    from_transactions = kind == Dataset.Kind.TRANSACTIONS or (source_config or {}).get("source_kind") == "transactions"
    trusted = FEATURE_DESCRIPTIONS if from_transactions else ()
    return quality_report(frame.drop(columns=[target]), labels, model_type=model_type, trusted=trusted)


def _dataset_store(dataset: Dataset, rows: list[dict[str, Any]], labels: pd.Series) -> None:
    """Save a new dataset `loading`, write its rows, then mark it `ready`; all rows or none.

    Nothing reads a `loading` dataset, so the rows can go in short transactions (SQLite's
    one write lock is never held long); a failure on the way deletes what was written.
    """
    dataset.full_clean()
    _stale_loads_delete(tenant=dataset.tenant)
    dataset.save()
    try:
        _rows_write(dataset, rows, labels)
        Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.READY)
    except BaseException:
        Dataset.objects.filter(pk=dataset.pk).delete()
        raise
    dataset.status = Dataset.Status.READY


def _trainable_check(labels: pd.Series, *, model_type: str) -> None:
    try:
        check_trainable(
            labels,
            model_type=model_type,
            min_rows=settings.LEADML_MIN_ROWS,
            min_rows_per_class=settings.LEADML_MIN_ROWS_PER_CLASS,
        )
    except DataError as error:
        raise ApplicationError(error.message, details={error.field or "rows": [error.message]}) from error


def _rows_write(dataset: Dataset, rows: list[dict[str, Any]], labels: pd.Series) -> None:
    """A new dataset's rows, in short transactions (SQLite's one write lock is never held long)."""
    label_values = [None if pd.isna(value) else float(value) for value in labels]
    row_source = DatasetRow.Source.DATA_SOURCE if dataset.kind == Dataset.Kind.SOURCE else DatasetRow.Source.UPLOAD
    for start in range(0, len(rows), ROW_INSERT_BATCH):
        with transaction.atomic():
            DatasetRow.objects.bulk_create(
                DatasetRow(
                    dataset=dataset,
                    tenant=dataset.tenant,
                    model_type=dataset.model_type,
                    row_number=number,
                    data=row,
                    label=label,
                    source=row_source,
                )
                for number, row, label in zip(
                    range(start, start + ROW_INSERT_BATCH),
                    rows[start : start + ROW_INSERT_BATCH],
                    label_values[start : start + ROW_INSERT_BATCH],
                )
            )


def _stale_loads_delete(*, tenant: str) -> None:
    """Remove datasets left `loading` by a process that died while writing them."""
    cutoff = timezone.now() - timedelta(seconds=STALE_LOAD_SECONDS)
    Dataset.objects.filter(tenant=tenant, status=Dataset.Status.LOADING, created_at__lt=cutoff).delete()


def dataset_rows_append(*, dataset: Dataset, rows: list[dict[str, Any]]) -> int:
    """Append uploaded records to a dataset (target read as at creation); all rows or none.

    The quality report is recomputed over every row of the dataset afterwards.
    """
    if dataset.kind != Dataset.Kind.RECORDS:
        raise ApplicationError("rows can only be appended to a records dataset", details={"dataset": ["kind is transactions"]})
    if not rows:
        raise ApplicationError("no rows to append", details={"file": ["no data rows"]})
    rows, _, labels, columns = _records_read(
        rows, target=dataset.target, model_type=dataset.model_type, positive_values=dataset.positive_values
    )
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        start = (locked.rows.aggregate(last=Max("row_number"))["last"] or -1) + 1
        DatasetRow.objects.bulk_create(
            (
                DatasetRow(
                    dataset=locked,
                    tenant=locked.tenant,
                    model_type=locked.model_type,
                    row_number=start + offset,
                    data=row,
                    label=None if pd.isna(label) else float(label),
                )
                for offset, (row, label) in enumerate(zip(rows, labels))
            ),
            batch_size=ROW_INSERT_BATCH,
        )
        Dataset.objects.filter(pk=locked.pk).update(
            row_count=start + len(rows),
            labelled_row_count=F("labelled_row_count") + int(labels.notna().sum()),
            columns=list(dict.fromkeys([*locked.columns, *columns])),
        )
    # The report over every row is computed outside the write transaction (it may take
    # seconds on a large dataset); until it is stored the previous one stays.
    dataset_report_refresh(dataset=locked)
    logger.info("dataset_rows_appended id=%s rows=%s", locked.pk, len(rows))
    return len(rows)


def dataset_report_refresh(*, dataset: Dataset) -> None:
    """Recompute a dataset's quality report over all its rows and store it."""
    all_rows = list(dataset.rows.values_list("data", "label"))
    everything = pd.DataFrame.from_records([data for data, _ in all_rows])
    all_labels = pd.Series([label for _, label in all_rows], dtype=float)
    report = quality_report(
        everything.drop(columns=[dataset.target], errors="ignore"), all_labels, model_type=dataset.model_type
    )
    Dataset.objects.filter(pk=dataset.pk).update(
        row_count=len(all_rows), labelled_row_count=int(all_labels.notna().sum()), quality_report=report
    )


def transactions_dataset_create(
    *,
    tenant: str,
    name: str,
    rows: list[dict[str, Any]],
    customer_column: str,
    date_column: str,
    amount_column: str,
    calibration_end: date,
    horizon_days: int,
    source_filename: str = "",
    kind: str = Dataset.Kind.TRANSACTIONS,
    extra_source_config: dict[str, Any] | None = None,
    data_source: DataSource | None = None,
) -> Dataset:
    """Build the per-customer CLV training table from a transaction log and store it.

    Features are as of `calibration_end`; the target is each customer's net spend over
    the following `horizon_days` (refunds and cancellations netted).
    """
    log_columns = TransactionColumns(customer_column, date_column, amount_column)
    frame = _transaction_log_frame(rows, log_columns)
    read, table = _transactions_table(frame, log_columns, calibration_end=calibration_end, horizon_days=horizon_days)
    log = read.log
    source_config = {
        "customer_column": customer_column,
        "date_column": date_column,
        "amount_column": amount_column,
        "calibration_end": calibration_end.isoformat(),
        "horizon_days": horizon_days,
        "transactions": len(rows),
        # Lines without a customer id (guest purchases) are left out, and counted here.
        "skipped_without_customer": read.skipped_without_customer,
        "skipped_amount": round(read.skipped_amount, 2),
        "customers": len(table),
        "first_date": log["date"].min().date().isoformat(),
        "last_date": log["date"].max().date().isoformat(),
        "feature_descriptions": FEATURE_DESCRIPTIONS,
        **(extra_source_config or {}),
    }
    return dataset_create(
        tenant=tenant,
        model_type=CUSTOMER_LIFETIME_VALUE,
        name=name,
        target=TRANSACTION_TARGET,
        rows=table,
        source_filename=source_filename,
        kind=kind,
        source_config=source_config,
        data_source=data_source,
    )


def _transaction_log_frame(rows: list[dict[str, Any]], log_columns: TransactionColumns) -> pd.DataFrame:
    """A transaction log's rows as a frame, refused when too long or without the three named
    columns (each missing one named with the columns there are, so the tenant fixes the map)."""
    if len(rows) > settings.LEADML_MAX_UPLOAD_ROWS:
        raise PayloadTooLargeError(
            f"{len(rows)} transactions exceed the limit of {settings.LEADML_MAX_UPLOAD_ROWS} rows per upload",
            details={"rows": ["too many rows"]},
        )
    columns = list(dict.fromkeys(key for row in rows for key in row))
    for field, column in (("customer_column", log_columns.customer), ("date_column", log_columns.date),
                          ("amount_column", log_columns.amount)):
        if column not in columns:
            raise ApplicationError(
                f"{field} '{column}' is not a column of the log; columns are: {', '.join(columns)}",
                details={field: [f"column '{column}' not found"]},
            )
    return pd.DataFrame.from_records(rows, columns=columns)


def _transactions_table(
    frame: pd.DataFrame, log_columns: TransactionColumns, *, calibration_end: date, horizon_days: int
) -> tuple[TransactionLog, list[dict[str, Any]]]:
    """The log read and the per-customer training table (target included) as JSON rows.

    The ML core's errors become the API's; every unreadable line is named, so the tenant
    fixes the export once, not once per line.
    """
    try:
        read = read_transactions(frame, log_columns)
        features, target = training_table(read.log, calibration_end=calibration_end, horizon_days=horizon_days)
    except RecordsError as error:
        details = {error.field or "rows": [error.message]}
        for field_name, message in error.problems:
            details.setdefault(field_name, []).append(message)
        raise ApplicationError(error.message, details=details) from error
    except DataError as error:
        raise ApplicationError(error.message, details={error.field or "rows": [error.message]}) from error
    features[TRANSACTION_TARGET] = target
    return read, json.loads(features.to_json(orient="records"))


def training_tenant_delete(*, tenant: str) -> dict[str, int]:
    """Delete a tenant's training jobs, datasets and their rows (see `tenant_delete`)."""
    with transaction.atomic():
        _, jobs = TrainingJob.objects.filter(tenant=tenant).delete()
        _, datasets = Dataset.objects.filter(tenant=tenant).delete()
    return {"training_jobs": jobs.get("training.TrainingJob", 0), "datasets": datasets.get("training.Dataset", 0)}
