"""Per-process caches of tokens and chosen versions, and the one counter that invalidates them."""
from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from registry.cache import registry_generation
from registry.models import ApiToken, ModelVersion
from registry.services import api_token_revoke, model_version_activate
from tests.conftest import TENANT, lead_request, train_inline

LEAD = {"email": "a@acme.com", "job_title": "CEO", "lead_score": 80}


def test_a_repeated_prediction_reads_one_counter_instead_of_token_and_version_rows(
    api: APIClient, lead_model: ModelVersion
) -> None:
    assert api.post("/predict", lead_request(LEAD), format="json").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert api.post("/predict", lead_request(LEAD), format="json").status_code == 200
    statements = [query["sql"] for query in queries.captured_queries]
    assert not any('"registry_apitoken"' in sql and "SELECT" in sql for sql in statements), statements
    assert not any('FROM "registry_modelversion"' in sql for sql in statements), statements
    assert sum('"registry_registrystate"' in sql for sql in statements) == 1


def test_activation_revocation_and_new_versions_move_the_counter(
    api: APIClient, lead_model: ModelVersion, tenant_key: str, client_for: Any
) -> None:
    before = registry_generation()
    newer = train_inline(TENANT, "lead_conversion", "logistic_regression", "leads_lr", {"min_improvement": 1.0}, reuse=True)
    assert registry_generation() > before
    assert api.post("/predict", lead_request(LEAD), format="json").json()["model_version"] == 1
    model_version_activate(model_version=newer.model_version, actor="test", reason="try")
    assert api.post("/predict", lead_request(LEAD), format="json").json()["model_version"] == 2
    # A revoked token is refused from the next request, though it was just kept in memory.
    api_token_revoke(token=ApiToken.objects.get(tenant=TENANT))
    assert client_for(tenant_key).post("/predict", lead_request(LEAD), format="json").status_code == 401


def test_the_scoring_path_leaves_the_versions_large_fields_unread(api: APIClient, lead_model: ModelVersion) -> None:
    with CaptureQueriesContext(connection) as queries:
        assert api.post("/predict", lead_request(LEAD), format="json").status_code == 200
    version_reads = [q["sql"] for q in queries.captured_queries if 'FROM "registry_modelversion"' in q["sql"]]
    assert version_reads and all('"training_report"' not in sql for sql in version_reads)
