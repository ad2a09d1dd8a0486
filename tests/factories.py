"""Factories for the objects tests keep building: tokens, datasets, jobs, model versions, predictions.

Plain functions with keyword arguments and defaults a test overrides only where it
matters. Each goes through the project's own service where one makes the object
(`api_token_create`, `dataset_create`, `training_job_run_now`, `predictions_insert`),
so a test's setup passes the same checks as the real write. Only where a test needs a
state no service produces (a job row never handed to the broker, a job left `running`
by a dead worker, a registry row without an artifact) does a factory write the ORM row
itself; its docstring says so.

The tenant is always the first argument: tests/conftest.py's TENANT and OTHER_TENANT,
usually.
"""
from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pandas as pd
from django.utils import timezone
from rest_framework.test import APIClient

from leadml.ml.types import TrainResult
from predictions.models import Prediction
from predictions.prediction_log import PredictionRow, predictions_insert
from registry.models import ApiToken, ModelVersion
from registry.services import api_token_create
from training.config import job_config_parse
from training.models import Dataset, TrainingJob
from training.services import run as job_services
from training.services.datasets import dataset_create
from training.services.run import training_job_run_now

LEAD = "lead_conversion"
CLV = "customer_lifetime_value"
# What a dataset of each model type is called and trained on unless a test says otherwise
# (the demo data's columns: demo/data.py).
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    LEAD: {"name": "leads", "target": "status", "positive_values": ["customer", "won"]},
    CLV: {"name": "customers", "target": "lifetime_value"},
}
# The model a test trains when it only needs *a* trained model of the type.
MODEL_DEFAULTS: dict[str, dict[str, str]] = {
    LEAD: {"algorithm": "logistic_regression", "name": "leads_lr"},
    CLV: {"algorithm": "linear_regression", "name": "clv_lr"},
}


# --- tokens and clients --------------------------------------------------------------


def token_for(tenant: str, *, name: str = "test") -> tuple[ApiToken, str]:
    """A tenant-scoped API token and its key (through `api_token_create`)."""
    return api_token_create(name=name, tenant=tenant)


def service_token(*, name: str = "crm") -> tuple[ApiToken, str]:
    """A service token (acts for any tenant) and its key (through `api_token_create`)."""
    return api_token_create(name=name, is_service=True)


def client_with(key: str | None) -> APIClient:
    """An API client sending `key` as its bearer token (none: an anonymous client)."""
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def tenant_client(tenant: str, *, name: str = "test") -> APIClient:
    """An API client authenticated with a new token of `tenant`."""
    _, key = token_for(tenant, name=name)
    return client_with(key)


def service_client(*, name: str = "crm") -> APIClient:
    """An API client authenticated with a new service token (the CRM backend)."""
    _, key = service_token(name=name)
    return client_with(key)


# --- datasets ------------------------------------------------------------------------


def dataset_with_rows(
    tenant: str,
    model_type: str,
    rows: list[dict[str, Any]],
    *,
    name: str | None = None,
    target: str | None = None,
    positive_values: list[Any] | None = None,
    **options: Any,
) -> Dataset:
    """A ready dataset of `rows` (through `dataset_create`: validated, labelled, quality-reported).

    By default a lead dataset is "leads", its target `status`, converted when "customer"
    or "won"; a lifetime-value dataset is "customers" with target `lifetime_value` (the
    demo data's columns). `options` go to `dataset_create` as they are (`source_filename`,
    `negative_values`, ...).
    """
    defaults = DATASET_DEFAULTS[model_type]
    if positive_values is None:
        positive_values = defaults.get("positive_values")
    return dataset_create(
        tenant=tenant,
        model_type=model_type,
        name=name or defaults["name"],
        target=target or defaults["target"],
        rows=rows,
        positive_values=positive_values,
        **options,
    )


# --- trained models ------------------------------------------------------------------


