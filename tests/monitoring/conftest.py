"""Fixtures and helpers of the monitoring tests: a faster lead model, scoring, outcomes, reports."""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework.response import Response
from rest_framework.test import APIClient

from registry.models import ModelVersion
from tests.conftest import TENANT
from tests.factories import trained_model

LEAD = "lead_conversion"
CLV = "customer_lifetime_value"
POSITIVE = ("customer", "won")


def lead_features(rows: list[dict[str, Any]], prefix: str | None = None) -> list[dict[str, Any]]:
    """The leads as the CRM scores them: no `status`, ids optionally renamed `<prefix>-<n>`."""
    features = []
    for index, row in enumerate(rows):
        record = {key: value for key, value in row.items() if key != "status"}
        if prefix is not None:
            record["id"] = f"{prefix}-{index}"
        features.append(record)
    return features


def converted(row: dict[str, Any]) -> bool:
    return row["status"] in POSITIVE


def score(
    api: APIClient, records: list[dict[str, Any]], model_type: str = LEAD, **extra: Any
) -> list[dict[str, Any]]:
    """Score the records with one /predict/batch call and return its per-record answers."""
    response = api.post(
        "/predict/batch", {"model_type": model_type, "user_id": TENANT, "data": records, **extra}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()["predictions"]


def post_outcomes(
    api: APIClient, outcomes: list[Any], model_type: str = LEAD, user_id: str = TENANT
) -> Response:
    return api.post("/outcomes", {"user_id": user_id, "model_type": model_type, "outcomes": outcomes}, format="json")


def accepted_outcomes(api: APIClient, outcomes: list[Any], model_type: str = LEAD) -> dict[str, Any]:
    response = post_outcomes(api, outcomes, model_type)
    assert response.status_code == 200, response.json()
    return response.json()


def monitoring(api: APIClient, model_type: str = LEAD, **params: Any) -> dict[str, Any]:
    response = api.get(f"/monitoring/{TENANT}/{model_type}", params)
    assert response.status_code == 200, response.json()
    return response.json()


def triggers_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in report["triggers"]}


def put_triggers(api: APIClient, changes: dict[str, Any], model_type: str = LEAD) -> dict[str, Any]:
    response = api.put(f"/monitoring/{TENANT}/{model_type}/triggers", changes, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.fixture
def lead_model(db: None, lead_rows: list[dict[str, Any]]) -> ModelVersion:
    """tests/conftest.py's lead model with one C instead of a grid of three: a third of the fits."""
    return trained_model(TENANT, LEAD, lead_rows, config={"param_grid": {"C": [1.0]}}, reuse=True)
