"""The issue's "done when", on real data: outcomes, drift, quality, performance, retrain.

A lead model trained on part of bank_marketing_additional (without `duration`) scores
2,000 leads from the rest, then 2,000 shifted ones; outcomes come back for both; the
monitoring report, the triggers and `manage.py retrain` must tell the two apart.
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient
from sklearn.model_selection import train_test_split

from monitoring.models import MonitoringEvent, Outcome
from registry.models import ModelVersion
from tests.conftest import TENANT, records, shared_dataset, train_inline
from training.models import DatasetRow, TrainingJob

TRAIN_ROWS = 6000
WINDOW_ROWS = 2000
LEAD = "lead_conversion"


def _post_outcomes(api: APIClient, ids: list[str], outcomes: list[str]) -> dict[str, Any]:
    response = api.post(
        "/outcomes",
        {
            "user_id": TENANT,
            "model_type": LEAD,
            "outcomes": [{"entity_id": entity, "outcome": outcome} for entity, outcome in zip(ids, outcomes)],
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    return response.json()


def _score(api: APIClient, frame: pd.DataFrame, prefix: str) -> list[str]:
    rows = records(frame.drop(columns=["y"]))
    ids = [f"{prefix}-{index}" for index in range(len(rows))]
    for row, entity in zip(rows, ids):
        row["id"] = entity
    response = api.post("/predict/batch", {"model_type": LEAD, "user_id": TENANT, "data": rows}, format="json")
    assert response.status_code == 200, response.json()
    assert {item["source"] for item in response.json()["predictions"]} == {"model"}
    return ids


def _monitoring(api: APIClient, **params: Any) -> dict[str, Any]:
    response = api.get(f"/monitoring/{TENANT}/{LEAD}", params)
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.mark.single_database
@pytest.mark.django_db
def test_monitoring_tells_a_faithful_window_from_a_shifted_one_and_retrains(
    api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    frame = pd.read_csv(shared_dataset("bank_marketing_additional/bank-additional-full.csv"), sep=";")
    frame = frame.drop(columns=["duration"])  # known only after the call: leakage
    train, rest = train_test_split(frame, train_size=TRAIN_ROWS, stratify=frame["y"], random_state=1)
    first, rest = train_test_split(rest, train_size=WINDOW_ROWS, stratify=rest["y"], random_state=2)
    second, _ = train_test_split(rest, train_size=WINDOW_ROWS, stratify=rest["y"], random_state=3)

    upload = SimpleUploadedFile("bank.csv", train.to_csv(index=False).encode(), content_type="text/csv")
    created = api.post(
        "/datasets",
        {"file": upload, "user_id": TENANT, "model_type": LEAD, "name": "bank", "target": "y"},
        format="multipart",
    )
    assert created.status_code == 201, created.json()
    job = train_inline(TENANT, LEAD, "logistic_regression", "bank_lr")
    assert job.status == "succeeded", job.error
    version = job.model_version
    training_auc = version.metrics["roc_auc"]

    # 1. A window drawn from the same distribution.
    first_ids = _score(api, first, "a")
    report = _monitoring(api)
    assert report["window"]["predictions"] == WINDOW_ROWS
    drift = report["data_drift"]
    flagged = [feature["name"] for feature in drift["features"] if feature["drifted"]]
    assert drift["dataset_drift"] is False and len(flagged) <= 2, drift
    # The reference holds thousands of rows: distances, not p-values.
    methods = {feature["method"] for feature in drift["features"]}
    assert methods <= {"wasserstein", "jensen_shannon"} and methods, methods
    estimated_auc = report["performance"]["estimated"]["roc_auc"]
    assert report["performance"]["live"]["rows"] == 0

    answer = _post_outcomes(api, first_ids, list(first["y"]))
    assert (answer["accepted"], answer["stored"], answer["rejected"]) == (WINDOW_ROWS, WINDOW_ROWS, [])
    live = _monitoring(api)["performance"]["live"]
    assert live["rows"] == WINDOW_ROWS
    assert abs(live["roc_auc"] - estimated_auc) <= 0.05, (live, estimated_auc)
    assert abs(live["roc_auc"] - training_auc) <= 0.05, (live, training_auc)

    # 2. A shifted window: older leads, every contact by telephone, euribor3m often missing.
    shifted = second.copy()
    shifted["age"] = shifted["age"] + 25
    shifted["contact"] = "telephone"
    missing = np.random.default_rng(4).random(len(shifted)) < 0.3
    shifted["euribor3m"] = shifted["euribor3m"].astype(object).where(~missing, None)
    second_ids = _score(api, shifted, "b")
    report = _monitoring(api, last=WINDOW_ROWS)
    assert report["window"]["predictions"] == WINDOW_ROWS
    by_name = {feature["name"]: feature for feature in report["data_drift"]["features"]}
    assert by_name["age"]["drifted"] and by_name["contact"]["drifted"], by_name
    unchanged = [name for name, feature in by_name.items() if feature["drifted"] and name not in ("age", "contact")]
    assert len(unchanged) <= 2, unchanged
    quality = {item["name"]: item for item in report["data_quality"]}
    assert abs(quality["euribor3m"]["missing_share"] - 0.3) < 0.04 and quality["euribor3m"]["flagged"]
    assert quality["age"]["outlier_share"] > 0  # some shifted ages pass the oldest trained-on lead

    inverted = ["no" if outcome == "yes" else "yes" for outcome in second["y"]]
    _post_outcomes(api, second_ids, inverted)
    triggers = {item["name"]: item for item in _monitoring(api)["triggers"]}
    assert triggers["live_performance"]["fired"], triggers["live_performance"]
    assert triggers["live_performance"]["value"] < training_auc - 0.05

    # 3. The command, first as a dry run: it names the model and the trigger, changes nothing.
    out = io.StringIO()
    call_command("retrain", "--dry-run", "--tenant", TENANT, "--model-type", LEAD, stdout=out)
    line = out.getvalue()
    assert "bank_lr v1" in line and "WOULD RETRAIN" in line, line
    assert f"live_performance={triggers['live_performance']['value']:.4g}" in line, line
    assert TrainingJob.objects.filter(retrain_of__isnull=False).count() == 0
    assert ModelVersion.objects.filter(tenant=TENANT).count() == 1

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):  # the job worker runs inline in tests
        call_command("retrain", "--tenant", TENANT, "--model-type", LEAD, stdout=out)
    assert "RETRAIN queued" in out.getvalue(), out.getvalue()
    retrain = TrainingJob.objects.get(retrain_of=version)
    assert retrain.status == "succeeded", retrain.error
    assert retrain.algorithm == version.algorithm and retrain.training_config == version.training_config
    new_version = retrain.model_version
    outcome_rows = DatasetRow.objects.filter(tenant=TENANT, source=DatasetRow.Source.OUTCOME).count()
    assert outcome_rows == 2 * WINDOW_ROWS == Outcome.objects.filter(tenant=TENANT).count()
    assert new_version.trained_rows == TRAIN_ROWS + outcome_rows
    assert "promotion" in new_version.training_report
    kinds = set(MonitoringEvent.objects.filter(tenant=TENANT).values_list("kind", flat=True))
    assert {"trigger_fired", "retrain_queued", "retrain_finished"} <= kinds, kinds
    finished = MonitoringEvent.objects.get(kind="retrain_finished")
    assert finished.values["promotion"] == new_version.training_report["promotion"]
