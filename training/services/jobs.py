"""Training jobs: create and enqueue, run (claimed once), cancel, and reap the lost ones.

Our TrainingJob row is the source of truth for job state; django-q2's task table is
plumbing. State moves only by conditional updates, so a task delivered twice trains once,
a cancelled job cannot be marked succeeded, and of a worker presumed dead and whoever
takes its job over (the reaper, a re-delivered task, a cancel) exactly one wins: the
take-over only applies to the row as it was read, and the worker only writes while the
row's `attempts` is the one it claimed.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.exceptions import TimeoutException
from django_q.tasks import async_task
from redis.exceptions import RedisError

from leadml.api.errors import ApplicationError, ConflictError, ServiceUnavailableError
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
from registry.services import model_artifact_discard, model_version_register
from training.models import Dataset, DataSource, TrainingJob
from training.selectors import dataset_get, labelled_row_count, tenant_datasets, training_frame
from training.services.sources import data_source_default, data_source_resolve, source_dataset_pull
from training.signals import job_finished

logger = logging.getLogger(__name__)
Status = TrainingJob.Status

# What a client is told to wait when the job queue is down: about a broker restart.
QUEUE_RETRY_AFTER_SECONDS = 30
# The broker could not take the task: Redis unreachable or timing out, or the ORM
# broker's database refusing the write (locked, gone). Anything else is a bug.
BROKER_ERRORS = (RedisError, DatabaseError, OSError)


class JobCancelled(Exception):
    """Raised from the progress callback when the job was cancelled or is no longer ours."""


class JobQueueUnavailableError(ServiceUnavailableError):
    def __init__(self) -> None:
        super().__init__(
            "The job queue cannot be reached; nothing was queued. Retry later.",
            retry_after_seconds=QUEUE_RETRY_AFTER_SECONDS,
            details={"job_queue": ["unavailable"]},
        )


@dataclass(frozen=True)
class ReapedJob:
    """What the reaper did to one job whose worker was gone."""

    job_id: str
    action: str  # requeued | failed | cancelled
    reason: str


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
    when two schedulers race. When the broker cannot take the task the row is deleted
    again and JobQueueUnavailableError (503) raised: nothing stays queued.
    """
    training_config, dataset = _request_check(
        tenant=tenant, model_type=model_type, algorithm=algorithm, model_name=model_name, training_config=training_config
    )
    withdrawn: list[JobQueueUnavailableError] = []
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
            transaction.on_commit(lambda: _enqueue_or_withdraw(job_id=str(job.id), withdrawn=withdrawn))
    except IntegrityError as error:
        if retrain_of is None:
            raise
        raise ConflictError(f"a retrain of '{model_name}' is already queued or running") from error
    if withdrawn:
        raise withdrawn[0]
    logger.info("training_job_created id=%s tenant=%s model_type=%s algorithm=%s", job.id, tenant, model_type, algorithm)
    return job


def _request_check(
    *, tenant: str, model_type: str, algorithm: str, model_name: str, training_config: dict[str, Any]
) -> tuple[dict[str, Any], Dataset | None]:
    """Refuse a training request that cannot train (400 naming the field); return its config and dataset."""
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
    needs_transactions = algorithm in ALGORITHMS and ALGORITHMS[algorithm].needs_transactions
    source = _data_source_for(tenant=tenant, model_type=model_type, dataset=dataset, training_config=training_config)
    if source is not None:
        # The rows are read at training time; the job checks them (features, size) then.
        training_config = {**training_config, "source": source.name}
        if needs_transactions and source.kind != source.Kind.TRANSACTIONS:
            raise ApplicationError(BTYD_NEEDS_TRANSACTIONS, details={"algorithm": [BTYD_NEEDS_TRANSACTIONS]})
    else:
        _features_check(tenant=tenant, model_type=model_type, dataset=dataset, features=config.features)
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
    return training_config, dataset



