"""Training jobs: create and enqueue, run (claimed once), cancel.

Our TrainingJob row is the source of truth for job state; django-q2's task table is
plumbing. State moves only by conditional updates, so a task delivered twice trains once
and a cancelled job cannot be marked succeeded.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from leadml.errors import ApplicationError, ConflictError
from leadml.ml.artifacts import dump_bytes
from leadml.ml.errors import ArtifactIntegrityError
from leadml.ml.promotion import PromotionDecision, decide_promotion
from leadml.ml.errors import ConfigError, MLError
from leadml.ml.features import resolve_feature_options
from leadml.ml.pipeline import ALGORITHMS, BTYD_NEEDS_TRANSACTIONS, resolve_preprocessing
from leadml.ml.train import check_feature_names, grids_for, train_model
from leadml.ml.types import TrainingConfig, TrainResult
from registry.models import ModelVersion
from registry.cache import bundle_load
from registry.selectors import model_name_check_type, model_version_get_active
from registry.services import model_version_register
from training.models import Dataset, TrainingJob
from training.selectors import dataset_get, labelled_row_count, training_frame
from training.signals import job_finished

logger = logging.getLogger(__name__)
Status = TrainingJob.Status


class JobCancelled(Exception):
    """Raised from the progress callback when someone asked the job to stop."""


def training_config_parse(raw: dict[str, Any]) -> TrainingConfig:
    """Validate `training_config` and return the ML core's config (400 on anything unknown)."""
    try:
        preprocessing = resolve_preprocessing(raw.get("preprocessing"))
        engineering = dict(raw.get("feature_engineering") or {})
        if "missing_values" in raw:  # also accepted at the top level of training_config
            engineering.setdefault("missing_values", raw["missing_values"])
        feature_options = resolve_feature_options(engineering)
    except ConfigError as error:
        raise ApplicationError(error.message, details={error.field or "training_config": [error.message]}) from error
    features = raw.get("features")
    return TrainingConfig(
        features=tuple(features) if features else None,
        preprocessing=preprocessing,
        feature_options=feature_options,
        allow_columns=tuple(raw.get("allow_columns") or ()),
        calibrate=raw.get("calibrate", True),
        time_budget_s=raw.get("time_budget_s"),
        param_grid=raw.get("param_grid"),
        cv_folds=raw.get("cv_folds", 5),
        test_size=raw.get("test_size", 0.2),
        random_state=raw.get("random_state", 42),
        n_jobs=settings.LEADML_TRAIN_N_JOBS,
    )


def training_job_create(
    *,
    tenant: str,
    model_type: str,
    algorithm: str,
    model_name: str,
    training_config: dict[str, Any],
    requested_by: str,
    retrain_of: ModelVersion | None = None,
    retrain_reason: str = "",
) -> TrainingJob:
    """Check the request can train, record the job, and enqueue it once the row is committed.

    A retrain (`retrain_of`) is refused with a ConflictError while another retrain of
    the same model is queued or running; a database constraint makes that hold even
    when two schedulers race.
    """
    config = training_config_parse(training_config)
    try:
        grids_for(model_type, algorithm, config.param_grid)
    except ConfigError as error:
        raise ApplicationError(error.message, details={error.field or "training_config": [error.message]}) from error

    dataset = None
    if training_config.get("dataset_id"):
        dataset = dataset_get(dataset_id=training_config["dataset_id"], tenant_scope=tenant)
        if dataset.model_type != model_type:
            raise ApplicationError(
                f"dataset {dataset.id} holds {dataset.model_type} data, not {model_type}",
                details={"training_config.dataset_id": ["model_type mismatch"]},
            )
    _features_check(tenant=tenant, model_type=model_type, dataset=dataset, features=config.features)
    needs_transactions = algorithm in ALGORITHMS and ALGORITHMS[algorithm].needs_transactions
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

    try:
        with transaction.atomic():
            job = TrainingJob.objects.create(
                tenant=tenant,
                model_type=model_type,
                algorithm=algorithm,
                model_name=model_name,
                training_config=training_config,
                dataset=dataset,
                requested_by=requested_by,
                retrain_of=retrain_of,
                retrain_reason=retrain_reason,
            )
            transaction.on_commit(lambda: training_job_enqueue(job_id=str(job.id)))
    except IntegrityError as error:
        if retrain_of is None:
            raise
        raise ConflictError(f"a retrain of '{model_name}' is already queued or running") from error
    logger.info("training_job_created id=%s tenant=%s model_type=%s algorithm=%s", job.id, tenant, model_type, algorithm)
    return job


