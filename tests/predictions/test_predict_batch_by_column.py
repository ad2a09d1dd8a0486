"""`POST /predict/batch` on large and varied batches: checked a column at a time, answered as one by one."""
from __future__ import annotations

import random
from typing import Any

from rest_framework.test import APIClient

from predictions.models import Prediction
from registry.models import ModelVersion
from tests.conftest import lead_request, without


def large_batch(lead_rows: list[dict[str, Any]], count: int = 10_000) -> list[dict[str, Any]]:
    base = [without(row, "status") for row in lead_rows]
    return [base[index % len(base)] | {"id": f"lead-{index}"} for index in range(count)]


def test_a_bad_value_deep_in_a_large_batch_is_a_400_naming_its_record(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rows = large_batch(lead_rows)
    rows[7371]["lead_score"] = "lots"
    rows[9000]["created_at"] = "last tuesday"

    response = api.post("/predict/batch", lead_request(rows), format="json")

    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["details"] == {"data[7371].lead_score": ["field 'lead_score' must be a number, got 'lots'"]}
    assert not Prediction.objects.exists()


def test_a_nul_deep_in_a_large_batch_is_a_400_naming_its_record(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rows = large_batch(lead_rows)
    rows[7371]["custom_fields"] = {"note": "a\u0000b"}

    response = api.post("/predict/batch", lead_request(rows), format="json")

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["data[7371].custom_fields.note"]
    assert not Prediction.objects.exists()


# What CRMs send besides clean rows: numbers as text, placeholders, blanks, unknown fields,
# objects to flatten, out-of-range numbers, absent fields.
VARIATIONS: list[dict[str, Any]] = [
    {}, {"lead_score": "42"}, {"lead_score": " 1,000 "}, {"company_size": None}, {"industry": "  "},
    {"engagement_score": 1e6}, {"shoe_size": 44}, {"custom_fields": {"plan": "pro"}}, {"job_title": ""},
    {"email": None, "website_visits": "7"}, {"created_at": None}, {"source": 5},
]


def test_a_varied_batch_answers_each_record_as_it_answers_it_alone(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rng = random.Random(7)
    rows = []
    for index, row in enumerate(lead_rows[:120]):
        varied = without(row, "status") | rng.choice(VARIATIONS)
        if rng.random() < 0.2:
            varied.pop(rng.choice(sorted(varied)), None)
        rows.append(varied | {"id": f"lead-{index}"})

    batch = api.post("/predict/batch", lead_request(rows), format="json")

    assert batch.status_code == 200, batch.content[:300]
    items = batch.json()["predictions"]
    assert any(item["warnings"] for item in items)
    for row, item in zip(rows[:60], items):
        alone = api.post("/predict", lead_request(row, explain=False), format="json").json()
        assert item["warnings"] == alone["warnings"]
        assert item["conversion_probability"] == alone["conversion_probability"]
        assert (item["confidence"], item["score"], item["tier"]) == (alone["confidence"], alone["score"], alone["tier"])
    stored = {prediction.entity_id: prediction for prediction in Prediction.objects.filter(batch_id__isnull=False)}
    for item in items:
        assert stored[item["lead_id"]].output["warnings"] == item["warnings"]
        assert stored[item["lead_id"]].value == item["conversion_probability"]
