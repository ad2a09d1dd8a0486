"""Running a training job: claim it once, keep its heartbeat, train, register the version, finish.

The worker only writes while the row's `attempts` is the one it claimed (see jobs.py);
a delivery that finds its job running with a stale heartbeat first does what the
reaper would (reaper.py).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import F
from django.utils import timezone
from django_q.exceptions import TimeoutException

from leadml.api.errors import ApplicationError
from leadml.ml.artifacts import dump_bytes
from leadml.ml.errors import ArtifactIntegrityError
from leadml.ml.promotion import PromotionDecision, decide_promotion
from leadml.ml.errors import MLError
from leadml.ml.train import check_feature_names, train_model
from leadml.ml.types import TrainResult
from registry.models import ModelVersion
from registry.cache import bundle_load
from registry.selectors import model_version_get_active
from registry.services import model_version_register
from training.config import JobConfig
from training.models import Dataset, TrainingJob
from training.selectors import training_frame
from training.services.jobs import _job_fields, transaction_horizon
from training.services.queue import training_job_announce
from training.services.reaper import _last_sign_of_life, _reap_running, _stale_cutoff
from training.services.sources import data_source_resolve, source_dataset_pull

logger = logging.getLogger(__name__)
Status = TrainingJob.Status



class JobCancelled(Exception):
    """Raised from the progress callback when the job was cancelled or is no longer ours."""



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
                training_job_announce(job.pk)
            raise
        except Exception as error:  # a bug or an environment failure: record it, never leave the job running
            logger.exception("training_job_crashed id=%s", job.pk)
            finished = _finish(job.pk, Status.FAILED, progress, error=f"{type(error).__name__}: {error}")
    # Only the run that ended the job tells the others (a run taken over ends nothing).
    if finished:
        training_job_announce(job.pk)



def training_job_run_now(
    *,
    tenant: str,
    model_type: str,
    algorithm: str,
    model_name: str,
    training_config: JobConfig,
    requested_by: str,
) -> TrainingJob:
    """Check, record and run a job in this process, as a worker would; return it finished.

    For management commands (the demo, the bench) and tests: the same checks and the
    same run as a queued job, without the broker.
    """
    job = TrainingJob.objects.create(
        **_job_fields(
            tenant=tenant, model_type=model_type, algorithm=algorithm, model_name=model_name,
            training_config=training_config, requested_by=requested_by,
        )
    )
    training_job_run(job_id=job.pk)
    job.refresh_from_db()
    return job



def _source_read(job: TrainingJob, config: JobConfig, progress: _JobProgress) -> None:
    """A job that trains from a data source reads the tenant's rows into a dataset of its own first.

    All rows or none (training/services/datasets.py); a source that cannot be read fails
    the job with the reason and stores nothing.
    """
    progress("read_source", 1)
    assert config.source is not None
    source = data_source_resolve(reference=config.source, model_type=job.model_type)
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
    config = JobConfig.from_dict(job.training_config)
    if config.source:
        _source_read(job, config, progress)
    training = replace(config.training, n_jobs=settings.LEADML_TRAIN_N_JOBS)
    horizon = transaction_horizon(tenant=job.tenant, model_type=job.model_type, dataset=job.dataset)
    if horizon:
        training = replace(training, feature_options=replace(training.feature_options, btyd_horizon_days=horizon))
    progress("load_data", 2)
    features, labels = training_frame(tenant=job.tenant, model_type=job.model_type, dataset_id=job.dataset_id)
    if training.features and config.source:
        check_feature_names(training.features, [column for column in features.columns])
    return train_model(
        features,
        labels,
        model_type=job.model_type,
        algorithm=job.algorithm,
        config=training,
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
        min_improvement=JobConfig.from_dict(job.training_config).min_improvement,
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
    model_version = model_version_register(
        tenant=job.tenant,
        model_type=job.model_type,
        name=job.model_name,
        algorithm=result.algorithm,
        artifact_bytes=data,
        artifact_sha256=sha256,
        fields=_version_fields(job, result),
        actor=job.requested_by or "training job",
        promote_reason=f"automatic promotion: {decision.reason}" if decision.promote else None,
        promote_over=champion_pk,
        on_registered=lambda version: _mark_succeeded(progress, version),
        on_artifact_path=lambda path: _record_artifact(progress, path),
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


def _version_fields(job: TrainingJob, result: TrainResult) -> dict[str, Any]:
    """The stored fields of the version a run registers: what the card, the registry and
    a later comparison read back without loading the artifact."""
    return {
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


def _record_artifact(progress: _JobProgress, path: str) -> None:
    """Put the artifact's path on the job before the file exists: whoever takes over a run
    killed while writing it (or before registering it) knows which file to remove."""
    if not progress.mine().filter(cancel_requested=False).update(artifact_path=path, heartbeat_at=timezone.now()):
        raise JobCancelled()


def _mark_succeeded(progress: _JobProgress, model_version: ModelVersion) -> None:
    """Mark the job succeeded inside the registration's transaction, so a job never succeeds
    without its version; a cancelled or taken-over run raises and rolls the registration back."""
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


def _finish(job_id: Any, status: str, progress: _JobProgress, *, error: str) -> bool:
    """End this run's job; False when it was no longer this run's to end."""
    progress.log.append({"at": timezone.now().isoformat(), "step": status, "percent": None, "error": error})
    ended = progress.mine().update(status=status, error=error, finished_at=timezone.now(), log=progress.log)
    if ended:
        logger.warning("training_job_%s id=%s error=%s", status, job_id, error)
    else:
        logger.warning("training_job_lost id=%s error=%s (the job was taken over or had ended)", job_id, error)
    return bool(ended)
