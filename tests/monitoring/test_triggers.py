"""Each retraining trigger fires when it should and not before; the trigger settings API."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from monitoring.models import TriggerSettings
from registry.models import ModelVersion
from tests.conftest import OTHER_TENANT, TENANT
from tests.monitoring.conftest import (
    CLV,
    LEAD,
    accepted_outcomes,
    converted,
    lead_features,
    monitoring,
    put_triggers,
    score,
    triggers_of,
)


def _trigger(api: APIClient, name: str, **params: Any) -> dict[str, Any]:
    return triggers_of(monitoring(api, **params))[name]


def _inverted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"entity_id": row["id"], "outcome": "lost" if converted(row) else "won"} for row in rows]


def _shifted(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leads unlike any the model trained on: bigger companies, far higher scores, new categories."""
    return [
        record
        | {
            "company_size": (record["company_size"] or 100) * 50,
            "lead_score": record["lead_score"] + 150,
            "engagement_score": record["engagement_score"] + 150,
            "email_interactions": record["email_interactions"] + 40,
            "website_visits": record["website_visits"] + 60,
            "content_downloads": record["content_downloads"] + 25,
            "industry": "Aerospace",
            "source": "trade_show",
        }
        for record in records
    ]


@pytest.mark.django_db
def test_live_performance_fires_on_enough_outcomes_that_contradict_the_model(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rows = lead_rows[:200]
    score(api, lead_features(rows))
    threshold = round(lead_model.metrics["roc_auc"] - settings.LEADML_TRIGGER_DEFAULTS["live_performance_margin"], 6)

    accepted_outcomes(api, _inverted(rows[:150]))
    too_few = _trigger(api, "live_performance")
    accepted_outcomes(api, _inverted(rows[150:]))
    contradicted = _trigger(api, "live_performance")
    accepted_outcomes(api, [{"entity_id": row["id"], "outcome": row["status"]} for row in rows])
    confirmed = _trigger(api, "live_performance")

    assert too_few["fired"] is False and "150 outcomes in the window; 200 needed" in too_few["reason"]
    assert contradicted["fired"] is True, contradicted
    assert contradicted["threshold"] == threshold and contradicted["value"] < 0.5
    assert confirmed["fired"] is False and confirmed["value"] >= threshold, confirmed


@pytest.mark.django_db
def test_live_performance_min_outcomes_is_a_tenant_setting(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rows = lead_rows[:60]
    score(api, lead_features(rows))
    accepted_outcomes(api, _inverted(rows))
    assert _trigger(api, "live_performance")["fired"] is False

    put_triggers(api, {"live_performance_min_outcomes": 50})

    assert _trigger(api, "live_performance")["fired"] is True


@pytest.mark.django_db
def test_estimated_performance_fires_when_the_model_cannot_tell_leads_apart(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    # The same lead 200 times: one score, so the expected ROC-AUC is that of a coin.
    lead = lead_features(lead_rows[:1])[0]
    score(api, [lead | {"id": f"copy-{index}"} for index in range(200)])

    unsure = _trigger(api, "estimated_performance")
    put_triggers(api, {"estimated_performance_enabled": False})
    disabled = _trigger(api, "estimated_performance")
    put_triggers(api, {"estimated_performance_enabled": None, "estimated_performance_min_predictions": 201})
    too_few = _trigger(api, "estimated_performance")

    assert unsure["fired"] is True and unsure["value"] == 0.5, unsure
    assert disabled["fired"] is False and disabled["reason"].startswith("disabled")
    assert too_few["enabled"] is True and too_few["fired"] is False and "201 needed" in too_few["reason"]


@pytest.mark.django_db
def test_estimated_performance_does_not_fire_on_leads_like_the_training_ones(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    score(api, lead_features(lead_rows[:200]))
    put_triggers(api, {"estimated_performance_margin": 0.2})

    trigger = _trigger(api, "estimated_performance")

    assert trigger["fired"] is False and trigger["value"] >= trigger["threshold"], trigger


@pytest.mark.django_db
def test_data_drift_fires_on_strongly_shifted_inputs_only(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    score(api, lead_features(lead_rows[:200], prefix="usual"))
    usual = _trigger(api, "data_drift")
    score(api, _shifted(lead_features(lead_rows[200:400], prefix="shifted")))
    shifted = _trigger(api, "data_drift", last=200)
    small = _trigger(api, "data_drift", last=100)

    assert usual["fired"] is False, usual
    assert shifted["fired"] is True and shifted["value"] >= shifted["threshold"], shifted
    assert "lead_score" in shifted["reason"]
    assert small["fired"] is False and "100 predictions in the window; 200 needed" in small["reason"]


@pytest.mark.django_db
def test_new_labelled_rows_fires_once_enough_outcomes_were_appended(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    rows = lead_rows[:5]
    score(api, lead_features(rows))
    put_triggers(api, {"new_rows_min": 5})
    assert _trigger(api, "new_labelled_rows")["value"] == 0  # the uploaded rows it trained on

    accepted_outcomes(api, [{"entity_id": row["id"], "outcome": row["status"]} for row in rows[:4]])
    four = _trigger(api, "new_labelled_rows")
    accepted_outcomes(api, [{"entity_id": rows[4]["id"], "outcome": rows[4]["status"]}])
    five = _trigger(api, "new_labelled_rows")

    assert (four["fired"], four["value"]) == (False, 4)
    assert (five["fired"], five["value"], five["threshold"]) == (True, 5, 5)


@pytest.mark.django_db
def test_max_age_fires_for_a_version_older_than_the_limit(api: APIClient, lead_model: ModelVersion) -> None:
    put_triggers(api, {"max_age_days": 1})
    fresh = _trigger(api, "max_age")

    ModelVersion.objects.filter(pk=lead_model.pk).update(created_at=timezone.now() - timedelta(days=2))
    old = _trigger(api, "max_age")

    assert fresh["fired"] is False and fresh["value"] < 1
    assert old["fired"] is True and 1.99 <= old["value"] <= 2.01 and old["threshold"] == 1


@pytest.mark.django_db
def test_manual_fires_while_a_requested_retrain_is_queued(api: APIClient, lead_model: ModelVersion) -> None:
    assert _trigger(api, "manual")["fired"] is False

    response = api.post(f"/models/{TENANT}/{lead_model.name}/retrain", {"reason": "new pricing"}, format="json")
    assert response.status_code == 202, response.json()
    manual = _trigger(api, "manual")

    assert manual["fired"] is True
    assert manual["value"] == response.json()["job_id"]
    assert "queued" in manual["reason"] and "new pricing" in manual["reason"]


@pytest.mark.django_db
def test_trigger_settings_start_as_the_defaults(api: APIClient) -> None:
    response = api.get(f"/monitoring/{TENANT}/{LEAD}/triggers")

    assert response.status_code == 200
    body = response.json()
    assert body["overrides"] == {}
    assert body["defaults"] == body["effective"] == settings.LEADML_TRIGGER_DEFAULTS


@pytest.mark.django_db
def test_trigger_settings_overrides_accumulate_and_null_resets_one(api: APIClient) -> None:
    put_triggers(api, {"new_rows_min": 5, "data_drift_enabled": False})
    both = put_triggers(api, {"max_age_days": 30})
    reset = put_triggers(api, {"new_rows_min": None})

    assert both["overrides"] == {"new_rows_min": 5, "data_drift_enabled": False, "max_age_days": 30}
    assert both["effective"]["new_rows_min"] == 5 and both["effective"]["max_age_days"] == 30
    assert reset["overrides"] == {"data_drift_enabled": False, "max_age_days": 30}
    assert reset["effective"]["new_rows_min"] == settings.LEADML_TRIGGER_DEFAULTS["new_rows_min"]
    assert api.get(f"/monitoring/{TENANT}/{LEAD}/triggers").json()["overrides"] == reset["overrides"]
    # Per model type: the lifetime-value triggers keep the defaults.
    assert api.get(f"/monitoring/{TENANT}/{CLV}/triggers").json()["overrides"] == {}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"new_rows_minimum": 5}, "new_rows_minimum"),
        ({"max_age_days": 0}, "max_age_days"),
        ({"live_performance_margin": 2}, "live_performance_margin"),
        ({"data_drift_enabled": "sometimes"}, "data_drift_enabled"),
    ],
)
def test_bad_trigger_settings_are_refused_naming_the_field(api: APIClient, changes: dict[str, Any], field: str) -> None:
    response = api.put(f"/monitoring/{TENANT}/{LEAD}/triggers", changes, format="json")

    assert response.status_code == 400
    assert field in response.json()["details"], response.json()
    assert not TriggerSettings.objects.exists()


@pytest.mark.django_db
def test_trigger_settings_are_per_tenant(api: APIClient, client_for: Any, other_tenant_key: str) -> None:
    other = client_for(other_tenant_key)

    forbidden_read = other.get(f"/monitoring/{TENANT}/{LEAD}/triggers")
    forbidden_write = other.put(f"/monitoring/{TENANT}/{LEAD}/triggers", {"new_rows_min": 1}, format="json")
    own = other.put(f"/monitoring/{OTHER_TENANT}/{LEAD}/triggers", {"new_rows_min": 1}, format="json")

    assert (forbidden_read.status_code, forbidden_write.status_code, own.status_code) == (403, 403, 200)
    assert api.get(f"/monitoring/{TENANT}/{LEAD}/triggers").json()["overrides"] == {}
    assert TriggerSettings.objects.get().tenant == OTHER_TENANT


@pytest.mark.django_db
def test_trigger_settings_of_an_unknown_model_type_are_refused(api: APIClient) -> None:
    response = api.put(f"/monitoring/{TENANT}/churn/triggers", {"new_rows_min": 1}, format="json")

    assert response.status_code == 400 and "model_type" in response.json()["details"]
