"""`tenant_delete` removes every row and artifact of one tenant and nothing of another."""
from __future__ import annotations

from typing import Any

import pytest
from django.core.files.storage import storages
from django.core.management import CommandError, call_command

from monitoring.models import Outcome
from monitoring.services.outcomes import outcomes_record
from predictions.models import Prediction
from predictions.services import predictions_make
from registry.models import ApiToken, ModelVersion
from tests.conftest import TENANT
from tests.factories import token_for, trained_model
from training.models import Dataset, DatasetRow, TrainingJob

OTHER = "tenant-b"


def _tenant_with_everything(tenant: str, lead_rows: list[dict[str, Any]]) -> ModelVersion:
    version = trained_model(tenant, "lead_conversion", lead_rows, name="leads", reuse=True)
    record = {key: value for key, value in lead_rows[0].items() if key != "status"}
    predictions_make(tenant=tenant, model_type="lead_conversion", records=[record | {"id": "L1"}])
    result = outcomes_record(tenant=tenant, model_type="lead_conversion", items=[{"entity_id": "L1", "outcome": "won"}])
    assert result.stored == 1, result.rejected
    token_for(tenant, name="crm")
    return version


def test_deletes_every_row_and_artifact_of_the_tenant_only(
    db: None, lead_rows: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    mine = _tenant_with_everything(TENANT, lead_rows)
    theirs = _tenant_with_everything(OTHER, lead_rows)
    storage = storages["models"]
    assert storage.exists(mine.artifact_path) and storage.exists(theirs.artifact_path)

    with pytest.raises(CommandError, match="--yes"):
        call_command("tenant_delete", TENANT)
    assert ModelVersion.objects.filter(tenant=TENANT).exists()

    # The artifacts go once the deletion commits.
    with django_capture_on_commit_callbacks(execute=True):
        call_command("tenant_delete", TENANT, "--yes")

    for model in (ModelVersion, Dataset, DatasetRow, TrainingJob, Prediction, Outcome):
        assert not model.objects.filter(tenant=TENANT).exists(), model.__name__
        assert model.objects.filter(tenant=OTHER).exists(), model.__name__
    assert not ApiToken.objects.filter(tenant=TENANT, revoked_at__isnull=True).exists()
    assert ApiToken.objects.filter(tenant=OTHER, revoked_at__isnull=True).exists()
    assert not storage.exists(mine.artifact_path)
    assert storage.exists(theirs.artifact_path)
