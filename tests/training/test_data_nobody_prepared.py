"""Real exports through the service: guest lines, refunded customers, every bad record named, chosen features."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from rest_framework.test import APIClient

from leadml.ml.bundle import RECORD_WARNING_FIELD
from predictions.models import Prediction
from predictions.public_ids import internal_id
from tests.conftest import TENANT, make_dataset, train_inline
from training.models import Dataset, TrainingJob

START = date(2024, 1, 1)


def orders(customers: int = 120, seed: int = 3) -> list[dict[str, Any]]:
    """Customers buying at their own pace, plus guest checkouts that carry no customer id."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for number in range(customers):
        day = START + timedelta(days=int(rng.integers(0, 150)))
        while day <= date(2025, 3, 31):
            rows.append({"cust": f"c{number:03d}", "day": day.isoformat(), "total": round(float(rng.gamma(3, 20)), 2)})
            day += timedelta(days=int(rng.integers(5, 60)))
    rows += [{"cust": None, "day": "2024-05-05", "total": 12.5}, {"cust": "", "day": "2024-06-06", "total": 7.5}]
    return rows


def upload(api: APIClient, rows: list[dict[str, Any]]) -> Any:
    return api.post("/datasets", {
        "user_id": TENANT, "model_type": "customer_lifetime_value", "name": "orders", "kind": "transactions",
        "rows": rows, "customer_column": "cust", "date_column": "day", "amount_column": "total",
        "calibration_end": "2024-09-30", "horizon_days": 180,
    }, format="json")


def test_guest_lines_are_skipped_and_counted_not_refused(api: APIClient) -> None:
    response = upload(api, orders())
    assert response.status_code == 201, response.json()
    config = response.json()["source_config"]
    assert config["skipped_without_customer"] == 2 and config["skipped_amount"] == 20.0
    # The service built these columns from purchases before the cut-off: no leakage verdict on them.
    assert response.json()["quality_report"]["leakage_suspects"] == []


def test_every_bad_line_of_an_upload_is_named(api: APIClient) -> None:
    rows = orders(20)
    rows[3]["day"], rows[7]["total"], rows[11]["day"] = "someday", "lots", "31/31/2024"
    response = upload(api, rows)
    assert response.status_code == 400
    details = response.json()["details"]
    assert {"rows[3].day", "rows[7].total", "rows[11].day"} <= set(details)
    assert not Dataset.objects.exists()


@pytest.mark.single_database
def test_a_refunded_customer_scores_with_a_warning_and_bad_records_are_all_named(api: APIClient) -> None:
    dataset_id = upload(api, orders()).json()["dataset_id"]
    job = train_inline(TENANT, "customer_lifetime_value", "linear_regression", "clv", {"dataset_id": dataset_id})
    assert job.status == "succeeded", job.error
    history = [{"date": "2024-02-01", "amount": 40}, {"date": "2024-05-01", "amount": 60}]
    refunded = [{"date": "2024-03-01", "amount": 80}, {"date": "2024-03-01", "amount": -80}]
    batch = api.post("/predict/batch", {"model_type": "customer_lifetime_value", "user_id": TENANT, "data": [
        {"customer_id": "ok", "as_of": "2024-09-30", "transactions": history},
        {"customer_id": "refunded", "as_of": "2024-09-30", "transactions": refunded},
    ]}, format="json")
    assert batch.status_code == 200, batch.json()
    ok, scored = batch.json()["predictions"]
    assert scored["source"] == "model" and scored["lifetime_value"] >= 0
    assert any("every purchase refunded" in warning for warning in scored["warnings"])
    assert not any("refunded" in warning for warning in ok["warnings"])
    stored = Prediction.objects.get(pk=internal_id(scored["prediction_id"]))
    assert stored.input["purchase_days"] == 0 and RECORD_WARNING_FIELD in stored.input

    bad = api.post("/predict/batch", {"model_type": "customer_lifetime_value", "user_id": TENANT, "data": [
        {"customer_id": "a", "as_of": "2024-09-30", "transactions": [{"date": "soon", "amount": 5}]},
        {"customer_id": "b", "as_of": "2024-09-30", "transactions": history},
        {"customer_id": "c", "as_of": "2024-09-30", "transactions": [{"date": "2024-01-01", "amount": "five"}, 3]},
    ]}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()["details"]) == {
        "data[0].transactions[0].date", "data[2].transactions[0].amount", "data[2].transactions[1]",
    }


def test_a_features_name_that_is_not_a_column_is_a_400(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    make_dataset(TENANT, "lead_conversion", lead_rows)
    body = {"model_type": "lead_conversion", "algorithm": "logistic_regression", "model_name": "m", "user_id": TENANT,
            "training_config": {"features": ["lead_score", "landing_page"]}}
    response = api.post("/train", body, format="json")
    assert response.status_code == 400
    assert "'landing_page'" in response.json()["details"]["training_config.features"][0]
    body["training_config"] = {"features": ["lead_score", "status"]}  # the target is not a feature either
    assert api.post("/train", body, format="json").status_code == 400
    assert not TrainingJob.objects.exists()


def test_a_repeated_id_column_named_in_features_is_trained_on(db: None, lead_rows: list[dict[str, Any]]) -> None:
    rng = np.random.default_rng(0)
    pages = [f"{number}" for number in rng.integers(100, 130, len(lead_rows))]
    make_dataset(TENANT, "lead_conversion", [row | {"landing_page_id": page} for row, page in zip(lead_rows, pages)])
    job = train_inline(TENANT, "lead_conversion", "logistic_regression", "pages",
                       {"features": ["lead_score", "engagement_score", "landing_page_id"]})
    assert job.status == "succeeded", job.error
    kinds = {column["name"]: column["kind"] for column in job.model_version.feature_schema["columns"]}
    assert kinds == {"lead_score": "numeric", "engagement_score": "numeric", "landing_page_id": "categorical"}
    report = job.model_version.training_report
    assert report["split"]["held_out_share"] == pytest.approx(0.2, abs=0.06)
