"""Fixtures of the admin console tests: a logged-in superuser, fast models, scoring, messages."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.http import HttpResponse
from django.test import Client
from rest_framework.test import APIClient

from registry.models import ModelVersion
from tests.conftest import TENANT
from tests.factories import train_inline, trained_model

LEAD = "lead_conversion"
CLV = "customer_lifetime_value"
FAST_LEAD_GRID = {"param_grid": {"C": [1.0]}}
CHART = re.compile(r'<svg[^>]*class="leadml-chart[^"]*"[^>]*aria-label="([^"]*)"[^>]*data-points="(\d+)"')


@pytest.fixture
def superuser(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "a-long-admin-password")


@pytest.fixture
def console(client: Client, superuser: Any) -> Client:
    """The Django test client, logged in to the admin as a superuser named `admin`."""
    client.force_login(superuser)
    return client


@pytest.fixture
def viewer(django_user_model: Any) -> Client:
    """A staff user who may view, but not change, versions, jobs, datasets and tokens."""
    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "a-long-viewer-password", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_modelversion", "view_trainingjob", "view_dataset", "view_apitoken", "view_prediction"]
        )
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def lead_model(db: None, lead_rows: list[dict[str, Any]]) -> ModelVersion:
    """The 400 demo leads and one logistic regression fitted with a single C (fast)."""
    return trained_model(TENANT, LEAD, lead_rows, config=FAST_LEAD_GRID, reuse=True)


@pytest.fixture
def lead_versions(lead_model: ModelVersion) -> tuple[ModelVersion, ModelVersion]:
    """(active, candidate): a second version of the same lead model that did not replace the first."""
    # Uncalibrated, with a weaker C: cheaper to fit, and no better than the first.
    job = train_inline(TENANT, LEAD, "logistic_regression", "leads_lr", {"param_grid": {"C": [0.01]}, "calibrate": False}, reuse=True)
    assert job.status == "succeeded", job.error
    active = ModelVersion.objects.get(tenant=TENANT, model_type=LEAD, status=ModelVersion.Status.ACTIVE)
    other = ModelVersion.objects.get(tenant=TENANT, name="leads_lr", status=ModelVersion.Status.CANDIDATE)
    return active, other


@pytest.fixture
def clv_model(db: None, customer_rows: list[dict[str, Any]]) -> ModelVersion:
    return trained_model(TENANT, CLV, customer_rows, reuse=True)


def lead_features(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The leads as the CRM scores them: without their `status`."""
    return [{key: value for key, value in row.items() if key != "status"} for row in rows]


def score_leads(api: APIClient, rows: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    response = api.post(
        "/predict/batch", {"model_type": LEAD, "user_id": TENANT, "data": lead_features(rows), **extra}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()["predictions"]


def post_outcomes(api: APIClient, outcomes: list[dict[str, Any]]) -> None:
    response = api.post("/outcomes", {"user_id": TENANT, "model_type": LEAD, "outcomes": outcomes}, format="json")
    assert response.status_code == 200, response.json()


def messages_of(response: HttpResponse) -> list[tuple[str, str]]:
    """The (level tag, text) of the admin messages queued by the request behind `response`."""
    return [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]


def charts_of(html: str) -> dict[str, int]:
    """Each chart of a page by its title, with the number of data points it drew."""
    return {title: int(points) for title, points in CHART.findall(html)}


def card_url(version: ModelVersion) -> str:
    return f"/admin/registry/modelversion/{version.pk}/change/"


def action_url(version: ModelVersion, action: str) -> str:
    return f"/admin/registry/modelversion/{version.pk}/{action}/"
