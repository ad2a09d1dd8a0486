"""The model card: a version's charts, training report and promotion history on its change page."""
from __future__ import annotations

from typing import Any

import pytest
from django.core.files.storage import storages
from django.test import Client
from rest_framework.test import APIClient

from registry.models import ModelVersion
from tests.oversight.conftest import card_url, charts_of, score_leads

pytestmark = pytest.mark.django_db
LEAD_CHARTS = {
    "Feature importance", "ROC curve", "Calibration", "Confusion matrix", "Held-out scores",
    "Predictions per day", "Performance over time", "Drift per feature",
}
CLV_CHARTS = {
    "Feature importance", "Predicted vs actual", "Residuals", "Held-out scores",
    "Predictions per day", "Performance over time", "Drift per feature",
}


def test_lead_card_draws_eight_charts_and_the_training_report(console: Client, lead_model: ModelVersion) -> None:
    response = console.get(card_url(lead_model))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="leadml-chart ') == 8
    charts = charts_of(html)
    assert set(charts) == LEAD_CHARTS
    for title in ("Feature importance", "ROC curve", "Calibration", "Confusion matrix", "Held-out scores"):
        assert charts[title] > 0, f"{title}: no data"
    assert "tier A" in html  # the score histogram marks the tier thresholds

    report = lead_model.training_report
    assert "Candidates (auto) and their scores" in html
    for candidate in report["candidates"]:
        assert f"<td>{candidate['algorithm']}</td>" in html
    assert "Dropped and leakage columns" in html
    assert report["dropped_columns"], "the demo leads have an id column to drop"
    for dropped in report["dropped_columns"]:
        assert f"<td>{dropped['name']}</td><td>{dropped['reason']}</td>" in html
    history = html.split('id="promotion-history"', 1)[1].split("</table>", 1)[0]
    assert f"leads_lr v{lead_model.version}" in history
    assert "<td>test</td><td>first model of this type</td>" in history


def test_clv_card_draws_regression_charts_instead_of_classification_ones(console: Client, clv_model: ModelVersion) -> None:
    response = console.get(card_url(clv_model))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="leadml-chart ') == 7
    charts = charts_of(html)
    assert set(charts) == CLV_CHARTS
    assert charts["Predicted vs actual"] > 0 and charts["Residuals"] > 0
    assert not {"ROC curve", "Calibration", "Confusion matrix"} & set(charts)


def test_card_of_a_version_whose_artifact_was_deleted_still_renders(
    console: Client, api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    score_leads(api, lead_rows[:30])
    storages["models"].delete(lead_model.artifact_path)
    assert not storages["models"].exists(lead_model.artifact_path)

    response = console.get(card_url(lead_model))

    assert response.status_code == 200
    html = response.content.decode()
    charts = charts_of(html)
    assert set(charts) == LEAD_CHARTS
    # Drift compares live inputs with the artifact's reference sample: gone with the file.
    assert charts["Drift per feature"] == 0
    assert "No data yet" in html
    # What training stored on the version and the prediction log need no artifact.
    assert charts["ROC curve"] > 0 and charts["Predictions per day"] > 0
    assert "tier A" not in html  # the tier thresholds come from the artifact's quantiles


def test_card_of_an_unknown_version_is_404(console: Client, db: None) -> None:
    assert console.get("/admin/registry/modelversion/999999/change/").status_code == 404
