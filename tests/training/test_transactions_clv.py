"""CLV from transaction logs: upload a log, train on the customer table, predict from transactions."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from rest_framework.test import APIClient

from leadml.ml.transactions import features_for_customer
from predictions.models import Prediction
from predictions.public_ids import internal_id
from tests.conftest import TENANT, train_inline
from training.models import Dataset, DatasetRow

START = date(2024, 1, 1)
CALIBRATION_END = "2024-09-30"


def transaction_log(customers: int = 160, seed: int = 7) -> list[dict[str, Any]]:
    """Customers who buy at their own rate and value until they lapse, with a few refunds."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for number in range(customers):
        customer = f"c{number:04d}"
        day = START + timedelta(days=int(rng.integers(0, 120)))
        rate = rng.gamma(0.8, 1 / 20)  # purchases per day
        value = float(rng.gamma(4.0, 12.0))
        lifetime_end = day + timedelta(days=int(rng.exponential(300)))
        while day <= date(2025, 6, 30) and day <= lifetime_end:
            amount = round(float(rng.gamma(6.0, value / 6.0)), 2)
            rows.append({"cust": customer, "day": day.isoformat(), "total": amount})
            if rng.random() < 0.05:
                rows.append({"cust": customer, "day": day.isoformat(), "total": -amount})  # refunded
            day += timedelta(days=max(1, int(rng.exponential(1 / max(rate, 1e-3)))))
    return rows


@pytest.fixture(scope="module")
def log_rows() -> list[dict[str, Any]]:
    return transaction_log()


def upload(api: APIClient, rows: list[dict[str, Any]], **changes: Any) -> Any:
    body = {
        "user_id": TENANT,
        "model_type": "customer_lifetime_value",
        "name": "orders",
        "kind": "transactions",
        "rows": rows,
        "customer_column": "cust",
        "date_column": "day",
        "amount_column": "total",
        "calibration_end": CALIBRATION_END,
        "horizon_days": 180,
        **changes,
    }
    return api.post("/datasets", {k: v for k, v in body.items() if v is not None}, format="json")


def test_a_transaction_log_becomes_one_training_row_per_customer(api: APIClient, log_rows: list[dict[str, Any]]) -> None:
    response = upload(api, log_rows)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["kind"] == "transactions"
    config = body["source_config"]
    assert config["transactions"] == len(log_rows) and config["horizon_days"] == 180
    net: dict[tuple[str, str], float] = {}
    for row in log_rows:
        if row["day"] <= CALIBRATION_END:
            net[(row["cust"], row["day"])] = net.get((row["cust"], row["day"]), 0.0) + row["total"]
    # A customer whose only purchase was refunded has no purchase day: not a row.
    customers_before_end = {customer for (customer, _), amount in net.items() if amount > 1e-9}
    assert body["rows"] == config["customers"] == len(customers_before_end)
    assert body["target"] == "future_spend"
    dataset = Dataset.objects.get(pk=body["dataset_id"])
    row = DatasetRow.objects.filter(dataset=dataset, data__customer_id="c0001").first()
    assert row is not None
    # The target is the customer's net spend in the 180 days after the calibration end.
    end = date.fromisoformat(CALIBRATION_END)
    window = [r["total"] for r in log_rows
              if r["cust"] == "c0001" and end < date.fromisoformat(r["day"]) <= end + timedelta(days=180)]
    assert row.label == pytest.approx(max(sum(window), 0.0), abs=0.01)
    history = [r for r in log_rows if r["cust"] == "c0001" and r["day"] <= CALIBRATION_END]
    expected = features_for_customer([{"date": r["day"], "amount": r["total"]} for r in history], CALIBRATION_END)
    assert row.data["total_spend"] == pytest.approx(expected["total_spend"])
    assert row.data["frequency"] == expected["frequency"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customer_column": "client"}, "customer_column"),
        ({"amount_column": None}, "amount_column"),
        ({"calibration_end": "2030-01-01"}, "calibration_end"),
        ({"calibration_end": "30/09/2024"}, "calibration_end"),
        ({"calibration_end": "0001-01-01"}, "calibration_end"),  # beyond pandas' nanoseconds: was a 500
        ({"calibration_end": "9999-12-31"}, "calibration_end"),
        ({"horizon_days": 0}, "horizon_days"),
        ({"model_type": "lead_conversion"}, "kind"),
        ({"target": "total"}, "target"),
        ({"date_column": "cust"}, "date_column"),
    ],
)
def test_bad_transaction_uploads_are_400s_naming_the_field(
    api: APIClient, log_rows: list[dict[str, Any]], changes: dict[str, Any], field: str
) -> None:
    response = upload(api, log_rows, **changes)
    assert response.status_code == 400, response.json()
    assert field in response.json()["details"]
    assert not Dataset.objects.exists()


