"""Bulk prediction storage: COPY on PostgreSQL, executemany on SQLite; ids in order, all or nothing."""
from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from django.db import IntegrityError
from django.utils import timezone

from predictions import prediction_log
from predictions.models import Prediction
from predictions.prediction_log import PredictionBatch, PredictionRow, predictions_insert

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True, params=["copy", "insert"])
def postgresql_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test on both PostgreSQL paths: COPY, and the one INSERT ... RETURNING of small writes
    (5,000 rows stay under PostgreSQL's 65,535 parameters; SQLite runs bulk_create either way)."""
    monkeypatch.setattr(prediction_log, "INSERT_MAX_ROWS", 0 if request.param == "copy" else 5000)
    return request.param


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


def test_batch_ids_are_the_rows_own_after_deletes_and_ordinary_inserts():
    first = predictions_insert(_awkward_batch(3))
    Prediction.objects.filter(pk=first[-1]).delete()  # the highest id gone: never handed out again
    created = Prediction.objects.create(**{**_row(2, None).__dict__})
    batch = _awkward_batch(40)
    later = predictions_insert(batch)

    assert first[-1] < created.pk < later[0]
    stored = dict(Prediction.objects.filter(pk__in=later).values_list("pk", "entity_id"))
    assert [stored[prediction_id] for prediction_id in later] == list(batch.entity_ids)


# Text COPY's own characters (tab, newline, backslash, `\N`, `\.`), JSON's (quotes,
# escapes), unicode beyond the BMP, an integer beyond 64 bits: stored and read back as sent.
AWKWARD = {
    "tab": "a\tb",
    "newline": "line\nbreak\r\n",
    "backslash": "C:\\temp\\new",
    "copy_null": "\\N",
    "copy_end": "\\.",
    "quote": 'say "hi"',
    "escaped": "\\u0041 and \\n",
    "unicode": "Zoë — 日本語 🚀",
    "control": "bell\x07 unit\x1f",
    "nested": {"list": ["x\ty", 1, 2.5, None, True], "deep": {"k\\ey": "v\nal"}},
    "huge": 2**70,
    "float": 0.1 + 0.2,
}


def _awkward_batch(count: int) -> PredictionBatch:
    return PredictionBatch(
        tenant="acme\tinc",
        model_type="lead_conversion",
        model_version_id=None,
        batch_id=uuid.uuid4(),
        source="model",
        latency_ms=0.125,
        created_at=timezone.now(),
        entity_ids=[f"lead\\{index}\t\n" for index in range(count)],
        inputs=[AWKWARD | {"n": index, f"key\t{index}": "\\"} for index in range(count)],
        outputs=[{"warnings": [f"ignored unknown fields: a\tb, {index}"], "score": index} for index in range(count)],
        values=[index / 7 for index in range(count)],
    )


def test_a_batch_with_awkward_text_reads_back_exactly_as_answered():
    batch = _awkward_batch(1500)

    ids = predictions_insert(batch)

    assert len(ids) == len(set(ids)) == 1500
    stored = {p.pk: p for p in Prediction.objects.filter(batch_id=batch.batch_id)}
    for prediction_id, entity_id, record, output, value in zip(
        ids, batch.entity_ids, batch.inputs, batch.outputs, batch.values
    ):
        prediction = stored[prediction_id]
        assert prediction.tenant == "acme\tinc" and prediction.entity_id == entity_id
        assert prediction.input == record and prediction.output == output
        assert prediction.value == value and prediction.latency_ms == 0.125
        assert prediction.created_at == batch.created_at and prediction.source == "model"


def test_awkward_rows_read_back_exactly_too():
    rows = [replace(_row(index, uuid.uuid4()), input=AWKWARD, entity_id="a\\b\tc") for index in range(3)]

    ids = predictions_insert(rows)

    for prediction_id in ids:
        prediction = Prediction.objects.get(pk=prediction_id)
        assert prediction.input == AWKWARD and prediction.entity_id == "a\\b\tc"


def test_a_batch_with_a_bad_row_stores_nothing():
    batch = _awkward_batch(50)
    values = list(batch.values)
    values[31] = None  # NOT NULL column
    with pytest.raises(IntegrityError):
        predictions_insert(replace(batch, values=values))

    assert not Prediction.objects.filter(batch_id=batch.batch_id).exists()
