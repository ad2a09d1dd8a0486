"""POST /outcomes: linking to predictions, refusals by index, duplicates, training rows."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from monitoring.models import Outcome
from predictions.public_ids import internal_id, public_ids
from registry.models import ModelVersion
from tests.conftest import OTHER_TENANT, TENANT
from tests.factories import stored_prediction
from tests.monitoring.conftest import (
    CLV,
    LEAD,
    accepted_outcomes,
    lead_features,
    post_outcomes,
    score,
)
from training.models import Dataset, DatasetRow


def _predict_one(api: APIClient, record: dict[str, Any]) -> int:
    response = api.post("/predict", {"model_type": LEAD, "user_id": TENANT, "data": record}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()["prediction_id"]


def _outcome_rows() -> Any:
    return DatasetRow.objects.filter(tenant=TENANT, source=DatasetRow.Source.OUTCOME)


@pytest.fixture
def scored(api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ten demo leads scored in one batch (ids lead-000001..lead-000010)."""
    return score(api, lead_features(lead_rows[:10]))


@pytest.mark.django_db
def test_outcome_by_entity_id_links_the_latest_prediction_of_that_entity(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    record = lead_features(lead_rows[:1])[0]
    first = _predict_one(api, record | {"lead_score": 5})
    latest = _predict_one(api, record | {"lead_score": 95})

    answer = accepted_outcomes(api, [{"entity_id": record["id"], "outcome": "won"}])

    assert (answer["accepted"], answer["stored"], answer["rejected"]) == (1, 1, [])
    outcome = Outcome.objects.get(tenant=TENANT, entity_id=record["id"])
    assert outcome.prediction_id == internal_id(latest) != internal_id(first)
    assert outcome.model_version_id == lead_model.pk
    assert outcome.label == 1.0 and outcome.value == "won"
    assert outcome.dataset_row.data["lead_score"] == 95


@pytest.mark.django_db
def test_outcome_by_prediction_id_links_that_prediction_and_takes_its_entity(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    record = lead_features(lead_rows[:1])[0]
    first = _predict_one(api, record | {"lead_score": 5})
    _predict_one(api, record | {"lead_score": 95})

    answer = accepted_outcomes(api, [{"prediction_id": first, "outcome": "lost"}])

    assert answer["stored"] == 1, answer
    outcome = Outcome.objects.get(tenant=TENANT)
    assert outcome.prediction_id == internal_id(first)
    assert outcome.entity_id == record["id"] and outcome.entity_key == record["id"]
    assert outcome.label == 0.0
    assert outcome.dataset_row.data["lead_score"] == 5


@pytest.mark.django_db
def test_entity_id_and_prediction_id_that_disagree_are_rejected(
    api: APIClient, scored: list[dict[str, Any]]
) -> None:
    answer = accepted_outcomes(
        api, [{"entity_id": scored[1]["lead_id"], "prediction_id": scored[0]["prediction_id"], "outcome": "won"}]
    )

    assert answer["stored"] == 0
    [rejection] = answer["rejected"]
    assert rejection["index"] == 0
    assert scored[0]["lead_id"] in rejection["error"] and scored[1]["lead_id"] in rejection["error"]
    assert not Outcome.objects.exists()


@pytest.mark.django_db
def test_unknown_and_foreign_references_are_rejected_by_index_and_the_others_stored(
    api: APIClient, scored: list[dict[str, Any]]
) -> None:
    foreign = stored_prediction(OTHER_TENANT, model_type=LEAD, entity_id="theirs")
    outcomes = [
        {"entity_id": scored[0]["lead_id"], "outcome": "won"},
        {"entity_id": "never-scored", "outcome": "won"},
        {"prediction_id": 10_000_000, "outcome": "won"},
        {"prediction_id": public_ids([foreign.pk])[0], "outcome": "lost"},
        {"outcome": "won"},
        {"prediction_id": scored[1]["prediction_id"], "outcome": "lost"},
    ]

    answer = accepted_outcomes(api, outcomes)

    assert (answer["accepted"], answer["stored"]) == (2, 2), answer
    rejected = {item["index"]: item["error"] for item in answer["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4]
    assert "never-scored" in rejected[1]
    assert "10000000" in rejected[2]
    assert str(public_ids([foreign.pk])[0]) in rejected[3]
    assert "entity_id" in rejected[4]
    stored = set(Outcome.objects.values_list("entity_id", flat=True))
    assert stored == {scored[0]["lead_id"], scored[1]["lead_id"]}
    assert not Outcome.objects.filter(tenant=OTHER_TENANT).exists()


@pytest.mark.django_db
def test_lead_outcomes_that_are_not_a_conversion_answer_are_rejected(
    api: APIClient, scored: list[dict[str, Any]]
) -> None:
    ids = [item["lead_id"] for item in scored]
    outcomes = [
        {"entity_id": ids[0], "outcome": {"status": "won"}},
        {"entity_id": ids[1], "outcome": ["won"]},
        {"entity_id": ids[2], "outcome": None},
        {"entity_id": ids[3], "outcome": "   "},
        # A known "converted" word that is not one of this tenant's positive_values.
        {"entity_id": ids[4], "outcome": "yes"},
        {"entity_id": ids[5], "outcome": "lost", "observed_at": "not a date"},
        {"entity_id": ids[6], "outcome": "customer"},
    ]

    answer = accepted_outcomes(api, outcomes)

    assert [item["index"] for item in answer["rejected"]] == [0, 1, 2, 3, 4, 5]
    assert all(item["error"] for item in answer["rejected"])
    assert "positive_values" in answer["rejected"][4]["error"]
    assert "observed_at" in answer["rejected"][5]["error"]
    assert list(Outcome.objects.values_list("entity_id", "label")) == [(ids[6], 1.0)]


@pytest.mark.django_db
def test_lead_outcome_that_names_no_known_status_is_rejected(api: APIClient, scored: list[dict[str, Any]]) -> None:
    answer = accepted_outcomes(api, [{"entity_id": scored[0]["lead_id"], "outcome": "maybe"}])

    assert [item["index"] for item in answer["rejected"]] == [0]
    assert not Outcome.objects.exists()


@pytest.mark.django_db
def test_clv_outcomes_must_be_non_negative_numbers(
    api: APIClient, clv_model: ModelVersion, customer_rows: list[dict[str, Any]]
) -> None:
    records = [{key: value for key, value in row.items() if key != "lifetime_value"} for row in customer_rows[:6]]
    ids = [item["customer_id"] for item in score(api, records, model_type=CLV)]
    outcomes = [
        {"entity_id": ids[0], "outcome": "abc"},
        {"entity_id": ids[1], "outcome": -5},
        {"entity_id": ids[2], "outcome": {"value": 10}},
        {"entity_id": ids[3], "outcome": True},
        {"entity_id": ids[4], "outcome": "1,234.5"},
        {"entity_id": ids[5], "outcome": 0},
    ]

    answer = accepted_outcomes(api, outcomes, model_type=CLV)

    assert [item["index"] for item in answer["rejected"]] == [0, 1, 2, 3]
    assert "negative" in answer["rejected"][1]["error"]
    labels = dict(Outcome.objects.filter(model_type=CLV).values_list("entity_id", "label"))
    assert labels == {ids[4]: 1234.5, ids[5]: 0.0}
    # The training row carries the realised value in the CLV dataset's own target column.
    row = Outcome.objects.get(entity_id=ids[4]).dataset_row
    assert row.data["lifetime_value"] == "1,234.5" and row.label == 1234.5


@pytest.mark.django_db
def test_the_same_outcome_sent_twice_is_stored_once(api: APIClient, scored: list[dict[str, Any]]) -> None:
    first = {"entity_id": scored[0]["lead_id"], "outcome": "won"}
    second = {"entity_id": scored[1]["lead_id"], "outcome": "lost"}

    within_one_call = accepted_outcomes(api, [first, second, dict(first)])
    again = accepted_outcomes(api, [first, second])

    assert (within_one_call["stored"], within_one_call["duplicates"], within_one_call["updated"]) == (2, 1, 0)
    assert within_one_call["accepted"] == 3
    assert (again["stored"], again["duplicates"], again["updated"]) == (0, 2, 0)
    assert Outcome.objects.count() == 2
    assert _outcome_rows().count() == 2
    dataset = Dataset.objects.get(tenant=TENANT, model_type=LEAD)
    assert (dataset.row_count, dataset.labelled_row_count) == (402, 402)


@pytest.mark.django_db
def test_a_changed_outcome_updates_the_outcome_and_its_training_row(
    api: APIClient, scored: list[dict[str, Any]]
) -> None:
    entity = scored[0]["lead_id"]
    accepted_outcomes(api, [{"entity_id": entity, "outcome": "lost"}])
    row_id = Outcome.objects.get(entity_id=entity).dataset_row_id

    answer = accepted_outcomes(api, [{"entity_id": entity, "outcome": "won", "observed_at": "2026-03-01T10:00:00Z"}])

    assert (answer["stored"], answer["updated"], answer["duplicates"]) == (0, 1, 0)
    outcome = Outcome.objects.get(entity_id=entity)
    assert (outcome.value, outcome.label) == ("won", 1.0)
    assert outcome.observed_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert outcome.dataset_row_id == row_id
    row = DatasetRow.objects.get(pk=row_id)
    assert (row.label, row.data["status"]) == (1.0, "won")
    assert _outcome_rows().count() == 1
    assert Dataset.objects.get(tenant=TENANT, model_type=LEAD).row_count == 401


@pytest.mark.django_db
def test_an_entity_sent_twice_in_one_call_with_different_outcomes_keeps_the_last(
    api: APIClient, scored: list[dict[str, Any]]
) -> None:
    entity = scored[0]["lead_id"]

    response = post_outcomes(api, [{"entity_id": entity, "outcome": "lost"}, {"entity_id": entity, "outcome": "won"}])

    assert response.status_code == 200, response.json()
    outcome = Outcome.objects.get(entity_id=entity)
    assert outcome.label == 1.0 and outcome.dataset_row.label == 1.0
    assert _outcome_rows().count() == 1


@pytest.mark.django_db
def test_outcomes_append_training_rows_from_the_prediction_input(
    api: APIClient, scored: list[dict[str, Any]], lead_rows: list[dict[str, Any]]
) -> None:
    sent = lead_features(lead_rows[:3])

    answer = accepted_outcomes(api, [{"entity_id": record["id"], "outcome": "won"} for record in sent])

    dataset = Dataset.objects.get(tenant=TENANT, model_type=LEAD)
    assert answer["dataset_id"] == str(dataset.pk)
    assert (dataset.row_count, dataset.labelled_row_count) == (403, 403)
    rows = list(_outcome_rows().order_by("row_number"))
    assert [row.row_number for row in rows] == [400, 401, 402]
    assert all(row.dataset_id == dataset.pk and row.label == 1.0 for row in rows)
    assert [row.data for row in rows] == [record | {"status": "won"} for record in sent]


@pytest.mark.django_db
def test_observed_at_with_a_time_zone_is_stored(api: APIClient, scored: list[dict[str, Any]]) -> None:
    accepted_outcomes(api, [{"entity_id": scored[0]["lead_id"], "outcome": "won", "observed_at": "2026-02-03T04:05:06+02:00"}])

    assert Outcome.objects.get().observed_at == datetime(2026, 2, 3, 2, 5, 6, tzinfo=UTC)


@pytest.mark.django_db
def test_observed_at_as_a_plain_date_is_stored_as_utc_midnight(api: APIClient, scored: list[dict[str, Any]]) -> None:
    response = post_outcomes(api, [{"entity_id": scored[0]["lead_id"], "outcome": "won", "observed_at": "2026-02-03"}])

    assert response.status_code == 200, response.json()
    assert Outcome.objects.get().observed_at == datetime(2026, 2, 3, tzinfo=UTC)


@pytest.mark.django_db
def test_nothing_is_stored_when_storing_the_accepted_outcomes_fails(
    api: APIClient, scored: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_bulk_create(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(Outcome.objects, "bulk_create", broken_bulk_create)

    response = post_outcomes(api, [{"entity_id": item["lead_id"], "outcome": "won"} for item in scored[:3]])

    assert response.status_code == 500
    assert not _outcome_rows().exists()
    dataset = Dataset.objects.get(tenant=TENANT, model_type=LEAD)
    assert (dataset.row_count, dataset.labelled_row_count) == (400, 400)


@pytest.mark.django_db
def test_outcomes_can_be_uploaded_as_a_csv_file(api: APIClient, scored: list[dict[str, Any]]) -> None:
    ids = [item["lead_id"] for item in scored[:3]]
    body = "entity_id,outcome\n" + "".join(f"{entity},{status}\n" for entity, status in zip(ids, ["won", "lost", "customer"]))
    upload = SimpleUploadedFile("outcomes.csv", body.encode(), content_type="text/csv")

    response = api.post("/outcomes", {"user_id": TENANT, "model_type": LEAD, "file": upload}, format="multipart")

    assert response.status_code == 200, response.json()
    assert response.json()["stored"] == 3
    labels = dict(Outcome.objects.values_list("entity_id", "label"))
    assert labels == {ids[0]: 1.0, ids[1]: 0.0, ids[2]: 1.0}


@pytest.mark.django_db
def test_outcomes_without_outcomes_or_file_are_refused_naming_the_field(api: APIClient) -> None:
    response = api.post("/outcomes", {"user_id": TENANT, "model_type": LEAD}, format="json")

    assert response.status_code == 400
    assert "outcomes" in response.json()["details"]


@pytest.mark.django_db
def test_outcomes_for_another_tenants_user_id_are_forbidden(
    client_for: Any, other_tenant_key: str, scored: list[dict[str, Any]]
) -> None:
    response = post_outcomes(client_for(other_tenant_key), [{"entity_id": scored[0]["lead_id"], "outcome": "won"}])

    assert response.status_code == 403
    assert not Outcome.objects.exists()


@pytest.mark.django_db
def test_more_outcomes_than_the_batch_limit_are_refused(
    api: APIClient, scored: list[dict[str, Any]], settings: Any
) -> None:
    settings.LEADML_MAX_BATCH_ROWS = 3

    response = post_outcomes(api, [{"entity_id": item["lead_id"], "outcome": "won"} for item in scored[:4]])

    assert response.status_code == 413
    assert not Outcome.objects.exists()
    assert post_outcomes(api, [{"entity_id": item["lead_id"], "outcome": "won"} for item in scored[:3]]).status_code == 200


@pytest.mark.django_db
def test_an_anonymous_predictions_outcome_is_stored_once_however_it_is_named(
    api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    record = {key: value for key, value in lead_features(lead_rows[:1])[0].items() if key != "id"}
    [prediction] = score(api, [record])

    accepted_outcomes(api, [{"prediction_id": prediction["prediction_id"], "outcome": "won"}])
    again = accepted_outcomes(api, [{"prediction_id": prediction["prediction_id"], "entity_id": "crm-1", "outcome": "won"}])

    assert (again["stored"], again["duplicates"] + again["updated"]) == (0, 1)
    assert Outcome.objects.count() == 1 and _outcome_rows().count() == 1


@pytest.mark.django_db
def test_an_outcome_changed_after_the_active_model_changed_leaves_one_labelled_row(
    api: APIClient, scored: list[dict[str, Any]], lead_model: ModelVersion, lead_rows: list[dict[str, Any]]
) -> None:
    # Outcomes join the active model's dataset; flipping between two models trained on two
    # datasets once left the entity labelled in both, with the old and the new outcome.
    from registry.services import model_version_activate
    from tests.factories import dataset_with_rows, train_inline

    first_data = Dataset.objects.get(tenant=TENANT, model_type=LEAD)
    second_data = dataset_with_rows(TENANT, LEAD, lead_rows[:300], name="second export")
    models = {}
    for data in (first_data, second_data):
        job = train_inline(TENANT, LEAD, "logistic_regression", f"on_{data.name[:6]}", {"dataset_id": str(data.pk)})
        assert job.status == "succeeded", job.error
        models[data.pk] = job.model_version
    entity = scored[0]["lead_id"]

    def labelled() -> list[tuple[str, float]]:
        return [(str(row.dataset_id), row.label) for row in _outcome_rows().exclude(label=None).order_by("pk")]

    for data, outcome in [(first_data, "won"), (second_data, "lost"), (first_data, "won")]:
        model = models[data.pk]
        model.refresh_from_db()
        if model.status != ModelVersion.Status.ACTIVE:
            model_version_activate(model_version=model, actor="test", reason="switch")
        accepted_outcomes(api, [{"entity_id": entity, "outcome": outcome}])
        assert labelled() == [(str(data.pk), 1.0 if outcome == "won" else 0.0)]
    for data in (first_data, second_data):
        data.refresh_from_db()
        assert data.labelled_row_count == data.rows.exclude(label=None).count()