def training_job_run_now(
    *,
    tenant: str,
    model_type: str,
    algorithm: str,
    model_name: str,
    training_config: dict[str, Any],
    requested_by: str,
) -> TrainingJob:
    """Check, record and run a job in this process, as a worker would; return it finished.

    For management commands (the demo, the bench) and tests: the same checks and the
    same run as a queued job, without the broker.
    """
    training_config, dataset = _request_check(
        tenant=tenant, model_type=model_type, algorithm=algorithm, model_name=model_name, training_config=training_config
    )
    job = TrainingJob.objects.create(
        tenant=tenant,
        model_type=model_type,
        algorithm=algorithm,
        model_name=model_name,
        training_config=training_config,
        dataset=dataset,
        requested_by=requested_by,
    )
    training_job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def _data_source_for(
    *, tenant: str, model_type: str, dataset: Dataset | None, training_config: dict[str, Any]
) -> DataSource | None:
    """The data source a job reads its rows from, if any (README, "Training from the CRM's database").

    The one `training_config.source` names; else, when the tenant uploaded too few
    labelled rows of that model type and no dataset is named, the one enabled source of
    that model type. None: the job trains on uploaded rows, as before.
    """
    if training_config.get("source") not in (None, ""):
        if dataset is not None:
            raise ApplicationError(
                "give training_config.dataset_id or training_config.source, not both",
                details={"training_config.source": ["not with dataset_id"]},
            )
        return data_source_resolve(reference=training_config["source"], model_type=model_type)
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


def training_job_enqueue(*, job_id: str) -> None:
    """Hand the job's task to the broker; JobQueueUnavailableError when it cannot take it."""
    # Before the task: with `sync` (tests) the task runs inside async_task.
    TrainingJob.objects.filter(pk=job_id, status=Status.QUEUED).update(enqueued_at=timezone.now())
    try:
        async_task(
            "training.tasks.training_job_run_task",
            job_id,
            task_name=f"train-{job_id}",
            timeout=settings.LEADML_JOB_TIMEOUT_SECONDS,
        )
    except BROKER_ERRORS as error:
        logger.error("training_job_enqueue_failed id=%s error=%s: %s", job_id, type(error).__name__, error)
        raise JobQueueUnavailableError() from error


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


class _JobProgress:
    """Record progress on the job row; raise JobCancelled if a cancel was requested.

    Writes only while the row is still this run's (`attempts` as claimed): a run taken
    over by the reaper stops at its next step instead of writing over the next run.
    """

    def __init__(self, job_id: Any, *, attempt: int, log: list[dict[str, Any]] | None = None) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.log: list[dict[str, Any]] = list(log or [])

    def mine(self) -> Any:
        return TrainingJob.objects.filter(pk=self.job_id, status=Status.RUNNING, attempts=self.attempt)

    def __call__(self, step: str, percent: int) -> None:
        now = timezone.now()
        self.log.append({"at": now.isoformat(), "step": step, "percent": percent})
        updated = self.mine().filter(cancel_requested=False).update(
            progress_step=step, progress_percent=percent, heartbeat_at=now, log=self.log
        )
        if not updated:
            raise JobCancelled()
        logger.info("training_progress job=%s step=%s percent=%s", self.job_id, step, percent)


