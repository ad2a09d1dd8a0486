"""The answers of /predict and /predict/batch hold exactly the fields their serializers declare.

The bodies are rendered in the serializers' `to_representation` (predictions/serializers.py),
so nothing else keeps the rendering and the OpenAPI schema together: this does.
"""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework import serializers
from rest_framework.test import APIClient

from predictions.serializers import (
    CustomerBatchPredictionSerializer,
    LeadBatchPredictionSerializer,
    PredictBatchResponseSerializer,
    PredictResponseSerializer,
)
from registry.models import ModelVersion
from tests.conftest import clv_request, lead_request

LEAD = {"id": "L-1", "email": "ann@acme.io", "job_title": "VP Sales", "lead_score": 70, "engagement_score": 60}
CUSTOMER = {"customer_id": "C-1", "total_purchases": 5, "avg_order_value": 120.0, "tenure_days": 400}


def _declared(serializer: serializers.Serializer) -> tuple[set[str], set[str]]:
    """(every declared field, the ones always present)."""
    fields = serializer.get_fields()
    return set(fields), {name for name, declared in fields.items() if declared.required is not False}


def assert_shape(body: dict[str, Any], serializer: serializers.Serializer) -> None:
    declared, always = _declared(serializer)
    assert set(body) <= declared, f"rendered but not declared: {sorted(set(body) - declared)}"
    assert always <= set(body), f"declared but not rendered: {sorted(always - set(body))}"


@pytest.mark.parametrize("explain", [True, False])
def test_a_model_answer_matches_its_declared_fields(
    api: APIClient, lead_model: ModelVersion, explain: bool
) -> None:
    single = api.post("/predict", lead_request(LEAD, explain=explain), format="json")
    assert single.status_code == 200, single.content
    assert_shape(single.json(), PredictResponseSerializer())
    assert ("reasons" in single.json()) is explain

    batch = api.post("/predict/batch", lead_request([LEAD, {**LEAD, "id": ""}], explain=explain), format="json")
    assert batch.status_code == 200, batch.content
    body = batch.json()
    assert_shape(body, PredictBatchResponseSerializer())
    for item in body["predictions"]:
        assert_shape(item, LeadBatchPredictionSerializer())
    assert [item["lead_id"] for item in body["predictions"]] == ["L-1", "lead_1"]  # unnamed rows by position


def test_a_rules_answer_matches_its_declared_fields(api: APIClient) -> None:
    single = api.post("/predict", clv_request(CUSTOMER), format="json")
    assert single.status_code == 200, single.content
    body = single.json()
    assert body["source"] == "rules" and body["fallback_reason"]
    assert_shape(body, PredictResponseSerializer())
    assert body["conversion_probability"] is None and body["prediction_class"] is None

    batch = api.post("/predict/batch", clv_request([CUSTOMER, {"total_purchases": 1}]), format="json")
    assert batch.status_code == 200, batch.content
    body = batch.json()
    assert_shape(body, PredictBatchResponseSerializer())
    for item in body["predictions"]:
        assert_shape(item, CustomerBatchPredictionSerializer())
    assert [item["customer_id"] for item in body["predictions"]] == ["C-1", "customer_1"]
