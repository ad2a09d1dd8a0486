"""Numbers a forest cannot compute with: scikit-learn's forests read their input as float32.

A value beyond ±3.4e38 once transformed (1e300, say) became infinite there; the model
"failed", the answer fell back to the rules and the log got a traceback. Now it is a
400 naming the field (and in a batch the record), and nothing is stored.
"""
from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

import predictions.prediction_log as prediction_log
import predictions.services as services
from leadml.api.errors import ApplicationError
from predictions.models import Prediction
from predictions.services import predictions_make
from registry.models import ModelVersion
from tests.conftest import TENANT, lead_request, without
from tests.factories import trained_model

FOREST_CONFIG = {"param_grid": {"n_estimators": [20], "max_depth": [4]}}
HUGE = 1e300


@pytest.fixture
def forest(db: None, lead_rows: list[dict[str, Any]]) -> ModelVersion:
    return trained_model(TENANT, "lead_conversion", lead_rows, algorithm="random_forest", name="forest",
                         config=FOREST_CONFIG, reuse=True)


def leads(lead_rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    base = [without(row, "status") for row in lead_rows]
    return [dict(base[index % len(base)]) for index in range(count)]


def test_a_single_lead_beyond_float32_is_a_400_naming_the_field(
    api: APIClient, forest: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    record = leads(lead_rows, 1)[0] | {"lead_score": HUGE}
    response = api.post("/predict", lead_request(record), format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body["details"]) == ["lead_score"]
    assert "32-bit floats" in body["error"] and "1e+300" in body["error"]
    assert Prediction.objects.count() == 0


def test_a_huge_number_the_pipeline_brings_within_float32_is_scored(
    api: APIClient, forest: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    # What the forest reads of a company size is its logarithm: 1e300 is no trouble there.
    record = leads(lead_rows, 1)[0] | {"company_size": HUGE}
    response = api.post("/predict", lead_request(record), format="json")
    assert response.status_code == 200, response.content
    assert response.json()["source"] == "model"


@pytest.mark.parametrize("count", [10, 120])  # records checked one by one, and a column at a time
def test_a_batch_names_the_first_record_beyond_float32(
    api: APIClient, forest: ModelVersion, lead_rows: list[dict[str, Any]], count: int
) -> None:
    records = leads(lead_rows, count)
    records[7]["lead_score"] = -HUGE
    records[count - 1]["engagement_score"] = HUGE
    response = api.post("/predict/batch", lead_request(records), format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()["details"]) == ["data[7].lead_score"]
    assert Prediction.objects.count() == 0


def test_a_streamed_batch_names_the_record_by_its_place_in_the_whole_batch(
    forest: ModelVersion, lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("streaming is PostgreSQL's (COPY)")
    monkeypatch.setattr(prediction_log, "STREAM_MIN_ROWS", 10)
    monkeypatch.setattr(services, "STREAM_PART_ROWS", 7)
    records = leads(lead_rows, 40)
    records[30]["lead_score"] = HUGE  # in the fifth part, after four were sent to the COPY
    with pytest.raises(ApplicationError) as refused:
        predictions_make(tenant=TENANT, model_type="lead_conversion", records=records, batch=True)
    assert list(refused.value.details) == ["data[30].lead_score"]
    assert Prediction.objects.count() == 0