# Results of train_model by their inputs, per test process (see train_inline's `reuse`).
_TRAINED: dict[str, tuple[TrainResult, list[tuple[tuple[Any, ...], dict[str, Any]]]]] = {}


def _training_key(features: pd.DataFrame, labels: pd.Series, options: dict[str, Any]) -> str:
    digest = hashlib.sha256(features.to_json(orient="split", date_format="iso").encode())
    digest.update(labels.to_json(orient="values").encode())
    digest.update(repr(sorted((name, value) for name, value in options.items() if name != "progress")).encode())
    return digest.hexdigest()


@contextmanager
def _training_reused() -> Iterator[None]:
    """train_model on inputs it already saw in this process returns a copy of that result.

    For fixtures that only need *a* trained model: the same rows, algorithm and config
    train the same model (seeded), so the fit is done once per test process and each
    test still registers its own version through the real job run, its progress steps
    replayed.
    """
    real = job_services.train_model

    def train_model(features: pd.DataFrame, labels: pd.Series, **options: Any) -> TrainResult:
        key = _training_key(features, labels, options)
        progress = options.get("progress")
        if key not in _TRAINED:
            steps: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

            def recording(*args: Any, **kwargs: Any) -> Any:
                steps.append((args, kwargs))
                return progress(*args, **kwargs) if progress is not None else None

            result = real(features, labels, **{**options, "progress": recording})
            _TRAINED[key] = (copy.deepcopy(result), steps)
            return result
        cached, steps = _TRAINED[key]
        for args, kwargs in steps:  # the job logs the same steps (and may still be cancelled)
            if progress is not None:
                progress(*args, **kwargs)
        return copy.deepcopy(cached)

    with mock.patch.object(job_services, "train_model", train_model):
        yield


def train_inline(
    tenant: str, model_type: str, algorithm: str, name: str, config: dict[str, Any] | None = None, *, reuse: bool = False
) -> TrainingJob:
    """Run a training job in-process (as the worker would) and return it finished.

    Through `training_job_run_now`: the same checks and run as a queued job, on the
    tenant's data already stored (see `dataset_with_rows`). `config` is the job's
    training_config over `{"cv_folds": 3}`. `reuse`: fit once per test process for the
    same data and config (fixtures that just need a trained model; see _training_reused).
    """
    run = lambda: training_job_run_now(  # noqa: E731
        tenant=tenant, model_type=model_type, algorithm=algorithm, model_name=name,
        training_config=job_config_parse({"cv_folds": 3, **(config or {})}), requested_by="test",
    )
    if not reuse:
        return run()
    with _training_reused():
        return run()


def trained_model(
    tenant: str,
    model_type: str,
    rows: list[dict[str, Any]],
    *,
    algorithm: str | None = None,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    reuse: bool = False,
) -> ModelVersion:
    """Store `rows` as a dataset (`dataset_with_rows`), train on them (`train_inline`) and return the version.

    Fails the test (with the job's error) unless the job succeeded. By default a lead
    model is a logistic regression named "leads_lr", a lifetime-value model a linear
    regression named "clv_lr". `config` and `reuse` as for `train_inline`.
    """
    defaults = MODEL_DEFAULTS[model_type]
    dataset_with_rows(tenant, model_type, rows)
    job = train_inline(
        tenant, model_type, algorithm or defaults["algorithm"], name or defaults["name"], config, reuse=reuse
    )
    assert job.status == "succeeded", job.error
    assert job.model_version is not None
    return job.model_version


# --- job rows in states no service leaves them in -------------------------------------


