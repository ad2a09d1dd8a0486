"""GET /monitoring/{user_id}/{model_type}: windows, parameters, counts, performance, sampling."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from predictions.models import Prediction
from predictions.public_ids import internal_id
from registry.models import ModelVersion
from tests.conftest import TENANT, train_inline
from tests.monitoring.conftest import (
    CLV,
    LEAD,
    accepted_outcomes,
    converted,
    lead_features,
    monitoring,
    score,
    triggers_of,
)


def _age(prediction_ids: list[int], days: float) -> None:
    Prediction.objects.filter(pk__in=[internal_id(public) for public in prediction_ids]).update(created_at=timezone.now() - timedelta(days=days))


@pytest.mark.django_db
def test_default_window_covers_the_configured_days(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]], settings: Any
) -> None:
    predictions = score(api, lead_features(lead_rows[:20]))
    _age([item["prediction_id"] for item in predictions[:5]], days=settings.LEADML_MONITORING_WINDOW_DAYS + 3)

    report = monitoring(api)

    window = report["window"]
    assert (window["predictions"], window["sampled"], window["last"]) == (15, 15, None)
    assert window["with_outcomes"] == 0
    span = datetime.fromisoformat(window["until"]) - datetime.fromisoformat(window["since"])
    assert span == timedelta(days=settings.LEADML_MONITORING_WINDOW_DAYS)
    assert report["model"]["name"] == "leads_lr" and report["model"]["status"] == "active"


@pytest.mark.django_db
def test_last_n_is_a_window_of_the_latest_predictions(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    score(api, lead_features(lead_rows[:30], prefix="older"))
    score(api, lead_features(lead_rows[30:50], prefix="newer"))

    latest = monitoring(api, last=20)["window"]
    everything = monitoring(api, last=1000)["window"]

    assert (latest["predictions"], latest["sampled"], latest["last"]) == (20, 20, 20)
    assert (everything["predictions"], everything["sampled"]) == (50, 50)


@pytest.mark.django_db
def test_since_and_until_bound_the_window(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    predictions = score(api, lead_features(lead_rows[:20]))
    _age([item["prediction_id"] for item in predictions[:5]], days=3)
    now = timezone.now()

    three_days_ago = monitoring(api, since=(now - timedelta(days=4)).isoformat(), until=(now - timedelta(days=2)).isoformat())
    since_yesterday = monitoring(api, since=(now - timedelta(days=1)).isoformat())

    assert three_days_ago["window"]["predictions"] == 5
    assert since_yesterday["window"]["predictions"] == 15


BAD_WINDOWS = [
    ({"last": 0}, "last"),
    ({"last": "many"}, "last"),
    ({"since": "last tuesday"}, "since"),
    ({"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "since"),
    ({"last": 10, "since": "2026-03-01T00:00:00Z"}, "last"),
]


@pytest.mark.django_db
def test_bad_window_parameters_are_refused_naming_the_field(api: APIClient, lead_model: ModelVersion) -> None:
    # One test for every case: each would otherwise train its own model.
    for params, field in BAD_WINDOWS:
        response = api.get(f"/monitoring/{TENANT}/{LEAD}", params)

        assert response.status_code == 400, (params, response.json())
        assert field in response.json()["details"], (params, response.json())


@pytest.mark.django_db
def test_unknown_model_type_is_refused(api: APIClient) -> None:
    response = api.get(f"/monitoring/{TENANT}/churn")

    assert response.status_code == 400
    assert "model_type" in response.json()["details"]


@pytest.mark.django_db
def test_monitoring_without_an_active_model_is_not_found(api: APIClient) -> None:
    response = api.get(f"/monitoring/{TENANT}/{LEAD}")

    assert response.status_code == 404
    assert "no active" in response.json()["error"]


@pytest.mark.django_db
def test_monitoring_of_another_tenant_is_forbidden(client_for: Any, other_tenant_key: str, lead_model: ModelVersion) -> None:
    assert client_for(other_tenant_key).get(f"/monitoring/{TENANT}/{LEAD}").status_code == 403


@pytest.mark.django_db
def test_model_name_reports_on_a_version_that_is_not_active(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    job = train_inline(TENANT, LEAD, "logistic_regression", "leads_other", {"random_state": 7})
    assert job.status == "succeeded", job.error
    active = ModelVersion.objects.get(tenant=TENANT, model_type=LEAD, status=ModelVersion.Status.ACTIVE)
    other = ModelVersion.objects.filter(tenant=TENANT, model_type=LEAD).exclude(pk=active.pk).get()
    score(api, lead_features(lead_rows[:7]))
    score(api, lead_features(lead_rows[7:10]), model_name=other.name)

    named = monitoring(api, model_name=other.name)
    default = monitoring(api)

    assert (named["model"]["name"], named["model"]["status"]) == (other.name, other.status)
    assert named["model"]["status"] != "active"
    assert named["window"]["predictions"] == 3
    assert (default["model"]["name"], default["window"]["predictions"]) == (active.name, 7)


@pytest.mark.django_db
def test_live_metrics_appear_once_outcomes_come_back(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rows = lead_rows[:120]
    score(api, lead_features(rows))
    before = monitoring(api)
    assert before["window"]["with_outcomes"] == 0 and before["performance"]["live"]["rows"] == 0

    accepted_outcomes(api, [{"entity_id": row["id"], "outcome": row["status"]} for row in rows[:80]])
    after = monitoring(api)

    assert (after["window"]["predictions"], after["window"]["with_outcomes"]) == (120, 80)
    live = after["performance"]["live"]
    assert live["rows"] == 80
    # Scored on rows it trained on, with their true outcomes: clearly better than chance.
    assert live["roc_auc"] > 0.7 and 0 <= live["brier"] <= 1
    assert after["performance"]["training"]["roc_auc"] == lead_model.metrics["roc_auc"]


@pytest.mark.django_db
def test_outcomes_named_by_prediction_id_count_for_predictions_without_an_entity(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    records = [{key: value for key, value in row.items() if key != "id"} for row in lead_features(lead_rows[:30])]
    predictions = score(api, records)

    accepted_outcomes(
        api,
        [{"prediction_id": item["prediction_id"], "outcome": row["status"]} for item, row in zip(predictions[:12], lead_rows)],
    )

    report = monitoring(api)
    assert report["window"]["with_outcomes"] == 12
    assert report["performance"]["live"]["rows"] == 12


@pytest.mark.django_db
def test_estimated_performance_is_given_for_leads(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    score(api, lead_features(lead_rows[:100]))

    estimated = monitoring(api)["performance"]["estimated"]

    assert estimated["method"] == "cbpe" and estimated["rows"] == 100
    assert 0.5 < estimated["roc_auc"] <= 1


@pytest.mark.django_db
def test_estimated_performance_is_null_for_lifetime_value(
    api: APIClient, clv_model: ModelVersion, customer_rows: list[dict[str, Any]]
) -> None:
    rows = customer_rows[:40]
    score(api, [{key: value for key, value in row.items() if key != "lifetime_value"} for row in rows], model_type=CLV)
    accepted_outcomes(api, [{"entity_id": row["customer_id"], "outcome": row["lifetime_value"]} for row in rows], CLV)

    report = monitoring(api, CLV)

    assert report["performance"]["estimated"] is None
    assert set(report["performance"]["training"]) == {"mae", "rmse", "r2"}
    live = report["performance"]["live"]
    assert live["rows"] == 40 and live["mae"] is not None and live["r2"] is not None
    estimated_trigger = triggers_of(report)["estimated_performance"]
    assert (estimated_trigger["enabled"], estimated_trigger["fired"]) == (False, False)


@pytest.mark.django_db
def test_a_large_window_is_sampled_but_counted_in_full(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]], settings: Any
) -> None:
    settings.LEADML_MONITORING_SAMPLE_ROWS = 50
    for start in range(0, 200, 50):
        score(api, lead_features(lead_rows[start : start + 50], prefix=f"batch{start}"))

    window = monitoring(api)["window"]

    assert window["predictions"] == 200
    assert 0 < window["sampled"] <= 50


@pytest.mark.django_db
def test_a_large_window_of_batches_fills_the_sample(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]], settings: Any
) -> None:
    settings.LEADML_MONITORING_SAMPLE_ROWS = 50
    for start in range(0, 200, 50):
        score(api, lead_features(lead_rows[start : start + 50], prefix=f"batch{start}"))

    assert monitoring(api)["window"]["sampled"] == 50


@pytest.mark.django_db
def test_last_n_counts_only_outcomes_of_those_n_predictions(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    predictions = score(api, lead_features(lead_rows[:100]))
    # Outcomes for the first half of the batch; the last 50 predictions have none.
    accepted_outcomes(api, [{"prediction_id": item["prediction_id"], "outcome": "won"} for item in predictions[:50]])

    window = monitoring(api, last=50)["window"]

    assert window["predictions"] == 50
    assert window["with_outcomes"] == 0


@pytest.mark.django_db
def test_live_metrics_use_the_latest_prediction_of_each_entity_once(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rows = lead_rows[:30]
    score(api, lead_features(rows))
    score(api, lead_features(rows))  # every lead scored again

    accepted_outcomes(api, [{"entity_id": row["id"], "outcome": "won" if converted(row) else "lost"} for row in rows])

    report = monitoring(api)
    assert report["window"]["predictions"] == 60
    assert report["window"]["with_outcomes"] == 30


@pytest.mark.django_db
def test_an_outcome_naming_an_anonymous_prediction_and_a_crm_id_counts_for_that_prediction(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    records = [{key: value for key, value in row.items() if key != "id"} for row in lead_features(lead_rows[:10])]
    predictions = score(api, records)

    answer = accepted_outcomes(
        api,
        [{"prediction_id": item["prediction_id"], "entity_id": f"crm-{index}", "outcome": "won"} for index, item in enumerate(predictions)],
    )

    assert answer["stored"] == 10
    assert monitoring(api)["window"]["with_outcomes"] == 10
