"""Every hostile input is a 4xx (or a 503 for an outage) in the one error shape, never a 500."""
from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from tests.conftest import TENANT

# Every endpoint that takes a JSON body, with a body it would otherwise accept the shape of.
BODIES: list[tuple[str, str, dict[str, Any]]] = [
    ("post", "/predict", {"model_type": "lead_conversion", "user_id": TENANT, "data": {"company": "x"}}),
    ("post", "/predict/batch", {"model_type": "lead_conversion", "user_id": TENANT, "data": [{"company": "x"}]}),
    ("post", "/train", {"model_type": "lead_conversion", "algorithm": "random_forest", "model_name": "m",
                        "user_id": TENANT, "training_config": {"preprocessing": {"scaling": "x"}}}),
    ("post", "/datasets", {"user_id": TENANT, "model_type": "lead_conversion", "name": "n", "target": "t",
                           "rows": [{"t": "x"}]}),
    ("post", "/preprocess", {"data": [{"company": "x"}]}),
    ("post", "/outcomes", {"user_id": TENANT, "model_type": "lead_conversion",
                           "outcomes": [{"entity_id": "x", "outcome": "won"}]}),
    ("put", f"/monitoring/{TENANT}/lead_conversion/triggers", {"new_rows_min": 5}),
    ("put", f"/monitoring/{TENANT}/webhook", {"url": "https://example.com/hook"}),
    ("post", f"/models/{TENANT}/m/activate", {"version": 1, "reason": "x"}),
    ("post", f"/models/{TENANT}/m/retrain", {"reason": "x"}),
]
PATHS = [
    ("get", "/models/{u}"),
    ("delete", "/models/{u}/m"),
    ("post", "/models/{u}/m/activate"),
    ("get", "/monitoring/{u}/lead_conversion"),
    ("get", "/monitoring/{u}/lead_conversion/events"),
    ("get", "/monitoring/{u}/lead_conversion/triggers"),
    ("get", "/insights/{u}/lead_conversion"),
    ("get", "/monitoring/{u}/webhook"),
    ("get", "/jobs/{u}"),
    ("get", "/datasets/{u}"),
]


def assert_refused(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    body = response.json()
    assert body["success"] is False and body["error"] == body["detail"] and isinstance(body["details"], dict)
    return body


@pytest.fixture
def service(client_for: Any, service_key: str) -> APIClient:
    return client_for(service_key)


@pytest.mark.parametrize(("method", "path", "body"), BODIES, ids=[f"{m} {p}" for m, p, _ in BODIES])
def test_json_nested_a_hundred_thousand_levels_deep_is_a_400(
    service: APIClient, method: str, path: str, body: dict[str, Any]
) -> None:
    deep = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_refused(getattr(service, method)(path, deep, content_type="application/json"))


@pytest.mark.parametrize(("method", "path", "body"), BODIES, ids=[f"{m} {p}" for m, p, _ in BODIES])
def test_a_lone_surrogate_anywhere_in_a_body_is_a_400_naming_the_field(
    service: APIClient, method: str, path: str, body: dict[str, Any]
) -> None:
    raw = ('{"x_field": "a\\ud800b", ' + json.dumps(body)[1:]).encode()
    refused = assert_refused(getattr(service, method)(path, raw, content_type="application/json"))
    assert "x_field" in refused["details"]


@pytest.mark.parametrize(("method", "path", "body"), BODIES, ids=[f"{m} {p}" for m, p, _ in BODIES])
def test_a_nul_character_anywhere_in_a_body_is_a_400(
    service: APIClient, method: str, path: str, body: dict[str, Any]
) -> None:
    assert_refused(getattr(service, method)(path, body | {"user_id": f"{TENANT}\x00"}, format="json"))
    assert_refused(getattr(service, method)(path, body | {"extra": {"deep": ["a\x00"]}}, format="json"))


def test_a_lone_surrogate_in_a_record_is_named_like_any_record_field(service: APIClient) -> None:
    raw = b'{"model_type": "lead_conversion", "user_id": "tenant-a", "data": {"company": "Acme\\udc00"}}'
    assert "company" in assert_refused(service.post("/predict", raw, content_type="application/json"))["details"]
    raw = b'{"model_type": "lead_conversion", "user_id": "tenant-a", "data": [{"a": 1}, {"company": "\\ud800"}]}'
    refused = assert_refused(service.post("/predict/batch", raw, content_type="application/json"))
    assert "data[1].company" in refused["details"]


@pytest.mark.parametrize(("method", "path"), PATHS, ids=[f"{m} {p}" for m, p in PATHS])
def test_a_nul_character_in_a_path_parameter_is_a_400(service: APIClient, method: str, path: str) -> None:
    refused = assert_refused(getattr(service, method)(path.format(u="tenant%00a")))
    assert refused["details"]
    refused = assert_refused(getattr(service, method)(path.format(u=TENANT) + "?model_name=a%00b"))
    assert "model_name" in refused["details"]


def test_numbers_beyond_a_double_are_400s_naming_the_field(service: APIClient) -> None:
    raw = b'{"model_type": "lead_conversion", "user_id": "tenant-a", "data": {"lead_score": 1' + b"0" * 400 + b"}}"
    assert "lead_score" in assert_refused(service.post("/predict", raw, content_type="application/json"))["details"]
    for constant in (b"NaN", b"Infinity"):
        raw = b'{"model_type": "lead_conversion", "user_id": "tenant-a", "data": {"lead_score": ' + constant + b"}}"
        assert_refused(service.post("/predict", raw, content_type="application/json"))


def test_a_database_outage_mid_request_is_a_503_with_retry_after(
    service: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import predictions.services

    def lost(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(predictions.services, "predictions_insert", lost)
    response = service.post("/predict", BODIES[0][2], format="json")
    body = assert_refused(response, 503)
    assert response["Retry-After"] == "5" and body["details"] == {"database": ["OperationalError"]}
