"""Training rows written for outcomes: a scored record with what really happened.

Monitoring links each outcome to its prediction and asks this module to store the pair
as a training row (`source=outcome`) of the dataset outcomes join, so the training app
alone writes datasets and their rows and keeps `row_number` and the counts true.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, Max

from training.models import Dataset, DatasetRow

# Target column of the dataset created for a tenant's outcomes when it has no dataset.
OUTCOMES_DATASET_TARGET = "outcome"
# Rows per bulk statement.
ROW_WRITE_BATCH = 2000


@dataclass(frozen=True)
class RowChange:
    """An outcome row's new training record and label."""

    row: DatasetRow
    data: dict[str, Any]
    label: float


def outcomes_dataset_lock(*, tenant: str, model_type: str, dataset: Dataset | None) -> Dataset:
    """The dataset outcomes are written to, locked until the caller's transaction ends.

    Creates the tenant's "outcomes" dataset when it has none. The lock makes concurrent
    outcome calls append after each other (row numbers stay unique and dense).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outcomes_dataset_lock must run inside a transaction")
    if dataset is None:
        dataset = Dataset.objects.create(
            tenant=tenant,
            model_type=model_type,
            name="outcomes",
            target=OUTCOMES_DATASET_TARGET,
            columns=[],
            source_filename="POST /outcomes",
        )
    return Dataset.objects.select_for_update().get(pk=dataset.pk)


def outcome_rows_write(
    *,
    dataset: Dataset,
    new: Sequence[tuple[dict[str, Any], float]],
    changed: Sequence[RowChange],
    superseded: Sequence[DatasetRow] = (),
) -> list[DatasetRow]:
    """Append `new` (record, label) rows and rewrite `changed` ones; return the new rows in order.

    `superseded`: rows of other datasets that outcomes had written before the active
    model changed, now replaced by new ones here. They stay (row numbers stay dense) but
    unlabelled, so no training reads an entity twice, or its outcome before it changed.
    `dataset` must come from `outcomes_dataset_lock` in the same transaction.
    """
    stale = [row for row in superseded if row.label is not None]
    for row in stale:
        row.label = None
    DatasetRow.objects.bulk_update(stale, ["label"], batch_size=ROW_WRITE_BATCH)
    for dataset_id, count in Counter(row.dataset_id for row in stale).items():
        Dataset.objects.filter(pk=dataset_id).update(labelled_row_count=F("labelled_row_count") - count)
    start = (dataset.rows.aggregate(last=Max("row_number"))["last"] or -1) + 1
    rows = [
        DatasetRow(
            dataset=dataset,
            tenant=dataset.tenant,
            model_type=dataset.model_type,
            row_number=start + offset,
            data=data,
            label=label,
            source=DatasetRow.Source.OUTCOME,
        )
        for offset, (data, label) in enumerate(new)
    ]
    # bulk_create sets primary keys on PostgreSQL and SQLite: callers link to these rows.
    DatasetRow.objects.bulk_create(rows, batch_size=ROW_WRITE_BATCH)
    for change in changed:
        change.row.data, change.row.label = change.data, change.label
    DatasetRow.objects.bulk_update([change.row for change in changed], ["data", "label"], batch_size=ROW_WRITE_BATCH)
    if rows:
        Dataset.objects.filter(pk=dataset.pk).update(
            row_count=F("row_count") + len(rows), labelled_row_count=F("labelled_row_count") + len(rows)
        )
    return rows
