"""Monitoring events over the API, and their signed webhook deliveries with retries."""
from __future__ import annotations

import ast
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import Schedule
from rest_framework.test import APIClient

from monitoring.models import MonitoringEvent, TenantWebhook
from monitoring.services.events import event_record
from monitoring.tasks import webhook_deliver_task
from registry.models import ModelVersion
from tests.conftest import TENANT
from tests.monitoring.conftest import LEAD


@dataclass
class Receiver:
    """A local HTTP server that records each POST and answers with the queued statuses (then 200)."""

    url: str
    statuses: list[int]
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Receiver]:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    settings.LEADML_WEBHOOK_ALLOW_PRIVATE = True  # the receiver listens on loopback
    state = Receiver(url="", statuses=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append({"headers": {key.lower(): value for key, value in self.headers.items()}, "body": body})
            self.send_response(state.statuses.pop(0) if state.statuses else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/leadml-events"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _events(api: APIClient, **params: Any) -> list[dict[str, Any]]:
    response = api.get(f"/monitoring/{TENANT}/{LEAD}/events", params)
    assert response.status_code == 200, response.json()
    return response.json()["events"]


def _set_webhook(api: APIClient, url: str) -> str:
    response = api.put(f"/monitoring/{TENANT}/webhook", {"url": url}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()["secret"]


def _record(django_capture_on_commit_callbacks: Any) -> MonitoringEvent:
    """Record an event and run its delivery as the worker would once the transaction commits."""
    with django_capture_on_commit_callbacks(execute=True):
        event = event_record(
            tenant=TENANT, model_type=LEAD, kind=MonitoringEvent.Kind.TRIGGER_FIRED,
            message="max_age: trained 3 days ago", values={"name": "max_age"}, model_name="leads_lr",
        )
    event.refresh_from_db()
    return event


def _retry_schedule(event: MonitoringEvent, attempt: int) -> Schedule:
    return Schedule.objects.get(name=f"webhook-{event.pk}-{attempt}")


@pytest.mark.django_db
def test_the_first_model_is_listed_as_a_promotion_event(api: APIClient, lead_model: ModelVersion) -> None:
    [event] = _events(api)

    assert event["kind"] == "promotion" and event["model_name"] == "leads_lr"
    assert event["model_version_id"] == lead_model.pk
    assert "v1 active" in event["message"]
    assert event["webhook"] == {"status": None, "attempts": 0}


@pytest.mark.django_db
def test_a_retrain_is_listed_as_queued_and_finished_events_filtered_by_kind(
    api: APIClient, lead_model: ModelVersion, django_capture_on_commit_callbacks: Any
) -> None:
    assert _events(api, kind="retrain_queued") == []

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/models/{TENANT}/{lead_model.name}/retrain", {}, format="json")
    job_id = response.json()["job_id"]

    [queued] = _events(api, kind="retrain_queued")
    [finished] = _events(api, kind="retrain_finished")
    assert queued["values"]["job_id"] == job_id and queued["model_version_id"] == lead_model.pk
    assert finished["values"]["job_id"] == job_id and finished["values"]["status"] == "succeeded"
    assert finished["values"]["new_version"] == 2 and "promote" in finished["values"]["promotion"]
    assert {event["kind"] for event in _events(api)} >= {"promotion", "retrain_queued", "retrain_finished"}
    assert all(event["kind"] == "promotion" for event in _events(api, kind="promotion"))


@pytest.mark.django_db
def test_events_refuse_an_unknown_kind_and_another_tenant(
    api: APIClient, client_for: Any, other_tenant_key: str, lead_model: ModelVersion
) -> None:
    bad = api.get(f"/monitoring/{TENANT}/{LEAD}/events", {"kind": "exploded"})

    assert bad.status_code == 400 and "kind" in bad.json()["details"]
    assert client_for(other_tenant_key).get(f"/monitoring/{TENANT}/{LEAD}/events").status_code == 403


@pytest.mark.django_db
def test_webhook_secret_is_shown_once(api: APIClient, client_for: Any, other_tenant_key: str) -> None:
    created = api.put(f"/monitoring/{TENANT}/webhook", {"url": "https://crm.example.com/hooks/leadml"}, format="json")
    chosen = api.put(
        f"/monitoring/{TENANT}/webhook", {"url": "https://crm.example.com/hooks/v2", "secret": "s" * 20}, format="json"
    )
    shown = api.get(f"/monitoring/{TENANT}/webhook")

    assert created.status_code == 200 and len(created.json()["secret"]) >= 32
    assert chosen.json()["secret"] == "s" * 20
    assert shown.json() == {"success": True, "url": "https://crm.example.com/hooks/v2", "enabled": True}
    assert api.put(f"/monitoring/{TENANT}/webhook", {"url": "https://x.example", "secret": "short"}, format="json").status_code == 400
    assert api.put(f"/monitoring/{TENANT}/webhook", {"url": "not a url"}, format="json").status_code == 400
    assert client_for(other_tenant_key).get(f"/monitoring/{TENANT}/webhook").status_code == 403


@pytest.mark.django_db
def test_events_are_posted_to_the_webhook_signed_with_the_secret(
    api: APIClient, lead_model: ModelVersion, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    secret = _set_webhook(api, receiver.url)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/models/{TENANT}/{lead_model.name}/retrain", {}, format="json")
    assert response.status_code == 202

    pending = MonitoringEvent.objects.exclude(webhook_status="")
    assert pending.count() >= 2  # retrain queued, retrain finished (and a promotion if v2 won)
    assert len(receiver.received) == pending.count()
    for delivery in receiver.received:
        expected = "sha256=" + hmac.new(secret.encode(), delivery["body"], hashlib.sha256).hexdigest()
        assert delivery["headers"]["x-leadml-signature"] == expected
        payload = json.loads(delivery["body"])
        assert payload["kind"] == delivery["headers"]["x-leadml-event"]
        assert str(payload["id"]) == delivery["headers"]["x-leadml-delivery"]
        assert payload["user_id"] == TENANT and payload["model_type"] == LEAD
    kinds = {json.loads(delivery["body"])["kind"] for delivery in receiver.received}
    assert {"retrain_queued", "retrain_finished"} <= kinds
    assert set(pending.values_list("webhook_status", "webhook_attempts")) == {("delivered", 1)}
    # The promotion of the first model happened before the webhook existed: never sent.
    assert MonitoringEvent.objects.get(kind="promotion", model_version=lead_model).webhook_status == ""


@pytest.mark.django_db
def test_a_failing_receiver_leaves_the_event_pending_with_a_retry_scheduled(
    api: APIClient, receiver: Receiver, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.LEADML_WEBHOOK_BACKOFF_SECONDS = 30
    receiver.statuses[:] = [500]
    _set_webhook(api, receiver.url)
    before = timezone.now()

    event = _record(django_capture_on_commit_callbacks)

    assert len(receiver.received) == 1
    assert (event.webhook_status, event.webhook_attempts, event.webhook_error) == ("pending", 1, "HTTP 500")
    retry = _retry_schedule(event, 2)
    assert retry.func == "monitoring.tasks.webhook_deliver_task" and retry.schedule_type == Schedule.ONCE
    assert ast.literal_eval(retry.args) == (event.pk, 2)
    assert before + timedelta(seconds=29) < retry.next_run < timezone.now() + timedelta(seconds=31)


@pytest.mark.django_db
def test_a_retry_that_succeeds_marks_the_event_delivered(
    api: APIClient, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    receiver.statuses[:] = [503]
    _set_webhook(api, receiver.url)
    event = _record(django_capture_on_commit_callbacks)

    webhook_deliver_task(*ast.literal_eval(_retry_schedule(event, 2).args))
    webhook_deliver_task(event.pk, 2)  # the same retry delivered twice is sent once

    event.refresh_from_db()
    assert (event.webhook_status, event.webhook_attempts, event.webhook_error) == ("delivered", 2, "")
    assert len(receiver.received) == 2
    assert receiver.received[0]["body"] == receiver.received[1]["body"]


@pytest.mark.django_db
def test_the_event_fails_after_the_configured_attempts(
    api: APIClient, receiver: Receiver, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.LEADML_WEBHOOK_ATTEMPTS = 3
    receiver.statuses[:] = [500, 500, 500, 500]
    _set_webhook(api, receiver.url)
    event = _record(django_capture_on_commit_callbacks)

    webhook_deliver_task(*ast.literal_eval(_retry_schedule(event, 2).args))
    second_failed_at = timezone.now()
    third = _retry_schedule(event, 3)
    webhook_deliver_task(*ast.literal_eval(third.args))

    event.refresh_from_db()
    assert (event.webhook_status, event.webhook_attempts) == ("failed", 3)
    assert len(receiver.received) == 3
    # The delay doubles after each failure, and there is no fourth attempt.
    assert third.next_run >= second_failed_at + timedelta(seconds=2 * settings.LEADML_WEBHOOK_BACKOFF_SECONDS - 1)
    assert not Schedule.objects.filter(name=f"webhook-{event.pk}-4").exists()


@pytest.mark.django_db
def test_a_pending_event_fails_when_the_webhook_was_removed(
    api: APIClient, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    receiver.statuses[:] = [500]
    _set_webhook(api, receiver.url)
    event = _record(django_capture_on_commit_callbacks)
    assert api.delete(f"/monitoring/{TENANT}/webhook").status_code == 200

    webhook_deliver_task(event.pk, 2)

    event.refresh_from_db()
    assert (event.webhook_status, event.webhook_error) == ("failed", "webhook removed")
    assert len(receiver.received) == 1


@pytest.mark.django_db
def test_webhooks_to_internal_addresses_are_refused(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    for url in ("http://127.0.0.1:8080/x", "http://localhost/x", "http://10.0.0.7/x", "http://169.254.169.254/latest"):
        response = api.put(f"/monitoring/{TENANT}/webhook", {"url": url}, format="json")
        assert response.status_code == 400, url
        assert "internal address" in response.json()["details"]["url"][0] or "local address" in response.json()["details"]["url"][0]
    # Set while allowed (or re-pointed later): refused again at delivery, never called.
    TenantWebhook.objects.create(tenant=TENANT, url="http://127.0.0.1:9/x", secret="s" * 20)
    event = _record(django_capture_on_commit_callbacks)
    event.refresh_from_db()
    assert event.webhook_status == "failed" and event.webhook_error.startswith("refused: 127.0.0.1")
