"""Authentication and tenant isolation over HTTP."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from registry.tokens import hash_key
from registry.models import ApiToken, ModelVersion
from leadml.api.errors import ApplicationError
from registry.services import api_token_create, api_token_revoke
from tests.conftest import OTHER_TENANT, TENANT
from tests.factories import dataset_with_rows, model_version, token_for, training_job
from training.models import Dataset, DatasetRow, TrainingJob

ClientFor = Callable[[str | None], APIClient]


def assert_error_shape(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)
    return body


def balanced_leads(lead_rows: list[dict[str, Any]], per_class: int = 30) -> list[dict[str, Any]]:
    positives = [row for row in lead_rows if row["status"] in ("customer", "won")][:per_class]
    negatives = [row for row in lead_rows if row["status"] not in ("customer", "won")][:per_class]
    return positives + negatives


def predict_body(user_id: str) -> dict[str, Any]:
    return {
        "model_type": "lead_conversion",
        "user_id": user_id,
        "data": {"email": "jane@acme-analytics.com", "job_title": "CEO", "lead_score": 70},
    }


def other_tenant_model() -> ModelVersion:
    return model_version(OTHER_TENANT, name="theirs", status=ModelVersion.Status.ACTIVE)


# --- authentication -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/predict"),
        ("post", "/predict/batch"),
        ("post", "/train"),
        ("post", "/datasets"),
        ("get", f"/models/{TENANT}"),
        ("get", "/jobs/00000000-0000-4000-8000-000000000000"),
    ],
)
def test_request_without_token_is_401_with_error_shape(db: None, client_for: ClientFor, method: str, path: str) -> None:
    response = getattr(client_for(None), method)(path, {}, format="json")
    body = assert_error_shape(response, 401)
    assert "credentials" in body["error"].lower()


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",  # keyword without key
        "Bearer two parts",  # key with a space
        "Bearer lml_not-a-real-key",  # well-formed but unknown
        "Basic dXNlcjpwYXNz",  # another scheme: nobody is authenticated
    ],
)
def test_malformed_or_invalid_token_is_401(db: None, tenant_key: str, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_error_shape(client.get(f"/models/{TENANT}"), 401)


def test_revoked_token_is_401(db: None, client_for: ClientFor) -> None:
    token, key = token_for(TENANT, name="soon revoked")
    client = client_for(key)
    assert client.get(f"/models/{TENANT}").status_code == 200
    api_token_revoke(token=token)
    body = assert_error_shape(client.get(f"/models/{TENANT}"), 401)
    assert "revoked" in body["error"].lower()


def test_token_keyword_works_like_bearer(tenant_key: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {tenant_key}")
    response = client.get(f"/models/{TENANT}")
    assert response.status_code == 200
    assert response.json()["user_id"] == TENANT


def test_health_needs_no_token(db: None, client_for: ClientFor) -> None:
    response = client_for(None).get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_tokens_are_stored_hashed(db: None) -> None:
    token, key = token_for(TENANT, name="hashed")
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert all(key not in str(value) for value in stored.values())
    assert stored["key_hash"] == hash_key(key) != key


def test_create_api_token_command_prints_a_working_tenant_key(db: None, client_for: ClientFor) -> None:
    out, err = StringIO(), StringIO()
    call_command("create_api_token", "--user-id", TENANT, stdout=out, stderr=err)
    key = out.getvalue().strip()
    assert key and "\n" not in key
    token = ApiToken.objects.get(key_hash=hash_key(key))
    assert token.tenant == TENANT and not token.is_service
    client = client_for(key)
    assert client.get(f"/models/{TENANT}").status_code == 200
    assert client.get(f"/models/{OTHER_TENANT}").status_code == 403


def test_create_api_token_command_prints_a_working_service_key(db: None, client_for: ClientFor) -> None:
    out = StringIO()
    call_command("create_api_token", "--service", "--name", "crm backend", stdout=out, stderr=StringIO())
    key = out.getvalue().strip()
    token = ApiToken.objects.get(key_hash=hash_key(key))
    assert token.is_service and token.name == "crm backend"
    client = client_for(key)
    assert client.get(f"/models/{TENANT}").status_code == 200
    assert client.get(f"/models/{OTHER_TENANT}").status_code == 200


# --- scoped tokens naming another tenant: 403 ----------------------------------------


def test_scoped_token_naming_other_user_id_on_predict_is_403(api: APIClient) -> None:
    body = assert_error_shape(api.post("/predict", predict_body(OTHER_TENANT), format="json"), 403)
    assert TENANT in body["error"]


def test_scoped_token_naming_other_user_id_on_batch_is_403(api: APIClient) -> None:
    payload = predict_body(OTHER_TENANT) | {"data": [predict_body(OTHER_TENANT)["data"]]}
    assert_error_shape(api.post("/predict/batch", payload, format="json"), 403)


def test_scoped_token_naming_other_user_id_on_train_is_403(api: APIClient) -> None:
    payload = {
        "model_type": "lead_conversion", "algorithm": "logistic_regression",
        "model_name": "stolen", "user_id": OTHER_TENANT, "training_config": {},
    }
    assert_error_shape(api.post("/train", payload, format="json"), 403)
    assert not TrainingJob.objects.exists()


def test_scoped_token_naming_other_user_id_on_datasets_is_403(
    api: APIClient, lead_rows: list[dict[str, Any]]
) -> None:
    payload = {
        "user_id": OTHER_TENANT, "model_type": "lead_conversion", "name": "leads", "target": "status",
        "positive_values": ["customer", "won"], "rows": balanced_leads(lead_rows),
    }
    assert_error_shape(api.post("/datasets", payload, format="json"), 403)
    assert not Dataset.objects.exists() and not DatasetRow.objects.exists()


def test_scoped_token_listing_other_tenants_models_is_403(api: APIClient) -> None:
    other_tenant_model()
    assert_error_shape(api.get(f"/models/{OTHER_TENANT}"), 403)


def test_scoped_token_activating_other_tenants_model_is_403(api: APIClient) -> None:
    other_tenant_model()
    response = api.post(f"/models/{OTHER_TENANT}/theirs/activate", {"version": 1, "reason": "x"}, format="json")
    assert_error_shape(response, 403)


def test_scoped_token_deleting_other_tenants_model_is_403(api: APIClient) -> None:
    theirs = other_tenant_model()
    assert_error_shape(api.delete(f"/models/{OTHER_TENANT}/theirs?force=true"), 403)
    assert ModelVersion.objects.filter(pk=theirs.pk).exists()


# --- another tenant's ids: 404 -------------------------------------------------------


def test_other_tenants_dataset_id_is_404(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    theirs = dataset_with_rows(OTHER_TENANT, "lead_conversion", balanced_leads(lead_rows))
    body = assert_error_shape(api.get(f"/datasets/{theirs.id}"), 404)
    assert str(theirs.id) in body["error"]
    # Indistinguishable from an id that does not exist at all.
    assert_error_shape(api.get(f"/datasets/{uuid.uuid4()}"), 404)
    assert_error_shape(api.get("/datasets/not-a-uuid"), 404)


def test_other_tenants_job_id_is_404_for_detail_and_cancel(api: APIClient) -> None:
    theirs = training_job(OTHER_TENANT, model_name="theirs")
    assert_error_shape(api.get(f"/jobs/{theirs.id}"), 404)
    assert_error_shape(api.post(f"/jobs/{theirs.id}/cancel"), 404)
    theirs.refresh_from_db()
    assert theirs.status == TrainingJob.Status.QUEUED and not theirs.cancel_requested


def test_own_job_id_is_visible(api: APIClient) -> None:
    mine = training_job(TENANT, model_name="mine")
    response = api.get(f"/jobs/{mine.id}")
    assert response.status_code == 200
    assert response.json()["job_id"] == str(mine.id)


def test_other_tenants_model_name_on_own_delete_is_404(api: APIClient) -> None:
    theirs = other_tenant_model()
    assert_error_shape(api.delete(f"/models/{TENANT}/theirs?force=true"), 404)
    assert ModelVersion.objects.filter(pk=theirs.pk).exists()


def test_model_list_shows_only_own_tenants_models(api: APIClient) -> None:
    other_tenant_model()
    response = api.get(f"/models/{TENANT}")
    assert response.status_code == 200
    assert response.json()["models"] == []


# --- service tokens --------------------------------------------------------------------


def test_service_token_may_upload_datasets_for_any_tenant(
    client_for: ClientFor, service_key: str, lead_rows: list[dict[str, Any]]
) -> None:
    client = client_for(service_key)
    ids = {}
    for tenant in (TENANT, OTHER_TENANT):
        payload = {
            "user_id": tenant, "model_type": "lead_conversion", "name": f"leads of {tenant}", "target": "status",
            "positive_values": ["customer", "won"], "rows": balanced_leads(lead_rows),
        }
        response = client.post("/datasets", payload, format="json")
        assert response.status_code == 201, response.content
        assert response.json()["user_id"] == tenant
        ids[tenant] = response.json()["dataset_id"]
    assert Dataset.objects.get(pk=ids[TENANT]).tenant == TENANT
    assert Dataset.objects.get(pk=ids[OTHER_TENANT]).tenant == OTHER_TENANT
    # The service token may read both back.
    assert client.get(f"/datasets/{ids[OTHER_TENANT]}").status_code == 200
    assert client.get(f"/datasets/{ids[TENANT]}").status_code == 200


def test_service_token_may_list_any_tenants_models(client_for: ClientFor, service_key: str) -> None:
    other_tenant_model()
    response = client_for(service_key).get(f"/models/{OTHER_TENANT}")
    assert response.status_code == 200
    assert [model["model_name"] for model in response.json()["models"]] == ["theirs"]


@pytest.mark.parametrize("tenant", [" demo", "demo ", "\tdemo\n"])
def test_a_token_for_a_user_id_with_surrounding_spaces_is_refused(db: None, tenant: str) -> None:
    # Bodies' user_id are read trimmed: such a token got 403 on every POST.
    with pytest.raises(ApplicationError) as refused:
        api_token_create(name="spaces", tenant=tenant)
    assert refused.value.details == {"user_id": ["spaces"]}
    with pytest.raises(CommandError, match="spaces"):
        call_command("create_api_token", "--user-id", tenant)
    assert not ApiToken.objects.exists()