class _Heartbeat:
    """Write the job's heartbeat from a thread of its own while the job runs.

    The ML core reports progress between fits and steps, and some are long: the final
    refit of a large forest, calibration's refits, permutation importance, the promotion
    comparison, writing the artifact; with parallel fits (LEADML_TRAIN_N_JOBS > 1) a
    whole search is one step. A beat every LEADML_JOB_HEARTBEAT_SECONDS keeps a healthy
    job from looking lost however long a step is: Python switches threads every few
    milliseconds and scikit-learn's native loops release the GIL. Inside a transaction
    (tests running tasks inline) another connection could not see the row without
    waiting for ours, so no thread is started.
    """

    def __init__(self, job_id: Any, *, attempt: int) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if not connection.in_atomic_block:
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.job_id}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            # A beat waiting for a busy database must not hold up the job's end: the
            # thread is a daemon and stops at its next look at the event.
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.LEADML_JOB_HEARTBEAT_SECONDS):
                try:
                    mine = TrainingJob.objects.filter(
                        pk=self.job_id, status=Status.RUNNING, attempts=self.attempt
                    ).update(heartbeat_at=timezone.now())
                except DatabaseError:
                    logger.warning("training_heartbeat_failed job=%s", self.job_id, exc_info=True)
                    continue
                if not mine:
                    return  # finished, cancelled or taken over: nothing of ours to keep alive
        finally:
            connection.close()


def training_job_run(*, job_id: Any) -> None:
    """Run a job if this delivery can claim it; never leave it running or half-registered.

    A delivery that finds its job running with a stale heartbeat (the ORM broker hands
    out a task again when its worker died) first does what the reaper would: queue it
    again while attempts remain, else end it. It then claims it like any queued job.
    """
    now = timezone.now()
    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is not None and job.status == Status.RUNNING and _last_sign_of_life(job) < _stale_cutoff(now):
        _reap_running(job, now=now, enqueue=False)
    claimed = TrainingJob.objects.filter(pk=job_id, status=Status.QUEUED).update(
        status=Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        artifact_path="",
        progress_step="starting",
        progress_percent=0,
    )
    if not claimed:
        logger.info("training_job_skipped id=%s reason=already claimed or finished", job_id)
        return
    job = TrainingJob.objects.get(pk=job_id)
    progress = _JobProgress(job.pk, attempt=job.attempts, log=job.log)
    finished = False
    with _Heartbeat(job.pk, attempt=job.attempts):
        try:
            result = _train(job, progress)
            _register(job, result, progress)
            finished = True
        except JobCancelled:
            finished = _finish(job.pk, Status.CANCELLED, progress, error="cancelled on request")
        except (MLError, ApplicationError) as error:
            finished = _finish(job.pk, Status.FAILED, progress, error=str(getattr(error, "message", error)))
        except TimeoutException:
            # django-q2's time limit (a SystemExit): the worker is replaced right after,
            # so the job is ended now rather than left to the reaper.
            timeout = settings.LEADML_JOB_TIMEOUT_SECONDS
            if _finish(job.pk, Status.FAILED, progress, error=f"timed out after {timeout} s (LEADML_JOB_TIMEOUT_SECONDS)"):
                _announce(job.pk)
            raise
        except Exception as error:  # a bug or an environment failure: record it, never leave the job running
            logger.exception("training_job_crashed id=%s", job.pk)
            finished = _finish(job.pk, Status.FAILED, progress, error=f"{type(error).__name__}: {error}")
    # Only the run that ended the job tells the others (a run taken over ends nothing).
    if finished:
        _announce(job.pk)


def _announce(job_id: Any) -> None:
    job_finished.send(sender=TrainingJob, job=TrainingJob.objects.select_related("model_version").get(pk=job_id))


# --- lost jobs ------------------------------------------------------------------------


def _stale_cutoff(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.LEADML_JOB_STALE_SECONDS)


def _last_sign_of_life(job: TrainingJob) -> datetime:
    return job.heartbeat_at or job.started_at or job.created_at


