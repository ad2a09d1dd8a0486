"""Monitoring in the admin: outcomes, events, trigger settings and webhooks."""
from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from monitoring.models import MonitoringEvent, Outcome, TenantWebhook, TriggerSettings
from monitoring.services.triggers import TRIGGER_FIELDS
from registry.models import ModelVersion
from tests.oversight.conftest import LEAD, post_outcomes, score_leads
from tests.conftest import TENANT

pytestmark = pytest.mark.django_db
TRIGGERS_API = f"/monitoring/{TENANT}/{LEAD}/triggers"


def _trigger_form(**values: str) -> dict[str, Any]:
    """The admin form's fields: every override blank (the default) unless given."""
    blank = {name: "" for name in TRIGGER_FIELDS}
    return {"tenant": TENANT, "model_type": LEAD, **blank, **values}


def _effective(api: APIClient) -> dict[str, Any]:
    response = api.get(TRIGGERS_API)
    assert response.status_code == 200, response.json()
    return response.json()["effective"]


def test_monitoring_list_and_change_pages_load(
    console: Client, api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    score_leads(api, lead_rows[:5])
    post_outcomes(api, [{"entity_id": row["id"], "outcome": row["status"]} for row in lead_rows[:5]])
    TriggerSettings.objects.create(tenant=TENANT, model_type=LEAD, max_age_days=30)
    TenantWebhook.objects.create(tenant=TENANT, url="https://crm.example.com/hooks/leadml", secret="s" * 32)
    objects = {
        "outcome": Outcome.objects.first(),
        "monitoringevent": MonitoringEvent.objects.first(),
        "triggersettings": TriggerSettings.objects.get(),
        "tenantwebhook": TenantWebhook.objects.get(),
    }

    for model, instance in objects.items():
        assert instance is not None, model
        listing = console.get(f"/admin/monitoring/{model}/")
        assert listing.status_code == 200, model
        assert listing.context["cl"].result_count >= 1, model
        assert console.get(f"/admin/monitoring/{model}/{instance.pk}/change/").status_code == 200, model
    assert console.get("/admin/monitoring/outcome/", {"q": lead_rows[0]["id"]}).context["cl"].result_count == 1


def test_trigger_settings_edited_in_the_admin_are_the_effective_ones(console: Client, api: APIClient) -> None:
    defaults = dict(settings.LEADML_TRIGGER_DEFAULTS)
    assert _effective(api) == defaults

    added = console.post("/admin/monitoring/triggersettings/add/", _trigger_form(max_age_days="30", new_rows_enabled="false"))

    assert added.status_code == 302, added.context["adminform"].form.errors if added.context else added
    row = TriggerSettings.objects.get(tenant=TENANT, model_type=LEAD)
    assert _effective(api) == defaults | {"max_age_days": 30, "new_rows_enabled": False}

    changed = console.post(
        f"/admin/monitoring/triggersettings/{row.pk}/change/",
        _trigger_form(max_age_days="", live_performance_margin="0.1", new_rows_enabled="unknown"),
    )

    assert changed.status_code == 302
    effective = _effective(api)
    assert effective == defaults | {"live_performance_margin": 0.1}
    assert api.get(TRIGGERS_API).json()["overrides"] == {"live_performance_margin": 0.1}


def test_trigger_settings_once_per_tenant_and_model_type(console: Client, db: None) -> None:
    TriggerSettings.objects.create(tenant=TENANT, model_type=LEAD)

    response = console.post("/admin/monitoring/triggersettings/add/", _trigger_form(max_age_days="10"))

    assert response.status_code == 200  # the form again, with the constraint's error
    assert response.context["adminform"].form.errors
    assert TriggerSettings.objects.get().max_age_days is None


OUT_OF_RANGE = {"live_performance_margin": "1.5", "new_rows_min": "0", "max_age_days": "0"}


def test_the_api_refuses_out_of_range_trigger_settings(api: APIClient) -> None:
    for name, value in OUT_OF_RANGE.items():
        assert api.put(TRIGGERS_API, {name: float(value)}, format="json").status_code == 400, name


def test_the_admin_refuses_the_trigger_settings_the_api_refuses(console: Client, db: None) -> None:
    for index, (name, value) in enumerate(OUT_OF_RANGE.items()):
        form = _trigger_form(**{name: value}) | {"tenant": f"tenant-{index}"}
        response = console.post("/admin/monitoring/triggersettings/add/", form)

        assert response.status_code == 200, f"{name}={value} was saved"
    assert not TriggerSettings.objects.exists()


def test_the_webhook_secret_is_not_shown_in_the_admin(console: Client, db: None) -> None:
    secret = "a-signing-secret-only-the-crm-knows"
    webhook = TenantWebhook.objects.create(tenant=TENANT, url="https://crm.example.com/hooks/leadml", secret=secret)

    response = console.get(f"/admin/monitoring/tenantwebhook/{webhook.pk}/change/")

    assert response.status_code == 200
    assert secret not in response.content.decode()