@pytest.mark.parametrize(
    "bad",
    [{"total": "lots"}, {"total": 10**400}, {"total": 1e308}, {"day": 10**400}, {"day": "1700-01-06"},
     {"day": "0001-01-01"}, {"day": "9999-12-31"}],
)
def test_unreadable_amounts_and_dates_name_the_column(
    api: APIClient, log_rows: list[dict[str, Any]], bad: dict[str, Any]
) -> None:
    rows = [*log_rows[:50], {"cust": "c9", "day": "2024-02-02", "total": 5.0, **bad}]
    response = upload(api, rows)
    assert response.status_code == 400, response.json()
    assert next(iter(bad)) in response.json()["error"]


@pytest.mark.single_database
def test_btyd_trains_on_the_customer_table_and_scores_transactions(
    api: APIClient, log_rows: list[dict[str, Any]]
) -> None:
    dataset_id = upload(api, log_rows).json()["dataset_id"]
    # BTYD itself (that `auto` adds it for a log and picks it when it wins is
    # tests/ml/test_clv_selection.py's and the CDNOW test's): the serving path is the point here.
    job = train_inline(TENANT, "customer_lifetime_value", "btyd", "clv_tx", {"dataset_id": dataset_id})
    assert job.status == "succeeded", job.error
    version = job.model_version
    report = version.training_report
    assert version.algorithm == "btyd"
    assert report["feature_engineering"]["btyd"]["horizon_days"] == 180
    assert "customer_id" in {dropped["name"] for dropped in version.feature_schema["dropped"]}

    history = [{"date": r["day"], "amount": r["total"]} for r in log_rows if r["cust"] == "c0003"]
    by_log = api.post("/predict", {"model_type": "customer_lifetime_value", "user_id": TENANT, "data": {
        "customer_id": "c0003", "as_of": "2025-06-30", "transactions": history}}, format="json")
    assert by_log.status_code == 200, by_log.json()
    features = features_for_customer(history, "2025-06-30")
    by_fields = api.post("/predict", {"model_type": "customer_lifetime_value", "user_id": TENANT, "data": {
        "customer_id": "c0003", **{k: (None if np.isnan(v) else v) for k, v in features.items()}}}, format="json")
    assert by_log.json()["lifetime_value"] == by_fields.json()["lifetime_value"]
    assert by_log.json()["source"] == "model"
    stored = Prediction.objects.get(pk=internal_id(by_log.json()["prediction_id"]))
    assert stored.entity_id == "c0003" and stored.input["purchase_days"] == features["purchase_days"]

    batch = api.post("/predict/batch", {"model_type": "customer_lifetime_value", "user_id": TENANT, "data": [
        {"customer_id": "a", "as_of": "2025-06-30", "transactions": history},
        {"customer_id": "b", "as_of": "2025-06-30", "transactions": history[:1]},
    ]}, format="json")
    assert batch.status_code == 200, batch.json()
    values = [p["lifetime_value"] for p in batch.json()["predictions"]]
    assert values[0] == by_log.json()["lifetime_value"] and values[0] != values[1]

    # Dates pandas cannot hold in nanoseconds were a 500 (OutOfBoundsDatetime): now a 400 naming them.
    for data, field in [
        ({"as_of": "9999-06-30", "transactions": history}, "as_of"),
        ({"as_of": "0001-06-30", "transactions": history}, "as_of"),
        ({"as_of": "2025-06-30", "transactions": [{"date": "0001-01-03", "amount": 3}]}, "transactions[0].date"),
    ]:
        refused = api.post("/predict", {"model_type": "customer_lifetime_value", "user_id": TENANT,
                                        "data": {"customer_id": "c0003", **data}}, format="json")
        assert refused.status_code == 400, refused.json()
        assert any(key.endswith(field) for key in refused.json()["details"]), refused.json()


