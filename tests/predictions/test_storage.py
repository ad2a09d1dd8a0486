"""Bulk prediction storage: COPY on PostgreSQL, bulk_create elsewhere; ids in order, all or nothing."""
from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from django.db import IntegrityError
from django.utils import timezone

from predictions.models import Prediction
from predictions.storage import PredictionRow, predictions_insert

pytestmark = pytest.mark.django_db(transaction=True)


def _row(index: int, batch_id: uuid.UUID) -> PredictionRow:
    return PredictionRow(
        tenant="acme",
        model_type="lead_conversion",
        model_version_id=None,
        entity_id=f"lead-{index}",
        batch_id=batch_id,
        source="rules",
        input={"email": f"user{index}@acme.com", "note": "quote \" and tab\t and \\ backslash", "n": index},
        output={"conversion_probability": index / 1000, "reasons": [{"feature": "email", "contribution": 1.5}]},
        value=index / 1000,
        latency_ms=0.25,
        created_at=timezone.now(),
    )


def test_rows_are_stored_with_their_ids_in_order_and_json_intact():
    batch_id = uuid.uuid4()
    rows = [_row(index, batch_id) for index in range(2500)]

    ids = predictions_insert(rows)

    assert len(ids) == len(set(ids)) == 2500
    stored = {p.pk: p for p in Prediction.objects.filter(batch_id=batch_id)}
    assert len(stored) == 2500
    for prediction_id, row in zip(ids, rows):
        prediction = stored[prediction_id]
        assert prediction.entity_id == row.entity_id
        assert prediction.input == row.input
        assert prediction.output == row.output
        assert prediction.value == pytest.approx(row.value)


def test_a_bad_row_stores_nothing():
    batch_id = uuid.uuid4()
    rows = [_row(index, batch_id) for index in range(100)]
    rows[57] = replace(rows[57], value=None)  # NOT NULL column

    with pytest.raises(IntegrityError):
        predictions_insert(rows)

    assert not Prediction.objects.filter(batch_id=batch_id).exists()


def test_ids_follow_on_after_ordinary_inserts():
    first = predictions_insert([_row(1, uuid.uuid4())])
    created = Prediction.objects.create(**{**_row(2, None).__dict__})
    later = predictions_insert([_row(3, uuid.uuid4())])

    assert first[0] < created.pk < later[0]
