"""A bounded fuzz run: schemathesis generates requests from the OpenAPI schema; none may be a 5xx.

The whole schema, every operation, about a dozen generated requests each (a few hundred
in all), through the WSGI application with a service token (any tenant), so the
requests reach past authorisation into validation and the services.
"""
from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from leadml.wsgi import application
from registry.services import api_token_create

EXAMPLES_PER_OPERATION = 12

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def service_token(db: None) -> str:
    _, key = api_token_create(name="fuzz", is_service=True)
    return key


@pytest.fixture(autouse=True)
def _keep_the_test_transaction() -> Any:
    """Calls go straight into the WSGI application, past Django's test client, so the
    per-request connection housekeeping runs. Inside the test's transaction it would see
    autocommit off and close the connection (PostgreSQL), failing every later call with
    503; the test client disconnects it the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,  # the same requests every run: a failure reproduces
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_is_a_server_error(case: Any, service_token: str) -> None:
    response = case.call(headers={"Authorization": f"Bearer {service_token}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}\n"
        f"body: {str(getattr(case, 'body', None))[:500]}"
    )