def test_btyd_needs_a_transaction_dataset(api: APIClient, customer_rows: list[dict[str, Any]]) -> None:
    from tests.conftest import make_dataset

    make_dataset(TENANT, "customer_lifetime_value", customer_rows)
    job = train_inline(TENANT, "customer_lifetime_value", "linear_regression", "fields")
    assert job.status == "succeeded", job.error
    # Transactions sent to a model trained on per-customer fields: refused, not silently averaged.
    response = api.post("/predict", {"model_type": "customer_lifetime_value", "user_id": TENANT, "data": {
        "customer_id": "x", "transactions": [{"date": "2024-01-01", "amount": 5}]}}, format="json")
    assert response.status_code == 400
    assert "kind=transactions" in response.json()["error"]
    body = {"model_type": "customer_lifetime_value", "algorithm": "btyd", "model_name": "b", "user_id": TENANT}
    response = api.post("/train", body, format="json")
    assert response.status_code == 400
    assert "kind=transactions" in response.json()["details"]["algorithm"][0]


def test_bad_transactions_at_prediction_name_the_element(api: APIClient) -> None:
    single = api.post("/predict", {"model_type": "customer_lifetime_value", "user_id": TENANT, "data": {
        "customer_id": "x", "transactions": [{"date": "2024-01-01", "amount": 5}, {"date": "yesterday", "amount": 5}]}},
        format="json")
    assert single.status_code == 400
    assert "transactions[1].date" in single.json()["details"]
    batch = api.post("/predict/batch", {"model_type": "customer_lifetime_value", "user_id": TENANT, "data": [
        {"customer_id": "x", "transactions": [{"date": "2024-01-01", "amount": "five"}]}]}, format="json")
    assert batch.status_code == 400
    assert "data[0].transactions[0].amount" in batch.json()["details"]
    for element in ({"date": "2024-01-01", "amount": 10**400}, {"date": "1700-01-01", "amount": 5},
                    {"date": 10**400, "amount": 5}):
        response = api.post("/predict", {"model_type": "customer_lifetime_value", "user_id": TENANT, "data": {
            "customer_id": "x", "transactions": [element]}}, format="json")
        assert response.status_code == 400, (element, response.json())
        assert any(key.startswith("transactions[0]") for key in response.json()["details"])


def test_rules_fallback_reads_transactions_too(api: APIClient) -> None:
    today = date.today()
    history = [{"date": (today - timedelta(days=days)).isoformat(), "amount": 50} for days in (300, 200, 100, 10)]
    response = api.post("/predict", {"model_type": "customer_lifetime_value", "user_id": TENANT, "data": {
        "customer_id": "x", "transactions": history}}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["source"] == "rules"
    assert body["lifetime_value"] > 50  # four orders of 50 in 300 days: more than one order expected


def test_a_model_of_a_transaction_log_is_not_promoted_over_one_of_per_customer_fields(
    api: APIClient, log_rows: list[dict[str, Any]], customer_rows: list[dict[str, Any]]
) -> None:
    from tests.conftest import make_dataset

    make_dataset(TENANT, "customer_lifetime_value", customer_rows)
    fields = train_inline(TENANT, "customer_lifetime_value", "linear_regression", "fields")
    assert fields.status == "succeeded" and fields.model_version.status == "active"
    dataset_id = upload(api, log_rows).json()["dataset_id"]
    # It may well score better on its own held-out rows; the CRM's calls still send per-customer fields.
    job = train_inline(TENANT, "customer_lifetime_value", "run_rate", "from_log", {"dataset_id": dataset_id})
    assert job.status == "succeeded", job.error
    assert job.model_version.status == "candidate"
    promotion = job.model_version.training_report["promotion"]
    assert promotion["promote"] is False
    assert "reads a transaction log, the active version 1 per-customer fields" in promotion["reason"]
    fields.model_version.refresh_from_db()
    assert fields.model_version.status == "active"