def training_job(
    tenant: str,
    *,
    model_name: str = "job",
    model_type: str = LEAD,
    algorithm: str = "logistic_regression",
    training_config: dict[str, Any] | None = None,
    requested_by: str = "test",
    **fields: Any,
) -> TrainingJob:
    """A training job row, written with the ORM: `queued` unless `fields` say otherwise.

    No service makes this: `training_job_create` checks the tenant's data and hands the
    job to the broker, `training_job_run_now` runs it. Tests need the bare row: a job a
    tenant can look at or cancel, one queued long ago that no worker took
    (`enqueued_at=...`), one `training_job_run` then runs with its collaborators patched.
    `training_config` defaults to `{"cv_folds": 3}`, as `train_inline` trains; `fields`
    are any other TrainingJob fields.
    """
    return TrainingJob.objects.create(
        tenant=tenant,
        model_type=model_type,
        algorithm=algorithm,
        model_name=model_name,
        # Stored as the service stores it: canonical (training.config).
        training_config=job_config_parse({"cv_folds": 3} if training_config is None else training_config).as_dict(),
        requested_by=requested_by,
        **fields,
    )


def running_job(tenant: str, *, model_name: str, silent_seconds: float, attempts: int = 1, **fields: Any) -> TrainingJob:
    """A job as a worker leaves it mid-fit: `running`, its last heartbeat `silent_seconds` ago.

    Written with the ORM (through `training_job`): only a worker's claim produces a
    running job, and only a worker that died (or stalled) leaves its heartbeat stale,
    which is what the reaper and cancel tests need. `fields`: e.g. `artifact_path` (a
    partial file), `retrain_of`, `cancel_requested`.
    """
    beat = timezone.now() - timedelta(seconds=silent_seconds)
    options: dict[str, Any] = {
        "status": TrainingJob.Status.RUNNING,
        "started_at": beat - timedelta(seconds=5),
        "heartbeat_at": beat,
        "attempts": attempts,
        "progress_step": "search:logistic_regression fit 2/9",
        "progress_percent": 30,
    }
    return training_job(tenant, model_name=model_name, **{**options, **fields})


# --- registry rows -------------------------------------------------------------------


def model_version(
    tenant: str,
    *,
    name: str = "leads_lr",
    model_type: str = LEAD,
    version: int = 1,
    algorithm: str | None = None,
    status: str = ModelVersion.Status.CANDIDATE,
    **fields: Any,
) -> ModelVersion:
    """A registry row without an artifact file, written with the ORM; a candidate unless `status` says otherwise.

    No service makes this: `model_version_register` stores a real artifact, numbers the
    version and activates a tenant's first one. The row is enough for requests refused
    or answered before a model is loaded (listing, activation, deletion, name checks).
    The artifact path names a file that does not exist. The algorithm defaults to the
    model type's usual one (logistic_regression, linear_regression); `fields` are any
    other ModelVersion fields.
    """
    return ModelVersion.objects.create(
        tenant=tenant,
        model_type=model_type,
        name=name,
        version=version,
        algorithm=algorithm or MODEL_DEFAULTS[model_type]["algorithm"],
        artifact_path=f"{tenant}/{model_type}/none.joblib",
        artifact_sha256="0" * 64,
        status=status,
        **fields,
    )


# --- stored predictions --------------------------------------------------------------


def stored_prediction(
    tenant: str,
    *,
    entity_id: str,
    model_type: str = LEAD,
    model_version: ModelVersion | None = None,
    value: float = 0.5,
    source: str = Prediction.Source.MODEL,
    input: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> Prediction:
    """One prediction in the log, as scoring stores it (through `predictions_insert`), without scoring anything.

    For tests about what refers to predictions (outcomes, monitoring windows) that need a
    row of a given tenant, entity or time and not a model to produce it.
    """
    [prediction_id] = predictions_insert([
        PredictionRow(
            tenant=tenant,
            model_type=model_type,
            model_version_id=model_version.pk if model_version is not None else None,
            entity_id=entity_id,
            batch_id=None,
            source=source,
            input=input or {},
            output=output or {},
            value=value,
            latency_ms=1.0,
            created_at=created_at or timezone.now(),
        )
    ])
    return Prediction.objects.get(pk=prediction_id)