def training_jobs_reap(*, now: datetime | None = None) -> list[ReapedJob]:
    """Find the jobs whose worker is gone; queue each again while attempts remain, else end it.

    A running job is lost when its heartbeat is older than LEADML_JOB_STALE_SECONDS; it
    is cancelled if a cancel was asked for, queued again if it has used fewer than
    LEADML_JOB_MAX_ATTEMPTS deliveries, failed otherwise, and any artifact file it was
    writing is removed. A queued job is lost when no worker took its task that long
    while no job is running: a busy worker is not a lost one, and an idle one takes a
    task within a second (Redis forgets a task whose worker died; the ORM broker hands
    it out again only after Q_CLUSTER's retry). Run by the job worker's schedule and by
    `serve` before it starts the worker.
    """
    now = now or timezone.now()
    cutoff = _stale_cutoff(now)
    reaped: list[ReapedJob] = []
    running = TrainingJob.objects.filter(status=Status.RUNNING)
    lost = list(running.alias(seen=Coalesce("heartbeat_at", "started_at", "created_at")).filter(seen__lt=cutoff))
    if not running.filter(heartbeat_at__gte=cutoff).exists():
        queued = TrainingJob.objects.filter(status=Status.QUEUED).alias(since=Coalesce("enqueued_at", "created_at"))
        lost += list(queued.filter(since__lt=cutoff).order_by("created_at"))
    for job in lost:
        try:
            if job.status == Status.RUNNING:
                outcome = _reap_running(job, now=now, enqueue=True)
            else:
                outcome = _reap_queued(job, now=now)
        except Exception:  # one job's trouble must not keep the others lost
            logger.exception("training_job_reap_failed id=%s", job.pk)
            continue
        if outcome is not None:
            logger.warning("training_job_reaped id=%s action=%s reason=%s", outcome.job_id, outcome.action, outcome.reason)
            reaped.append(outcome)
    return reaped


def _reap_running(job: TrainingJob, *, now: datetime, enqueue: bool, cancel: bool = False) -> ReapedJob | None:
    """Take a running job over from its lost worker: cancel, queue again or fail it.

    Applies only to the row as read (status, attempts and heartbeat unchanged), so a
    worker that beat in between keeps its job; once this applied, that worker's next
    write (a beat, progress, its registration) matches nothing.
    """
    most = settings.LEADML_JOB_MAX_ATTEMPTS
    reason = f"worker lost: no heartbeat for {int((now - _last_sign_of_life(job)).total_seconds())} s"
    changes: dict[str, Any] = {"artifact_path": ""}
    if cancel or job.cancel_requested:
        action, error = "cancelled", f"cancelled on request; {reason}"
        changes |= {"status": Status.CANCELLED, "finished_at": now}
    elif job.attempts < most:
        action, error = "requeued", ""
        reason = f"{reason}; queued again (attempt {job.attempts + 1} of {most})"
        changes |= {"status": Status.QUEUED, "enqueued_at": now, "progress_step": "requeued", "progress_percent": 0}
    else:
        action, error = "failed", f"{reason} (attempt {job.attempts} of {most})"
        changes |= {"status": Status.FAILED, "finished_at": now}
    changes |= {"error": error, "log": [*job.log, {"at": now.isoformat(), "step": action, "percent": None, "error": error or reason}]}
    applied = TrainingJob.objects.filter(
        pk=job.pk, status=Status.RUNNING, attempts=job.attempts, heartbeat_at=job.heartbeat_at
    ).update(**changes)
    if not applied:
        return None
    # No version can be registered with it any more: the worker's registration is
    # conditional on the row it just lost.
    model_artifact_discard(path=job.artifact_path)
    if action == "requeued":
        if enqueue:
            _enqueue_quietly(job_id=str(job.pk))
    else:
        _announce(job.pk)
    return ReapedJob(str(job.pk), action, error or reason)


