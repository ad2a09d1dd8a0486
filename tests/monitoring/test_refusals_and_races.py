"""Inputs that must be refused one by one (never a 500), rows that must not go missing,
and deliveries that must not be steered elsewhere."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from monitoring.models import MonitoringEvent, Outcome, TenantWebhook
from monitoring.services import retrain as retrain_service
from monitoring.services.events import event_record, webhook_deliver
from registry.models import ModelVersion
from tests.conftest import TENANT
from tests.monitoring.conftest import CLV, LEAD, accepted_outcomes, lead_features, put_triggers, score
from training.models import DatasetRow


@pytest.fixture
def scored(api: APIClient, lead_model: ModelVersion, lead_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return score(api, lead_features(lead_rows[:120]))


@pytest.mark.django_db
def test_impossible_or_implausible_observed_at_is_refused_by_index(api: APIClient, scored: list[dict[str, Any]]) -> None:
    bad = ["2024-02-30", "2024-02-30T10:00:00", "2024-01-01T25:00:00", "9999-12-31T23:59:59-05:00",
           "0001-01-01T00:00:00+05:00", "1800-01-01"]
    items = [{"entity_id": scored[index]["lead_id"], "outcome": "won", "observed_at": value} for index, value in enumerate(bad)]
    items.append({"entity_id": scored[10]["lead_id"], "outcome": "won", "observed_at": "2026-01-05"})

    answer = accepted_outcomes(api, items)

    assert [item["index"] for item in answer["rejected"]] == list(range(len(bad)))
    assert all("observed_at" in item["error"] for item in answer["rejected"])
    assert answer["stored"] == 1


@pytest.mark.django_db
def test_huge_ids_and_values_are_refused_by_index(
    api: APIClient, scored: list[dict[str, Any]], clv_model: ModelVersion, customer_rows: list[dict[str, Any]]
) -> None:
    answer = accepted_outcomes(api, [
        {"prediction_id": 10**20, "outcome": "won"},
        {"prediction_id": 1e20, "outcome": "won"},
        {"prediction_id": 10**400, "outcome": "won"},
    ])
    assert [item["index"] for item in answer["rejected"]] == [0, 1, 2]
    records = [{key: value for key, value in row.items() if key != "lifetime_value"} for row in customer_rows[:1]]
    customer = score(api, records, model_type=CLV)[0]["customer_id"]
    answer = accepted_outcomes(api, [{"entity_id": customer, "outcome": 10**400}], model_type=CLV)
    assert [item["index"] for item in answer["rejected"]] == [0]


@pytest.mark.django_db
def test_a_changed_outcome_whose_training_row_was_deleted_gets_a_new_row(api: APIClient, scored: list[dict[str, Any]]) -> None:
    entity = scored[0]["lead_id"]
    accepted_outcomes(api, [{"entity_id": entity, "outcome": "lost"}])
    DatasetRow.objects.filter(pk=Outcome.objects.get(entity_id=entity).dataset_row_id).delete()

    answer = accepted_outcomes(api, [{"entity_id": entity, "outcome": "won"}])

    assert answer["updated"] == 1
    outcome = Outcome.objects.get(entity_id=entity)
    assert outcome.dataset_row is not None and outcome.dataset_row.label == 1.0
    # Resending it now is a duplicate: the row exists again.
    assert accepted_outcomes(api, [{"entity_id": entity, "outcome": "won"}])["duplicates"] == 1


@pytest.mark.django_db
def test_changing_many_outcomes_costs_the_same_queries_as_changing_a_few(api: APIClient, scored: list[dict[str, Any]]) -> None:
    ids = [item["lead_id"] for item in scored]
    accepted_outcomes(api, [{"entity_id": entity, "outcome": "lost"} for entity in ids])

    def change(entities: list[str], outcome: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            answer = accepted_outcomes(api, [{"entity_id": entity, "outcome": outcome} for entity in entities])
        assert answer["updated"] == len(entities)
        return len(queries)

    assert change(ids[:10], "won") == change(ids[10:110], "won")
    assert set(DatasetRow.objects.filter(source="outcome").values_list("label", flat=True)) == {0.0, 1.0}
    assert Outcome.objects.filter(label=1.0).count() == 110


@pytest.mark.django_db
def test_a_retrain_request_that_loses_the_race_is_a_conflict(
    api: APIClient, lead_model: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrain_service, "_blocked", lambda version, force: None)  # both pass the check
    url = f"/models/{TENANT}/{lead_model.name}/retrain"
    assert api.post(url, {}, format="json").status_code == 202
    second = api.post(url, {}, format="json")
    assert second.status_code == 409, second.json()


@pytest.mark.django_db
def test_trigger_counts_past_the_column_range_are_refused(api: APIClient, lead_model: ModelVersion) -> None:
    response = api.put(f"/monitoring/{TENANT}/{LEAD}/triggers", {"new_rows_min": 10**20}, format="json")
    assert response.status_code == 400 and "new_rows_min" in response.json()["details"]
    assert put_triggers(api, {"new_rows_min": 5})["effective"]["new_rows_min"] == 5


@pytest.mark.django_db
def test_a_window_ending_at_the_start_of_time_is_a_bad_request(api: APIClient, lead_model: ModelVersion) -> None:
    response = api.get(f"/monitoring/{TENANT}/{LEAD}", {"until": "0001-01-02T00:00:00Z"})
    assert response.status_code == 400 and "until" in response.json()["details"]


@pytest.fixture
def redirecting_receiver() -> Iterator[tuple[str, list[str]]]:
    """A server that redirects every POST to /internal on itself, and records what it serves."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(f"POST {self.path}")
            self.send_response(302)
            self.send_header("Location", "/internal/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            seen.append(f"GET {self.path}")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.django_db
def test_a_webhook_redirect_is_not_followed(
    redirecting_receiver: tuple[str, list[str]], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    settings.LEADML_WEBHOOK_ALLOW_PRIVATE = True  # the receiver is local; the redirect is what is tested
    url, seen = redirecting_receiver
    TenantWebhook.objects.create(tenant=TENANT, url=url, secret="s" * 20)
    event = event_record(tenant=TENANT, model_type=LEAD, kind=MonitoringEvent.Kind.TRIGGER_FIRED, message="x")

    assert webhook_deliver(event_id=event.pk, attempt=1) is False

    assert seen == ["POST /hook"]
    event.refresh_from_db()
    assert event.webhook_status == "pending" and "redirects are not followed" in event.webhook_error


@pytest.mark.django_db
def test_a_webhook_connects_to_the_address_that_passed_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name resolves to a public address for the check, then to loopback."""
    import monitoring.services.events as events

    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])
    connected: list[tuple[str, int]] = []

    def rebinding(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(2, 1, 6, "", (next(answers), port))]

    def recording(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connected.append(address)
        raise ConnectionRefusedError("not in this test")

    monkeypatch.setattr(events.socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(events.socket, "create_connection", recording)
    TenantWebhook.objects.create(tenant=TENANT, url="https://rebind.example:8443/hook", secret="s" * 20)
    event = event_record(tenant=TENANT, model_type=LEAD, kind=MonitoringEvent.Kind.TRIGGER_FIRED, message="x")

    assert webhook_deliver(event_id=event.pk, attempt=1) is False

    assert connected == [("93.184.216.34", 8443)]  # never the address the name moved to
