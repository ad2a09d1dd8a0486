"""Training jobs: check a request and create its job, enqueue it, wait for it, cancel it.

Our TrainingJob row is the source of truth for job state; django-q2's task table is
plumbing. State moves only by conditional updates, so a task delivered twice trains once,
a cancelled job cannot be marked succeeded, and of a worker presumed dead and whoever
takes its job over (the reaper, a re-delivered task, a cancel) exactly one wins: the
take-over only applies to the row as it was read, and the worker only writes while the
row's `attempts` is the one it claimed. Running a job: run.py; the lost ones: reaper.py.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from leadml.api.errors import ApplicationError, ConflictError
from leadml.ml.errors import ConfigError
from leadml.ml.pipeline import ALGORITHMS, BTYD_NEEDS_TRANSACTIONS
from leadml.ml.train import check_feature_names, grids_for
from registry.models import ModelVersion
from registry.selectors import model_name_check_type
from training.config import JobConfig
from training.models import Dataset, DataSource, TrainingJob
from training.selectors import dataset_get, labelled_row_count, tenant_datasets
from training.services.queue import JobQueueUnavailableError, training_job_enqueue
from training.services.reaper import _last_sign_of_life, _reap_running, _stale_cutoff
from training.services.sources import data_source_default, data_source_resolve

logger = logging.getLogger(__name__)
Status = TrainingJob.Status


QUEUE_RETRY_AFTER_SECONDS = 30


def training_job_create(
    *,
    tenant: str,
    model_type: str,
    algorithm: str,
    model_name: str,
    training_config: JobConfig,
    requested_by: str,
    retrain_of: ModelVersion | None = None,
    retrain_reason: str = "",
) -> TrainingJob:
    """Check the request can train, record the job, and enqueue it once the row is committed.

    `training_config` comes from `training.config.job_config_parse`; the row keeps its
    canonical form.

    A retrain (`retrain_of`) is refused with a ConflictError while another retrain of
    the same model is queued or running; a database constraint makes that hold even
    when two schedulers race. When the broker cannot take the task the row is deleted
    again and JobQueueUnavailableError (503) raised: nothing stays queued.
    """
    fields = _job_fields(
        tenant=tenant, model_type=model_type, algorithm=algorithm, model_name=model_name,
        training_config=training_config, requested_by=requested_by,
    )
    withdrawn: list[JobQueueUnavailableError] = []
    try:
        with transaction.atomic():
            job = TrainingJob.objects.create(**fields, retrain_of=retrain_of, retrain_reason=retrain_reason)
            transaction.on_commit(lambda: _enqueue_or_withdraw(job_id=str(job.id), withdrawn=withdrawn))
    except IntegrityError as error:
        if retrain_of is None:
            raise
        raise ConflictError(f"a retrain of '{model_name}' is already queued or running") from error
    if withdrawn:
        raise withdrawn[0]
    logger.info("training_job_created id=%s tenant=%s model_type=%s algorithm=%s", job.id, tenant, model_type, algorithm)
    return job


def _job_fields(
    *, tenant: str, model_type: str, algorithm: str, model_name: str, training_config: JobConfig, requested_by: str
) -> dict[str, Any]:
    """The checked request as a job row's fields (see `_request_check`)."""
    training_config, dataset = _request_check(
        tenant=tenant, model_type=model_type, algorithm=algorithm, model_name=model_name, training_config=training_config
    )
    return {
        "tenant": tenant,
        "model_type": model_type,
        "algorithm": algorithm,
        "model_name": model_name,
        "training_config": training_config.as_dict(),
        "dataset": dataset,
        "requested_by": requested_by,
    }


def _request_check(
    *, tenant: str, model_type: str, algorithm: str, model_name: str, training_config: JobConfig
) -> tuple[JobConfig, Dataset | None]:
    """Refuse a training request that cannot train (400 naming the field); return its config and dataset."""
    config = training_config
    try:
        grids_for(model_type, algorithm, config.training.param_grid)
    except ConfigError as error:
        raise ApplicationError(error.message, details={error.field or "training_config": [error.message]}) from error

    dataset = None
    if config.dataset_id:
        dataset = dataset_get(dataset_id=config.dataset_id, tenant_scope=tenant)
        if dataset.model_type != model_type:
            raise ApplicationError(
                f"dataset {dataset.id} holds {dataset.model_type} data, not {model_type}",
                details={"training_config.dataset_id": ["model_type mismatch"]},
            )
    needs_transactions = algorithm in ALGORITHMS and ALGORITHMS[algorithm].needs_transactions
    source = _data_source_for(tenant=tenant, model_type=model_type, dataset=dataset, source=config.source)
    if source is not None:
        # The rows are read at training time; the job checks them (features, size) then.
        config = config.with_source(source.name)
        if needs_transactions and source.kind != source.Kind.TRANSACTIONS:
            raise ApplicationError(BTYD_NEEDS_TRANSACTIONS, details={"algorithm": [BTYD_NEEDS_TRANSACTIONS]})
    else:
        _features_check(tenant=tenant, model_type=model_type, dataset=dataset, features=config.training.features)
        if needs_transactions and transaction_horizon(tenant=tenant, model_type=model_type, dataset=dataset) is None:
            raise ApplicationError(BTYD_NEEDS_TRANSACTIONS, details={"algorithm": [BTYD_NEEDS_TRANSACTIONS]})
        available = labelled_row_count(tenant=tenant, model_type=model_type, dataset_id=dataset.id if dataset else None)
        if available < settings.LEADML_MIN_ROWS:
            raise ApplicationError(
                f"user_id '{tenant}' has {available} labelled {model_type} rows; at least {settings.LEADML_MIN_ROWS} "
                "are needed. Upload training data with POST /datasets first.",
                details={"user_id": ["not enough training data"]},
            )
    model_name_check_type(tenant=tenant, name=model_name, model_type=model_type)
    return config, dataset