def _reap_queued(job: TrainingJob, *, now: datetime) -> ReapedJob | None:
    """Hand a queued job's lost task out again (the lost delivery counts as an attempt), or fail it."""
    most = settings.LEADML_JOB_MAX_ATTEMPTS
    used = job.attempts + 1
    waited = int((now - (job.enqueued_at or job.created_at)).total_seconds())
    reason = f"worker lost: queued for {waited} s and no worker took it"
    if used < most:
        action, error = "requeued", ""
        reason = f"{reason}; queued again (attempt {used + 1} of {most})"
        changes: dict[str, Any] = {"enqueued_at": now}
    else:
        action, error = "failed", f"{reason} (attempt {used} of {most})"
        changes = {"status": Status.FAILED, "finished_at": now, "error": error}
    changes |= {"attempts": used, "log": [*job.log, {"at": now.isoformat(), "step": action, "percent": None, "error": error or reason}]}
    applied = TrainingJob.objects.filter(
        pk=job.pk, status=Status.QUEUED, attempts=job.attempts, enqueued_at=job.enqueued_at
    ).update(**changes)
    if not applied:
        return None
    if action == "requeued":
        _enqueue_quietly(job_id=str(job.pk))
    else:
        _announce(job.pk)
    return ReapedJob(str(job.pk), action, error or reason)


def _enqueue_quietly(*, job_id: str) -> None:
    # The broker being down is no reason to stop reaping: the job stays queued and a
    # later pass hands it out again (or fails it once its attempts are used).
    try:
        training_job_enqueue(job_id=job_id)
    except JobQueueUnavailableError:
        pass


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


def _source_read(job: TrainingJob, progress: _JobProgress) -> None:
    """A job that trains from a data source reads the tenant's rows into a dataset of its own first.

    All rows or none (training/services/datasets.py); a source that cannot be read fails
    the job with the reason and stores nothing.
    """
    progress("read_source", 1)
    source = data_source_resolve(reference=job.training_config["source"], model_type=job.model_type)
    dataset = source_dataset_pull(source=source, tenant=job.tenant)
    if not progress.mine().update(dataset=dataset):
        Dataset.objects.filter(pk=dataset.pk).delete()
        raise JobCancelled()
    job.dataset = dataset
    progress.log.append(
        {"at": timezone.now().isoformat(), "step": "read_source", "percent": 1,
         "message": f"read {dataset.row_count} rows ({dataset.labelled_row_count} labelled) from data source "
                    f"'{source.name}' into dataset {dataset.pk}"}
    )


def _train(job: TrainingJob, progress: _JobProgress) -> TrainResult:
    if job.training_config.get("source"):
        _source_read(job, progress)
    config = training_config_parse(job.training_config)
    horizon = transaction_horizon(tenant=job.tenant, model_type=job.model_type, dataset=job.dataset)
    if horizon:
        config = replace(config, feature_options=replace(config.feature_options, btyd_horizon_days=horizon))
    progress("load_data", 2)
    features, labels = training_frame(tenant=job.tenant, model_type=job.model_type, dataset_id=job.dataset_id)
    if config.features and job.training_config.get("source"):
        check_feature_names(config.features, [column for column in features.columns])
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

    def record_artifact(path: str) -> None:
        # On the job before the file exists: whoever takes over a run killed while
        # writing it (or before registering it) knows which file to remove.
        if not progress.mine().filter(cancel_requested=False).update(artifact_path=path, heartbeat_at=timezone.now()):
            raise JobCancelled()

    def mark_succeeded(model_version: ModelVersion) -> None:
        progress.log.append({"at": timezone.now().isoformat(), "step": "succeeded", "percent": 100})
        updated = progress.mine().filter(cancel_requested=False).update(
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
        on_artifact_path=record_artifact,
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


def _finish(job_id: Any, status: str, progress: _JobProgress, *, error: str) -> bool:
    """End this run's job; False when it was no longer this run's to end."""
    progress.log.append({"at": timezone.now().isoformat(), "step": status, "percent": None, "error": error})
    ended = progress.mine().update(status=status, error=error, finished_at=timezone.now(), log=progress.log)
    if ended:
        logger.warning("training_job_%s id=%s error=%s", status, job_id, error)
    else:
        logger.warning("training_job_lost id=%s error=%s (the job was taken over or had ended)", job_id, error)
    return bool(ended)