def _features_check(*, tenant: str, model_type: str, dataset: Dataset | None, features: tuple[str, ...] | None) -> None:
    """A `features` name that is not a column of the training data is a 400, never silently dropped."""
    if not features:
        return
    datasets = [dataset] if dataset is not None else Dataset.objects.filter(tenant=tenant, model_type=model_type)
    # Each dataset's target is removed from its rows before training, so it is never a feature.
    columns = {column for item in datasets for column in item.columns if column != item.target}
    if not columns:
        return  # no data yet: the row count check below says so
    try:
        check_feature_names(features, sorted(columns))
    except ConfigError as error:
        raise ApplicationError(error.message, details={error.field or "training_config": [error.message]}) from error


def training_job_enqueue(*, job_id: str) -> None:
    async_task(
        "training.tasks.training_job_run_task",
        job_id,
        task_name=f"train-{job_id}",
        timeout=settings.LEADML_JOB_TIMEOUT_SECONDS,
    )


def training_job_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel a queued job at once; ask a running job to stop at its next step."""
    now = timezone.now()
    if TrainingJob.objects.filter(pk=job.pk, status=Status.QUEUED).update(status=Status.CANCELLED, finished_at=now):
        job.refresh_from_db()
        return job
    if TrainingJob.objects.filter(pk=job.pk, status=Status.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        return job
    job.refresh_from_db()
    raise ConflictError(f"job {job.id} is already {job.status}; only queued or running jobs can be cancelled")


class _JobProgress:
    """Record progress on the job row; raise JobCancelled if a cancel was requested."""

    def __init__(self, job_id: Any) -> None:
        self.job_id = job_id
        self.log: list[dict[str, Any]] = []

    def __call__(self, step: str, percent: int) -> None:
        now = timezone.now()
        self.log.append({"at": now.isoformat(), "step": step, "percent": percent})
        updated = TrainingJob.objects.filter(pk=self.job_id, status=Status.RUNNING, cancel_requested=False).update(
            progress_step=step, progress_percent=percent, heartbeat_at=now, log=self.log
        )
        if not updated:
            raise JobCancelled()
        logger.info("training_progress job=%s step=%s percent=%s", self.job_id, step, percent)


def training_job_run(*, job_id: Any) -> None:
    """Run a job if this delivery can claim it; never leave it running or half-registered."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.LEADML_JOB_STALE_SECONDS)
    claimed = TrainingJob.objects.filter(
        Q(status=Status.QUEUED) | Q(status=Status.RUNNING, heartbeat_at__lt=stale), pk=job_id
    ).update(
        status=Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        progress_step="starting",
        progress_percent=0,
    )
    if not claimed:
        logger.info("training_job_skipped id=%s reason=already claimed or finished", job_id)
        return
    job = TrainingJob.objects.get(pk=job_id)
    progress = _JobProgress(job.pk)
    try:
        result = _train(job, progress)
        _register(job, result, progress)
    except JobCancelled:
        _finish(job.pk, Status.CANCELLED, progress, error="cancelled on request")
    except (MLError, ApplicationError) as error:
        _finish(job.pk, Status.FAILED, progress, error=str(getattr(error, "message", error)))
    except Exception as error:  # a bug or an environment failure: record it, never leave the job running
        logger.exception("training_job_crashed id=%s", job.pk)
        _finish(job.pk, Status.FAILED, progress, error=f"{type(error).__name__}: {error}")
    job.refresh_from_db()
    if job.is_terminal:
        job_finished.send(sender=TrainingJob, job=job)


def transaction_horizon(*, tenant: str, model_type: str, dataset: Dataset | None) -> int | None:
    """The horizon of the transaction-built customer table a job trains on, if it does.

    A named dataset decides; without one, every lifetime-value dataset of the tenant
    must come from transactions with the same horizon.
    """
    if dataset is not None:
        datasets = [dataset]
    else:
        datasets = list(Dataset.objects.filter(tenant=tenant, model_type=model_type).only("kind", "source_config"))
    horizons = {
        item.source_config.get("horizon_days") if item.kind == Dataset.Kind.TRANSACTIONS else None for item in datasets
    }
    if len(horizons) == 1:
        return horizons.pop()
    return None