def _data_source_for(
    *, tenant: str, model_type: str, dataset: Dataset | None, source: str | None
) -> DataSource | None:
    """The data source a job reads its rows from, if any (README, "Training from the CRM's database").

    The one `training_config.source` names; else, when the tenant uploaded too few
    labelled rows of that model type and no dataset is named, the one enabled source of
    that model type. None: the job trains on uploaded rows, as before.
    """
    if source:
        if dataset is not None:
            raise ApplicationError(
                "give training_config.dataset_id or training_config.source, not both",
                details={"training_config.source": ["not with dataset_id"]},
            )
        return data_source_resolve(reference=source, model_type=model_type)
    if dataset is not None:
        return None
    if labelled_row_count(tenant=tenant, model_type=model_type) >= settings.LEADML_MIN_ROWS:
        return None
    return data_source_default(model_type=model_type)


def _enqueue_or_withdraw(*, job_id: str, withdrawn: list[JobQueueUnavailableError]) -> None:
    """Enqueue a new job; when the broker cannot take it, delete the row again.

    Deleted rather than failed: the caller hears 503 and that nothing was accepted, so a
    retry finds no failed twin and a failed retrain does not start the model's cooldown.
    Only a still-queued row goes: a task that reached a worker despite the error keeps
    its job. Run at commit, so inside an outer transaction the caller learns nothing
    (the row is gone all the same).
    """
    try:
        training_job_enqueue(job_id=job_id)
    except JobQueueUnavailableError as error:
        deleted, _ = TrainingJob.objects.filter(pk=job_id, status=Status.QUEUED).delete()
        if deleted:
            logger.warning("training_job_withdrawn id=%s reason=job queue unavailable", job_id)
            withdrawn.append(error)


def _features_check(*, tenant: str, model_type: str, dataset: Dataset | None, features: tuple[str, ...] | None) -> None:
    """A `features` name that is not a column of the training data is a 400, never silently dropped."""
    if not features:
        return
    datasets = [dataset] if dataset is not None else tenant_datasets(tenant=tenant, model_type=model_type)
    # Each dataset's target is removed from its rows before training, so it is never a feature.
    columns = {column for item in datasets for column in item.columns if column != item.target}
    if not columns:
        return  # no data yet: the row count check below says so
    try:
        check_feature_names(features, sorted(columns))
    except ConfigError as error:
        raise ApplicationError(error.message, details={error.field or "training_config": [error.message]}) from error


def training_job_wait(*, job: TrainingJob, seconds: float) -> TrainingJob:
    """Return the job once it has finished, or as it is after `seconds`.

    Polls the job row, quickly at first (a small job finishes in a second or two), then
    once a second. Inside a transaction there is nothing to wait for: the job is only
    enqueued when that transaction commits, so it is returned at once.
    """
    if connection.in_atomic_block:
        return job
    deadline = time.monotonic() + seconds
    pause = 0.05
    while True:
        job.refresh_from_db()
        remaining = deadline - time.monotonic()
        if job.is_terminal or remaining <= 0:
            return job
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 1.0)


def training_job_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel a queued job, or a running one whose worker is gone, at once; ask a live one to stop.

    A live worker stops at its next progress step. One whose heartbeat is stale would
    never read the request, so its job is ended here (its partial artifact removed).
    """
    now = timezone.now()
    if TrainingJob.objects.filter(pk=job.pk, status=Status.QUEUED).update(status=Status.CANCELLED, finished_at=now):
        job.refresh_from_db()
        return job
    job.refresh_from_db()
    if job.status == Status.RUNNING and _last_sign_of_life(job) < _stale_cutoff(now):
        if _reap_running(job, now=now, enqueue=False, cancel=True) is not None:
            job.refresh_from_db()
            return job
    if TrainingJob.objects.filter(pk=job.pk, status=Status.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        return job
    job.refresh_from_db()
    raise ConflictError(f"job {job.id} is already {job.status}; only queued or running jobs can be cancelled")


def transaction_horizon(*, tenant: str, model_type: str, dataset: Dataset | None) -> int | None:
    """The horizon of the transaction-built customer table a job trains on, if it does.

    A named dataset decides; without one, every lifetime-value dataset of the tenant
    must come from transactions with the same horizon.
    """
    if dataset is not None:
        datasets = [dataset]
    else:
        datasets = list(tenant_datasets(tenant=tenant, model_type=model_type).only("kind", "source_config"))
    horizons = {item.source_config.get("horizon_days") if item.built_from_transactions else None for item in datasets}
    if len(horizons) == 1:
        return horizons.pop()
    return None
