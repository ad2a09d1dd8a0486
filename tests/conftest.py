"""Shared fixtures: tokens, API clients, small synthetic datasets, trained models."""
from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import pytest
from django.core.cache import cache as django_cache
from rest_framework.test import APIClient
from threadpoolctl import threadpool_limits

from demo.data import generate_customers, generate_leads
from leadml.api.throttling import ApiTokenRateThrottle
from registry.cache import cache_clear
from registry.models import ModelVersion
from registry.services import api_token_create
from training.models import Dataset, TrainingJob
from training.services.datasets import dataset_create
from leadml.ml.types import TrainResult
from training.services import run as job_services
from training.config import job_config_parse
from training.services.run import training_job_run_now

DATASETS_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TENANT = "tenant-a"
OTHER_TENANT = "tenant-b"


def shared_dataset(relative: str) -> Path:
    """Return a path under ../shared/datasets; skip locally, fail in CI, when it is absent."""
    path = DATASETS_DIR / relative
    if not path.exists():
        if os.environ.get("LEADML_REQUIRE_DATASETS"):
            pytest.fail(f"required dataset missing: {path}")
        pytest.skip(f"dataset not available: {path}")
    return path


# One native thread per test process, however pytest is started (scripts/test also sets
# OMP_NUM_THREADS): xdist runs a process per core and oversubscribed OpenMP is very slow.
threadpool_limits(1)


@pytest.fixture(autouse=True)
def _fresh_model_cache() -> None:
    # Version ids repeat across tests (rolled-back transactions), so no cache may leak:
    # neither the model cache nor Django's (the admin dashboard's summaries).
    cache_clear()
    django_cache.clear()
    # Token ids repeat too: no test may inherit another's local throttle counts.
    ApiTokenRateThrottle._windows.clear()


@pytest.fixture
def client_for() -> Callable[[str | None], APIClient]:
    """Return a factory: an API client authenticated with the given key (or none)."""

    def make(key: str | None) -> APIClient:
        client = APIClient()
        if key:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return make


@pytest.fixture
def tenant_key(db: None) -> str:
    _, key = api_token_create(name="tenant a", tenant=TENANT)
    return key


@pytest.fixture
def other_tenant_key(db: None) -> str:
    _, key = api_token_create(name="tenant b", tenant=OTHER_TENANT)
    return key


@pytest.fixture
def service_key(db: None) -> str:
    _, key = api_token_create(name="crm", is_service=True)
    return key


@pytest.fixture
def api(client_for: Callable[[str | None], APIClient], tenant_key: str) -> APIClient:
    return client_for(tenant_key)


def records(frame: Any) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))


@pytest.fixture(scope="session")
def lead_rows() -> list[dict[str, Any]]:
    return records(generate_leads(400, seed=5))


@pytest.fixture(scope="session")
def customer_rows() -> list[dict[str, Any]]:
    return records(generate_customers(300, seed=5))


def make_dataset(tenant: str, model_type: str, rows: list[dict[str, Any]]) -> Dataset:
    if model_type == "lead_conversion":
        return dataset_create(
            tenant=tenant, model_type=model_type, name="leads", target="status", rows=rows,
            positive_values=["customer", "won"],
        )
    return dataset_create(tenant=tenant, model_type=model_type, name="customers", target="lifetime_value", rows=rows)


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

    `reuse`: fit once per test process for the same data and config (fixtures that just
    need a trained model; see _training_reused).
    """
    run = lambda: training_job_run_now(  # noqa: E731
        tenant=tenant, model_type=model_type, algorithm=algorithm, model_name=name,
        training_config=job_config_parse({"cv_folds": 3, **(config or {})}), requested_by="test",
    )
    if not reuse:
        return run()
    with _training_reused():
        return run()


@pytest.fixture
def lead_model(db: None, lead_rows: list[dict[str, Any]]) -> ModelVersion:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    job = train_inline(TENANT, "lead_conversion", "logistic_regression", "leads_lr", reuse=True)
    assert job.status == "succeeded", job.error
    return job.model_version


@pytest.fixture
def clv_model(db: None, customer_rows: list[dict[str, Any]]) -> ModelVersion:
    make_dataset(TENANT, "customer_lifetime_value", customer_rows)
    job = train_inline(TENANT, "customer_lifetime_value", "linear_regression", "clv_lr", reuse=True)
    assert job.status == "succeeded", job.error
    return job.model_version


# Request bodies for the tenant the API fixtures authorise.
def lead_request(data: Any, **extra: Any) -> dict[str, Any]:
    return {"model_type": "lead_conversion", "user_id": TENANT, "data": data, **extra}


def clv_request(data: Any, **extra: Any) -> dict[str, Any]:
    return {"model_type": "customer_lifetime_value", "user_id": TENANT, "data": data, **extra}


def without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in keys}


# Fixtures through which a test reaches the test database (pytest-django's own).
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback", "live_server"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """LEADML_DATABASE_TESTS_ONLY=1: keep only the tests that use the test database.

    CI runs the suite on SQLite, then again on PostgreSQL (README, "Tests"); a test that
    never touches the test database (the ML core, the served processes, which always run
    on a SQLite file of their own) gives the same answer on the second run, so that run
    leaves them out and keeps CI inside its time budget. So does it with the heavy tests
    marked `single_database` (model quality on real data, the bench and demo commands):
    their database use is ordinary ORM, covered on PostgreSQL by the other tests.
    """
    if os.environ.get("LEADML_DATABASE_TESTS_ONLY") != "1":
        return
    kept, left_out = [], []
    for item in items:
        uses_database = item.get_closest_marker("django_db") is not None or bool(
            DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
        once = item.get_closest_marker("single_database") is not None
        (kept if uses_database and not once else left_out).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
