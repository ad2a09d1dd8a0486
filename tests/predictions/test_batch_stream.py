"""Large batches on PostgreSQL: scored part by part while each part is stored (predictions_stream)."""
from __future__ import annotations

from typing import Any

import pytest
from django.db import DataError, connection

import predictions.prediction_log as prediction_log
import predictions.services as services
from leadml.api.errors import ApplicationError
from predictions.models import Prediction
from predictions.prediction_log import PredictionBatch, predictions_stream
from predictions.services import predictions_make
from registry.models import ModelVersion
from tests.conftest import TENANT, without

LEAD = "lead_conversion"


@pytest.fixture(autouse=True)
def postgresql_only(db: None) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("streaming is PostgreSQL's (COPY); other databases store a batch at once")


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts of 7 records from 10 up: a 40-record batch streams in 6 parts (the last one short)."""
    monkeypatch.setattr(prediction_log, "STREAM_MIN_ROWS", 10)
    monkeypatch.setattr(services, "STREAM_PART_ROWS", 7)


def batch(lead_rows: list[dict[str, Any]], count: int = 40) -> list[dict[str, Any]]:
    base = [without(row, "status") for row in lead_rows]
    return [base[index % len(base)] | {"id": f"lead-{index}"} for index in range(count)]


def score(rows: list[dict[str, Any]], **options: Any) -> Any:
    return predictions_make(tenant=TENANT, model_type=LEAD, records=[dict(row) for row in rows], batch=True, **options)


def without_ids(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [without(output, "prediction_id") for output in outputs]


@pytest.mark.parametrize("explain", [False, True])
def test_a_streamed_batch_answers_and_stores_what_a_batch_stored_at_once_does(
    lead_model: ModelVersion, lead_rows: list[dict[str, Any]], small_parts: None, monkeypatch: pytest.MonkeyPatch,
    explain: bool,
) -> None:
    rows = batch(lead_rows)
    streamed_calls: list[int] = []
    original = services._model_score_streamed
    monkeypatch.setattr(
        services, "_model_score_streamed", lambda *a, **k: streamed_calls.append(1) or original(*a, **k)
    )

    streamed = score(rows, explain=explain)
    assert streamed_calls == [1]
    monkeypatch.setattr(services, "streams", lambda count: False)
    at_once = score(rows, explain=explain)

    assert streamed.source == "model" and len(streamed.outputs) == 40
    assert without_ids(streamed.outputs) == without_ids(at_once.outputs)
    assert streamed.entity_ids == [f"lead-{index}" for index in range(40)]
    assert all("reasons" in output for output in streamed.outputs) is explain
    stored = list(Prediction.objects.filter(pk__in=streamed.prediction_ids).order_by("id"))
    assert [prediction.pk for prediction in stored] == sorted(streamed.prediction_ids) == streamed.prediction_ids
    assert [prediction.entity_id for prediction in stored] == streamed.entity_ids
    assert len({prediction.batch_id for prediction in stored}) == 1 and stored[0].batch_id is not None
    for prediction, output, row in zip(stored, streamed.outputs, rows):
        assert prediction.output == without(output, "prediction_id")
        assert prediction.value == output["conversion_probability"]
        assert prediction.input["id"] == row["id"] and prediction.latency_ms > 0
    assert Prediction.objects.count() == 80


def test_a_model_failing_in_a_later_part_stores_nothing_of_the_model_and_answers_by_the_rules(
    lead_model: ModelVersion, lead_rows: list[dict[str, Any]], small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = services._score
    calls: list[int] = []

    def fails_on_the_fourth_part(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 4:
            raise FloatingPointError("overflow in the model")
        return original(*args, **kwargs)

    monkeypatch.setattr(services, "_score", fails_on_the_fourth_part)

    result = score(batch(lead_rows))

    assert len(calls) == 4  # three parts were scored (and sent) before the failure
    assert result.source == "rules" and result.fallback_reason == "model error: FloatingPointError"
    assert Prediction.objects.count() == 40
    assert set(Prediction.objects.values_list("source", flat=True)) == {"rules"}


def test_a_bad_record_in_the_last_part_is_a_400_before_anything_is_sent(
    lead_model: ModelVersion, lead_rows: list[dict[str, Any]], small_parts: None
) -> None:
    rows = batch(lead_rows)
    rows[38]["lead_score"] = "lots"

    with pytest.raises(ApplicationError) as raised:
        score(rows)

    assert raised.value.details == {"data[38].lead_score": ["field 'lead_score' must be a number, got 'lots'"]}
    assert not Prediction.objects.exists()


def test_a_database_error_mid_stream_stores_nothing(
    lead_model: ModelVersion, lead_rows: list[dict[str, Any]], small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = prediction_log._batch_lines
    parts: list[int] = []

    def fourth_part_broken(ids: Any, part: PredictionBatch) -> Any:
        parts.append(1)
        lines = list(original(ids, part))
        if len(parts) == 4:
            lines[2] = lines[2].replace(b"\tmodel\t", b"\tmodel\tnot-a-column\t", 1)  # one field too many
        return iter(lines)

    monkeypatch.setattr(prediction_log, "_batch_lines", fourth_part_broken)

    with pytest.raises(DataError, match="extra data after last expected column"):
        score(batch(lead_rows))

    assert len(parts) >= 4
    assert not Prediction.objects.exists()


def test_a_stream_left_short_stores_nothing(lead_model: ModelVersion) -> None:
    part = PredictionBatch(
        tenant=TENANT, model_type=LEAD, model_version_id=lead_model.pk, batch_id=None, source="model", latency_ms=1.0,
        created_at=lead_model.created_at, entity_ids=["a", "b"], inputs=[{}, {}], outputs=[{}, {}], values=[0.1, 0.2],
    )
    with pytest.raises(ValueError, match="2 of 3 predictions written"):
        with predictions_stream(3) as stream:
            assert len(stream.write(part)) == 2
    with pytest.raises(ValueError, match="4 predictions written to a stream of 3"):
        with predictions_stream(3) as stream:
            stream.write(part)
            stream.write(part)
    assert not Prediction.objects.exists()
