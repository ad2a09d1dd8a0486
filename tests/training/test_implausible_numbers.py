"""A typo like 1e300 in a tenant's data: reported at upload, read as missing by training.

One such cell once broke every later training of the tenant's rows (boosting's bins and
the scalers' variances overflow), and a CLV outcome of 1e300 every lifetime-value metric.
"""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from leadml.ml.quality import MAX_PLAUSIBLE_NUMBER
from tests.conftest import TENANT, make_dataset, without
from tests.factories import train_inline

POSITIVE = ["customer", "won"]


def typo_leads(lead_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [dict(row) for row in lead_rows[:200]]
    rows[3]["engagement_score"] = 1e300
    rows[7]["lead_score"] = -2e16
    return rows


def test_the_upload_keeps_the_values_and_warns_of_them(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    response = api.post("/datasets", {
        "user_id": TENANT, "model_type": "lead_conversion", "name": "typos", "target": "status",
        "positive_values": POSITIVE, "rows": typo_leads(lead_rows),
    }, format="json")
    assert response.status_code == 201, response.content
    warnings = response.json()["quality_report"]["column_warnings"]
    assert any(w.startswith("engagement_score: 1 value(s) beyond") and "1e+300" in w for w in warnings), warnings
    assert any(w.startswith("lead_score: 1 value(s) beyond") for w in warnings), warnings


@pytest.mark.parametrize("algorithm", ["gradient_boosting", "logistic_regression", "random_forest"])
def test_training_reads_them_as_missing(db: None, lead_rows: list[dict[str, Any]], algorithm: str) -> None:
    make_dataset(TENANT, "lead_conversion", typo_leads(lead_rows))
    job = train_inline(TENANT, "lead_conversion", algorithm, "typos", {"cv_folds": 2})
    assert job.status == "succeeded", job.error
    warnings = job.model_version.training_report["quality"]["column_warnings"]
    assert any(w.startswith("engagement_score: 1 value(s) beyond") for w in warnings), warnings


def test_a_lifetime_value_beyond_the_bound_is_left_out_as_unlabelled(
    db: None, customer_rows: list[dict[str, Any]]
) -> None:
    rows = [dict(row) for row in customer_rows[:150]]
    rows[5]["lifetime_value"] = MAX_PLAUSIBLE_NUMBER * 10
    make_dataset(TENANT, "customer_lifetime_value", rows)
    job = train_inline(TENANT, "customer_lifetime_value", "linear_regression", "typos", {"cv_folds": 2})
    assert job.status == "succeeded", job.error
    report = job.model_version.training_report
    assert "target: 1 value(s) beyond ±1e+15 left out as unlabelled" in report["quality"]["column_warnings"]
    assert all(abs(value) < 1e12 for value in job.model_version.metrics.values() if isinstance(value, float))
    assert without(rows[0], "lifetime_value")  # the other rows are untouched