def _train(job: TrainingJob, progress: _JobProgress) -> TrainResult:
    config = training_config_parse(job.training_config)
    horizon = transaction_horizon(tenant=job.tenant, model_type=job.model_type, dataset=job.dataset)
    if horizon:
        config = replace(config, feature_options=replace(config.feature_options, btyd_horizon_days=horizon))
    progress("load_data", 2)
    features, labels = training_frame(tenant=job.tenant, model_type=job.model_type, dataset_id=job.dataset_id)
    return train_model(
        features,
        labels,
        model_type=job.model_type,
        algorithm=job.algorithm,
        config=config,
        min_rows=settings.LEADML_MIN_ROWS,
        min_rows_per_class=settings.LEADML_MIN_ROWS_PER_CLASS,
        progress=progress,
    )


def _promotion(job: TrainingJob, result: TrainResult) -> tuple[PromotionDecision, int | None]:
    """Score the challenger and the active model on the challenger's held-out rows."""
    champion_version = model_version_get_active(tenant=job.tenant, model_type=job.model_type)
    champion = None
    if champion_version is not None:
        try:
            champion = bundle_load(champion_version)
        except (ArtifactIntegrityError, OSError, ValueError) as error:
            logger.warning("promotion_champion_unusable version=%s error=%s", champion_version.pk, error)
    assert result.holdout is not None
    decision = decide_promotion(
        challenger=result.bundle,
        holdout=result.holdout,
        champion=champion,
        champion_version=champion_version.version if champion_version is not None else None,
        min_improvement=job.training_config.get("min_improvement"),
    )
    if champion_version is not None and champion is None:
        # An active version whose artifact is gone serves only rules: anything trained is better.
        reason = f"the active version {champion_version.version} cannot be loaded (its artifact is unusable)"
        decision = replace(decision, promote=True, reason=reason)
    return decision, (champion_version.pk if champion_version is not None else None)


def _register(job: TrainingJob, result: TrainResult, progress: _JobProgress) -> ModelVersion:
    progress("compare", 96)
    decision, champion_pk = _promotion(job, result)
    result.report["promotion"] = decision.as_dict()
    progress("register", 98)
    data, sha256 = dump_bytes(result.bundle)

    def mark_succeeded(model_version: ModelVersion) -> None:
        progress.log.append({"at": timezone.now().isoformat(), "step": "succeeded", "percent": 100})
        updated = TrainingJob.objects.filter(pk=job.pk, status=Status.RUNNING, cancel_requested=False).update(
            status=Status.SUCCEEDED,
            model_version=model_version,
            progress_step="succeeded",
            progress_percent=100,
            finished_at=timezone.now(),
            log=progress.log,
        )
        if not updated:
            raise JobCancelled()  # rolls the registration back

    fields = {
        "metrics": result.metrics,
        "cross_validation": result.cross_validation.__dict__,
        "params": result.best_params,
        "feature_schema": result.bundle.schema.as_dict(),
        "feature_importance": [list(pair) for pair in result.feature_importance],
        "explanation_method": result.explanation_method,
        "training_report": result.report,
        "training_config": job.training_config,
        "trained_rows": result.report["labelled_rows"],
    }
    model_version = model_version_register(
        tenant=job.tenant,
        model_type=job.model_type,
        name=job.model_name,
        algorithm=result.algorithm,
        artifact_bytes=data,
        artifact_sha256=sha256,
        fields=fields,
        actor=job.requested_by or "training job",
        promote_reason=f"automatic promotion: {decision.reason}" if decision.promote else None,
        promote_over=champion_pk,
        on_registered=mark_succeeded,
    )
    main_key = "roc_auc" if result.bundle.classification else "r2"
    logger.info(
        "training_job_succeeded id=%s version=%s algorithm=%s %s=%s",
        job.pk,
        model_version.pk,
        result.algorithm,
        main_key,
        result.metrics.get(main_key),
    )
    return model_version


def _finish(job_id: Any, status: str, progress: _JobProgress, *, error: str) -> None:
    progress.log.append({"at": timezone.now().isoformat(), "step": status, "percent": None, "error": error})
    TrainingJob.objects.filter(pk=job_id, status=Status.RUNNING).update(
        status=status, error=error, finished_at=timezone.now(), log=progress.log
    )
    logger.warning("training_job_%s id=%s error=%s", status, job_id, error)
