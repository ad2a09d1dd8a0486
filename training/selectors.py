"""Reads of the training app, always scoped to what the caller may see."""
from __future__ import annotations

from typing import Any

import pandas as pd
from django.core.exceptions import ValidationError
from django.db.models.fields.json import KeyTextTransform

from leadml.api.errors import NotFoundError
from registry.models import ModelVersion
from training.models import Dataset, DatasetRow, TrainingJob


def dataset_get(*, dataset_id: object, tenant_scope: str | None) -> Dataset:
    """Return a dataset the caller may see; another tenant's id is a 404, like a missing one."""
    datasets = Dataset.objects.all() if tenant_scope is None else Dataset.objects.filter(tenant=tenant_scope)
    try:
        dataset = datasets.filter(pk=dataset_id).first()
    except ValidationError:
        dataset = None
    if dataset is None:
        raise NotFoundError(f"dataset '{dataset_id}' not found")
    return dataset


def training_job_get(*, job_id: object, tenant_scope: str | None) -> TrainingJob:
    jobs = TrainingJob.objects.all() if tenant_scope is None else TrainingJob.objects.filter(tenant=tenant_scope)
    try:
        job = jobs.select_related("model_version").filter(pk=job_id).first()
    except ValidationError:
        job = None
    if job is None:
        raise NotFoundError(f"job '{job_id}' not found")
    return job


def labelled_row_count(*, tenant: str, model_type: str, dataset_id: object | None = None) -> int:
    rows = DatasetRow.objects.filter(
        tenant=tenant, model_type=model_type, label__isnull=False, dataset__status=Dataset.Status.READY
    )
    if dataset_id is not None:
        rows = rows.filter(dataset_id=dataset_id)
    else:
        rows = rows.exclude(dataset__kind=Dataset.Kind.SOURCE)
    return rows.count()


def tenant_datasets(*, tenant: str, model_type: str) -> Any:
    """The datasets "all the tenant's rows" means: ready, and not a snapshot read from a data source.

    A source is read afresh by every job that trains from it (README, "Training from the
    CRM's database"); its earlier snapshots would count the same leads twice.
    """
    return Dataset.objects.filter(tenant=tenant, model_type=model_type, status=Dataset.Status.READY).exclude(
        kind=Dataset.Kind.SOURCE
    )


def training_frame(*, tenant: str, model_type: str, dataset_id: object | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Return (raw features, labels) of a tenant's rows, each dataset's target column removed."""
    rows = DatasetRow.objects.filter(tenant=tenant, model_type=model_type, dataset__status=Dataset.Status.READY)
    if dataset_id is not None:
        rows = rows.filter(dataset_id=dataset_id)
    else:
        rows = rows.exclude(dataset__kind=Dataset.Kind.SOURCE)
    records = []
    labels = []
    for target, data, label in rows.order_by("dataset_id", "row_number").values_list("dataset__target", "data", "label").iterator(chunk_size=5000):
        # Datasets may name their target differently; it must never leak in as a feature.
        records.append({key: value for key, value in data.items() if key != target})
        labels.append(label)
    return pd.DataFrame.from_records(records), pd.Series(labels, dtype=float)


def dataset_for_outcomes(*, tenant: str, model_type: str, active: ModelVersion | None) -> Dataset | None:
    """The dataset outcomes join: the active model's own, else the tenant's latest one."""
    datasets = Dataset.objects.filter(tenant=tenant, model_type=model_type, status=Dataset.Status.READY)
    config = (active.training_config or {}) if active is not None else {}
    dataset_id = config.get("dataset_id")
    if not dataset_id and active is not None and config.get("source"):
        # Trained from a data source: the snapshot its job read.
        job = TrainingJob.objects.filter(model_version=active).exclude(dataset=None).only("dataset_id").first()
        dataset_id = job.dataset_id if job is not None else None
    if dataset_id:
        dataset = datasets.filter(pk=dataset_id).first()
        if dataset is not None:
            return dataset
    return datasets.order_by("-created_at").first()


def dataset_target_values(*, dataset: Dataset, limit: int) -> list[Any]:
    """Up to `limit` distinct raw target values of the dataset's uploaded (not outcome) rows."""
    return list(
        dataset.rows.exclude(source=DatasetRow.Source.OUTCOME)
        .annotate(target_value=KeyTextTransform(dataset.target, "data"))
        .values_list("target_value", flat=True)
        .distinct()[:limit]
    )
