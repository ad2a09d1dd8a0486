"""GET /insights carries the active model's monitoring summary (drift, quality, triggers)."""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from registry.models import ModelVersion
from tests.conftest import TENANT
from tests.monitoring.conftest import LEAD, lead_features, score


def _insights(api: APIClient) -> dict[str, Any]:
    response = api.get(f"/insights/{TENANT}/{LEAD}")
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.mark.django_db
def test_insights_summarise_drift_quality_and_fired_triggers(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    records = [
        record
        | {
            "lead_score": record["lead_score"] + 150,
            "engagement_score": record["engagement_score"] + 150,
            "website_visits": record["website_visits"] + 60,
            "email_interactions": record["email_interactions"] + 40,
            "content_downloads": record["content_downloads"] + 25,
            "industry": "Aerospace",
            "source": "trade_show",
            # Half the company sizes missing: a data-quality flag.
            "company_size": None if index % 2 else record["company_size"],
        }
        for index, record in enumerate(lead_features(lead_rows[:200]))
    ]
    score(api, records)

    summary = _insights(api)["monitoring"]

    assert summary["window"]["predictions"] == 200
    assert summary["data_drift"]["dataset_drift"] is True
    assert {"lead_score", "engagement_score", "industry"} <= set(summary["data_drift"]["drifted_features"])
    assert "company_size" in [item["name"] for item in summary["data_quality"]["flagged_features"]]
    assert "data_drift" in summary["fired_triggers"]
    assert summary["performance"]["metric"] == "roc_auc"
    assert summary["performance"]["training"] == lead_model.metrics["roc_auc"]


@pytest.mark.django_db
def test_insights_of_a_model_without_predictions_say_drift_is_unavailable(api: APIClient, lead_model: ModelVersion) -> None:
    summary = _insights(api)["monitoring"]

    assert summary["window"]["predictions"] == 0
    assert summary["data_drift"]["dataset_drift"] is False and summary["data_drift"]["unavailable"]
    assert summary["data_quality"] == {"flagged_features": []}
    assert summary["fired_triggers"] == []


@pytest.mark.django_db
def test_insights_without_an_active_model_have_no_monitoring(api: APIClient) -> None:
    response = api.get(f"/insights/{TENANT}/{LEAD}")

    assert response.status_code == 200, response.json()
    assert response.json()["monitoring"] is None
