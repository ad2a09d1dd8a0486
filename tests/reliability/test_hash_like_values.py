"""Hash-like ids with huge exponents never reach a C parser that crashes on them.

pandas 2.3's `to_numeric(errors="coerce")` overflowed (SIGSEGV, the whole worker) on a
hex id such as `4e746882294308d42eeed71ba0aacbf8`, read as 4 × 10^746882294308; pandas 3
returns NaN. Each test sends such values through one path a tenant controls and checks
the process is alive to answer the next request.
"""
from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pytest
from rest_framework.test import APIClient

from leadml.ml.parsing import to_numeric
from registry.models import ModelVersion
from tests.conftest import TENANT, lead_request

HOSTILE = ["4e746882294308d42eeed71ba0aacbf8", "4e746882294308x", "1E3000000000", "-9e99999999999", "0x1e308"]


def test_to_numeric_reads_hash_like_ids_as_unreadable() -> None:
    numbers = to_numeric(pd.Series([*HOSTILE, "12", "a"], dtype=object))
    assert numbers.iloc[-2] == 12.0
    assert numbers.drop(index=len(HOSTILE)).isna().all()


def _lead_rows(lead_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [dict(row) for row in lead_rows[:120]]
    for index, row in enumerate(rows):
        row["id"] = HOSTILE[index % len(HOSTILE)] + str(index)
        row["lead_score"] = HOSTILE[index % len(HOSTILE)] if index % 7 == 0 else row["lead_score"]
    return rows


def test_upload_with_hash_like_ids_as_csv_and_json(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = _lead_rows(lead_rows)
    body = {"user_id": TENANT, "model_type": "lead_conversion", "name": "hashes", "target": "status",
            "positive_values": ["customer", "won"]}
    response = api.post("/datasets", {**body, "rows": rows}, format="json")
    assert response.status_code == 201, response.content
    csv_text = pd.DataFrame(rows).to_csv(index=False)
    upload = io.BytesIO(csv_text.encode())
    upload.name = "hashes.csv"
    response = api.post("/datasets", {**body, "file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert api.get(f"/datasets/{response.json()['dataset_id']}").status_code == 200


@pytest.mark.parametrize("value", HOSTILE)
def test_predict_and_batch_with_hash_like_values(api: APIClient, lead_model: ModelVersion, value: str) -> None:
    single = api.post("/predict", lead_request({"id": value, "email": "a@acme.com", "company": value}), format="json")
    assert single.status_code == 200, single.content
    # A number field holding it is a clear 400 naming the field, not a crash.
    wrong = api.post("/predict", lead_request({"lead_score": value}), format="json")
    assert wrong.status_code == 400 and "lead_score" in str(wrong.json()["details"])
    batch = api.post("/predict/batch", lead_request([{"id": value}, {"id": value[::-1], "company": value}]), format="json")
    assert batch.status_code == 200, batch.content
    preprocess = api.post("/preprocess", {"data": [{"id": value, "lead_score": value}, {"lead_score": 3}]}, format="json")
    assert preprocess.status_code == 200, preprocess.content
