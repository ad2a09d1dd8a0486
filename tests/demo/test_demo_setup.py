"""`manage.py demo_setup`: the demo tenant has models, two weeks of traffic and outcomes."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from monitoring.models import Outcome
from monitoring.services.report import monitoring_report, window_resolve
from predictions.models import Prediction
from registry.models import ModelVersion


@pytest.mark.single_database
@pytest.mark.django_db
def test_demo_setup_trains_both_models_and_scores_two_weeks_of_traffic_once(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    call_command("demo_setup", leads=300, customers=200, token_file=str(token_file), stdout=io.StringIO(), stderr=io.StringIO())

    actives = {version.model_type: version for version in ModelVersion.objects.filter(tenant="demo", status="active")}
    assert set(actives) == {"lead_conversion", "customer_lifetime_value"}
    days = {created.date() for created in Prediction.objects.filter(tenant="demo").values_list("created_at", flat=True)}
    assert len(days) == 14
    assert Outcome.objects.filter(tenant="demo", model_type="lead_conversion").count() == 11 * 60
    lead = actives["lead_conversion"]
    report = monitoring_report(version=lead, window=window_resolve(version=lead, since=None, until=None, last=None))
    assert report["window"]["predictions"] > 0 and report["performance"]["live"]["rows"] > 0
    assert len(token_file.read_text().strip()) > 20

    predictions = Prediction.objects.count()
    call_command("demo_setup", leads=300, customers=200, token_file=str(token_file), stdout=io.StringIO(), stderr=io.StringIO())
    assert Prediction.objects.count() == predictions  # a second run adds no traffic
