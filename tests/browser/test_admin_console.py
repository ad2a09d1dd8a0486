"""The admin as a new operator uses it: log in, read a model card, activate, retrain."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from registry.models import ModelVersion, PromotionEvent
from tests.conftest import TENANT
from tests.factories import dataset_with_rows, tenant_client, train_inline
from training.models import TrainingJob

# The admin in a real browser: its queries are the ORM's, run on PostgreSQL by tests/oversight.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.single_database]
LEAD = "lead_conversion"
PASSWORD = "a-long-admin-password"
WAIT_SECONDS = 60
# Charts a lead model's card draws (oversight/charts.py via oversight/card.py).
LEAD_CHARTS = 8


@pytest.fixture
def models(lead_rows: list[dict[str, Any]]) -> list[ModelVersion]:
    """Two versions of one lead model, a few hundred predictions and their outcomes."""
    dataset_with_rows(TENANT, LEAD, lead_rows)
    first = train_inline(TENANT, LEAD, "logistic_regression", "leads", {"param_grid": {"C": [1.0]}}, reuse=True)
    second = train_inline(TENANT, LEAD, "logistic_regression", "leads", {"param_grid": {"C": [0.1]}}, reuse=True)
    assert first.status == second.status == "succeeded"
    api = tenant_client(TENANT, name="crm")
    data = [{key: value for key, value in row.items() if key != "status"} for row in lead_rows[:300]]
    scored = api.post("/predict/batch", {"model_type": LEAD, "user_id": TENANT, "data": data}, format="json")
    assert scored.status_code == 200
    outcomes = [{"entity_id": row["id"], "outcome": row["status"]} for row in lead_rows[:300]]
    assert api.post("/outcomes", {"user_id": TENANT, "model_type": LEAD, "outcomes": outcomes}, format="json").status_code == 200
    return [first.model_version, second.model_version]


@pytest.fixture
def admin_session(browser: Any, live_server: Any) -> Any:
    get_user_model().objects.create_superuser("admin", "admin@example.com", PASSWORD)
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, WAIT_SECONDS).until(expected_conditions.presence_of_element_located((By.ID, "leadml-dashboard")))
    # DEBUG is off (the test settings, as in production): the styles and scripts come
    # from WhiteNoise, and every one of them loaded.
    assert settings.DEBUG is False
    rules = browser.execute_script(
        "return Array.from(document.styleSheets).filter(s => s.href && s.href.includes('/static/'))"
        ".map(s => s.cssRules.length)"
    )
    assert rules and all(count > 0 for count in rules), rules
    failed = browser.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/static/')"
        " && e.responseStatus && e.responseStatus >= 400).map(e => e.name)"
    )
    assert failed == [], failed
    return browser


def _card_url(live_server: Any, version: ModelVersion) -> str:
    return f"{live_server.url}/admin/registry/modelversion/{version.pk}/change/"


def test_the_dashboard_lists_the_active_model_with_a_link_to_its_card(admin_session: Any, models: list[ModelVersion], live_server: Any) -> None:
    admin_session.get(f"{live_server.url}/admin/")
    rows = admin_session.find_elements(By.CSS_SELECTOR, "#leadml-dashboard .leadml-dashboard-row")
    active = ModelVersion.objects.get(tenant=TENANT, status="active")
    assert len(rows) == 1 and f"leads v{active.version}" in rows[0].text and "300" in rows[0].text
    rows[0].find_element(By.LINK_TEXT, f"leads v{active.version}").click()
    WebDriverWait(admin_session, WAIT_SECONDS).until(expected_conditions.presence_of_element_located((By.ID, "model-card")))


def test_every_chart_of_the_model_card_renders_with_data(admin_session: Any, models: list[ModelVersion], live_server: Any) -> None:
    active = ModelVersion.objects.get(tenant=TENANT, status="active")
    admin_session.get(_card_url(live_server, active))
    charts = admin_session.find_elements(By.CSS_SELECTOR, "#model-card svg.leadml-chart")
    assert len(charts) == LEAD_CHARTS
    for chart in charts:
        label = chart.get_attribute("aria-label")
        assert int(chart.get_attribute("data-points")) > 0, f"{label}: no data"
        assert chart.size["width"] > 100 and chart.size["height"] > 50, f"{label}: {chart.size}"
        assert chart.find_elements(By.CSS_SELECTOR, ".leadml-mark"), f"{label}: nothing drawn"
    if os.environ.get("LEADML_UPDATE_SCREENSHOTS"):
        target = Path(settings.BASE_DIR) / "docs" / "admin-model-card.png"
        target.parent.mkdir(exist_ok=True)
        admin_session.set_window_size(1400, 2200)
        admin_session.save_screenshot(str(target))


def test_activating_an_older_version_with_a_reason_shows_in_the_history(
    admin_session: Any, models: list[ModelVersion], live_server: Any
) -> None:
    inactive = ModelVersion.objects.filter(tenant=TENANT, name="leads").exclude(status="active").get()
    admin_session.get(_card_url(live_server, inactive))
    admin_session.find_element(By.ID, "activate-reason").send_keys("roll back: the newer grid under-performs live")
    admin_session.find_element(By.ID, "activate-button").click()
    WebDriverWait(admin_session, WAIT_SECONDS).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "card-status"), "active")
    )
    history = admin_session.find_element(By.ID, "promotion-history").text
    assert "roll back: the newer grid under-performs live" in history and "admin:admin" in history
    inactive.refresh_from_db()
    assert inactive.status == "active"
    assert PromotionEvent.objects.filter(to_version=inactive, actor="admin:admin").exists()
    # The CRM sees the same through the API: the version is active, the change in the history.
    api = tenant_client(TENANT, name="check")
    listed = api.get(f"/models/{TENANT}").json()
    active = [model for model in listed["models"] if model["is_active"]]
    assert [model["version"] for model in active] == [inactive.version]
    assert listed["promotion_history"][LEAD][0]["reason"] == "roll back: the newer grid under-performs live"


def test_a_retrain_started_from_the_card_ends_succeeded_on_its_job_page(
    admin_session: Any, models: list[ModelVersion], live_server: Any
) -> None:
    active = ModelVersion.objects.get(tenant=TENANT, status="active")
    admin_session.get(_card_url(live_server, active))
    admin_session.find_element(By.ID, "retrain-button").click()
    WebDriverWait(admin_session, WAIT_SECONDS).until(expected_conditions.presence_of_element_located((By.ID, "job-progress")))
    WebDriverWait(admin_session, WAIT_SECONDS).until(
        lambda driver: driver.find_element(By.ID, "job-progress").get_attribute("data-status") == "succeeded"
    )
    bar = admin_session.find_element(By.ID, "job-progress-bar")
    assert bar.get_attribute("style").replace(" ", "").startswith("width:100%")
    assert "succeeded" in admin_session.find_element(By.ID, "job-log").text
    job = TrainingJob.objects.get(retrain_of=active)
    assert job.status == "succeeded" and job.requested_by == "admin:admin"
