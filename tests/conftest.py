"""Shared fixtures: tokens, API clients, small synthetic datasets, trained models."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache as django_cache
from rest_framework.test import APIClient
from threadpoolctl import threadpool_limits

from demo.data import generate_customers, generate_leads
from leadml.api.throttling import ApiTokenRateThrottle
from registry.cache import cache_clear
from registry.models import ModelVersion
from tests.factories import client_with, dataset_with_rows, service_token, token_for, trained_model
from tests.factories import train_inline as train_inline  # re-exported: many test files import it from here
from training.models import Dataset

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
    return client_with


@pytest.fixture
def tenant_key(db: None) -> str:
    _, key = token_for(TENANT, name="tenant a")
    return key


@pytest.fixture
def other_tenant_key(db: None) -> str:
    _, key = token_for(OTHER_TENANT, name="tenant b")
    return key


@pytest.fixture
def service_key(db: None) -> str:
    _, key = service_token(name="crm")
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
    """The tenant's dataset of `rows` with the default name and target: tests.factories.dataset_with_rows."""
    return dataset_with_rows(tenant, model_type, rows)


@pytest.fixture
def lead_model(db: None, lead_rows: list[dict[str, Any]]) -> ModelVersion:
    return trained_model(TENANT, "lead_conversion", lead_rows, reuse=True)


@pytest.fixture
def clv_model(db: None, customer_rows: list[dict[str, Any]]) -> ModelVersion:
    return trained_model(TENANT, "customer_lifetime_value", customer_rows, reuse=True)


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
