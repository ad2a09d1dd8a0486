"""The admin index: the models dashboard above the app list."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from rest_framework.test import APIClient

from registry.models import ModelVersion
from tests.oversight.conftest import card_url, score_leads

pytestmark = pytest.mark.django_db
ROW = re.compile(r'<tr class="leadml-dashboard-row">(.*?)</tr>', re.DOTALL)


def _dashboard_rows(console: Client) -> list[str]:
    response = console.get("/admin/")
    assert response.status_code == 200
    assert 'id="leadml-dashboard"' in response.content.decode()
    return ROW.findall(response.content.decode())


def test_dashboard_says_there_is_no_model_yet(console: Client) -> None:
    response = console.get("/admin/")

    assert response.status_code == 200
    assert "No active model yet" in response.content.decode()
    assert _dashboard_rows(console) == []


def test_dashboard_has_one_row_per_active_model_with_metric_usage_and_card_link(
    console: Client, api: APIClient, lead_model: ModelVersion, clv_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    score_leads(api, lead_rows[:12])

    rows = _dashboard_rows(console)

    assert len(rows) == 2
    lead_row = next(row for row in rows if "Lead conversion" in row)
    clv_row = next(row for row in rows if "Customer lifetime value" in row)
    assert f'href="{card_url(lead_model)}"' in lead_row and f"leads_lr v{lead_model.version}" in lead_row
    assert f'href="{card_url(clv_model)}"' in clv_row and f"clv_lr v{clv_model.version}" in clv_row
    assert f"roc_auc {lead_model.metrics['roc_auc']:.3f}" in lead_row
    assert f"r2 {clv_model.metrics['r2']:.3f}" in clv_row
    assert "<td>12</td>" in lead_row
    assert "<td>0</td>" in clv_row
    assert "No active model yet" not in "".join(rows)


def test_dashboard_lists_only_the_active_version(
    console: Client, lead_versions: tuple[ModelVersion, ModelVersion]
) -> None:
    active, candidate = lead_versions

    rows = _dashboard_rows(console)

    assert len(rows) == 1
    assert f'href="{card_url(active)}"' in rows[0]
    assert f'href="{card_url(candidate)}"' not in rows[0]


def test_every_admin_list_page_loads_with_data(
    console: Client, api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    score_leads(api, lead_rows[:5])
    pages = [f"/admin/{model._meta.app_label}/{model._meta.model_name}/" for model in admin.site._registry]

    for page in pages:
        assert console.get(page).status_code == 200, page
    assert "/admin/registry/promotionevent/" in pages and "/admin/training/datasetrow/" in pages


def test_malformed_object_ids_are_not_found_not_server_errors(console: Client, db: None) -> None:
    console.raise_request_exception = False
    requests = [
        ("get", "/admin/registry/modelversion/abc/change/"),
        ("post", "/admin/registry/modelversion/abc/activate/"),
        ("get", "/admin/training/trainingjob/not-a-uuid/progress/"),
        ("get", "/admin/training/dataset/not-a-uuid/change/"),
        ("get", "/admin/training/dataset/not-a-uuid/append/"),
    ]

    statuses = {url: getattr(console, method)(url).status_code for method, url in requests}

    assert all(status in (302, 404) for status in statuses.values()), statuses
