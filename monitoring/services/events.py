"""Monitoring events (fired triggers, retrains, promotions) and their signed webhooks.

An event is a row first; when the tenant has an enabled webhook, delivery is queued on
the job worker once the event's transaction commits, so no request waits on a tenant's
server. A failed delivery is retried with doubling delays through one-off django-q2
schedules, up to settings.LEADML_WEBHOOK_ATTEMPTS attempts.

The receiver checks a delivery with the tenant's secret:
`X-Leadml-Signature: sha256=<hex HMAC-SHA256 of the raw request body>`.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import http.client
import secrets
import socket
import ssl
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from leadml.api.errors import ApplicationError
from monitoring.models import MonitoringEvent, TenantWebhook
from registry.models import ModelVersion
from training.services.queue import BROKER_ERRORS

logger = logging.getLogger(__name__)
Delivery = MonitoringEvent.Delivery
SIGNATURE_HEADER = "X-Leadml-Signature"


def event_record(
    *,
    tenant: str,
    model_type: str,
    kind: str,
    message: str,
    values: dict[str, Any] | None = None,
    model_version: ModelVersion | None = None,
    model_name: str = "",
) -> MonitoringEvent:
    webhook = TenantWebhook.objects.filter(tenant=tenant, enabled=True).exists()
    event = MonitoringEvent.objects.create(
        tenant=tenant,
        model_type=model_type,
        model_name=model_name or (model_version.name if model_version else ""),
        model_version=model_version,
        kind=kind,
        message=message,
        values=values or {},
        webhook_status=Delivery.PENDING if webhook else Delivery.NONE,
    )
    logger.info("monitoring_event tenant=%s model_type=%s kind=%s message=%s", tenant, model_type, kind, message)
    if webhook:
        transaction.on_commit(lambda: _enqueue(event.pk, attempt=1))
    return event


def event_payload(event: MonitoringEvent) -> dict[str, Any]:
    version = event.model_version_id
    return {
        "id": event.pk,
        "user_id": event.tenant,
        "model_type": event.model_type,
        "model_name": event.model_name,
        "model_version_id": version,
        "kind": event.kind,
        "message": event.message,
        "values": event.values,
        "created_at": event.created_at.isoformat(),
    }


def monitoring_events_list(
    *,
    tenant: str,
    model_type: str,
    limit: int,
    kind: str | None = None,
    model_name: str | None = None,
    since: datetime | None = None,
) -> list[MonitoringEvent]:
    """A tenant's events of one model type, newest first, optionally of one kind, model or period."""
    events = MonitoringEvent.objects.filter(tenant=tenant, model_type=model_type)
    if kind is not None:
        events = events.filter(kind=kind)
    if model_name is not None:
        events = events.filter(model_name=model_name)
    if since is not None:
        events = events.filter(created_at__gte=since)
    return list(events[:limit])


def event_with_delivery(event: MonitoringEvent) -> dict[str, Any]:
    """An event as GET .../events shows it: the payload webhooks get, and how its delivery went."""
    return event_payload(event) | {"webhook": {"status": event.webhook_status or None, "attempts": event.webhook_attempts}}


def webhook_get(*, tenant: str) -> TenantWebhook | None:
    return TenantWebhook.objects.filter(tenant=tenant).first()


def webhook_set(*, tenant: str, url: str, enabled: bool, secret: str | None = None) -> tuple[TenantWebhook, str]:
    """Set the tenant's one webhook; return it and its signing secret (generated when not given)."""
    refusal = webhook_url_refusal(url, resolve=False)
    if refusal is not None:
        raise ApplicationError(f"webhook URL refused: {refusal}", details={"url": [f"webhook URL refused: {refusal}"]})
    secret = secret or secrets.token_urlsafe(32)
    webhook, _ = TenantWebhook.objects.update_or_create(
        tenant=tenant, defaults={"url": url, "secret": secret, "enabled": enabled}
    )
    return webhook, secret


def webhook_delete(*, tenant: str) -> bool:
    """Remove the tenant's webhook; False when it had none."""
    deleted, _ = TenantWebhook.objects.filter(tenant=tenant).delete()
    return bool(deleted)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_url_refusal(url: str, *, resolve: bool) -> str | None:
    """Why a webhook URL may not be called (an internal address), or None.

    A tenant's URL must not reach the service's own network (loopback, private, link-local
    ranges: server-side request forgery), unless settings.LEADML_WEBHOOK_ALLOW_PRIVATE.
    Checked when the URL is set and again before each delivery, since a name can be
    re-pointed; `resolve=False` (when setting) accepts a name that does not resolve yet.
    """
    refusal, _ = _webhook_address(url, resolve=resolve)
    return refusal


def _webhook_address(url: str, *, resolve: bool) -> tuple[str | None, str | None]:
    """(why the URL is refused or None, the checked address to connect to)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "the URL must be http(s) with a host", None
    host = parts.hostname
    allow_private = settings.LEADML_WEBHOOK_ALLOW_PRIVATE
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not allow_private and (host.lower() == "localhost" or host.lower().endswith(".localhost")):
            return f"{host} is a local address", None
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError):
            return (None if not resolve else f"{host} does not resolve"), None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if not address.is_global or address.is_multicast:
                return f"{host} resolves to {address}, an internal address", None
    return None, str(addresses[0]) if addresses else None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that passed the check, whatever the name resolves to now."""

    def __init__(self, host: str, *, address: str, port: int | None, timeout: float) -> None:
        super().__init__(host, port=port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, with the URL's host name for SNI and the certificate check."""

    def __init__(self, host: str, *, address: str, port: int | None, timeout: float) -> None:
        context = ssl.create_default_context()
        super().__init__(host, port=port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def _post_pinned(url: str, address: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST to `url` through `address` and return the status; redirects are not followed.

    Pinning closes DNS rebinding: a name that resolved to a public address for the check
    and to an internal one a moment later still reaches only the checked address.
    """
    parts = urlsplit(url)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(parts.hostname or "", address=address, port=parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return int(response.status)
    finally:
        connection.close()


def _enqueue(event_id: int, *, attempt: int) -> None:
    try:
        async_task("monitoring.tasks.webhook_deliver_task", event_id, attempt, task_name=f"webhook-{event_id}-{attempt}")
    except BROKER_ERRORS as error:
        # The queue is down; this runs at the commit of whatever recorded the event (a
        # trigger evaluation, a lost job ended), which must not fail for it. A one-off
        # schedule lives in the database: the worker's scheduler delivers it once back.
        logger.warning("webhook_enqueue_failed event=%s error=%s: %s", event_id, type(error).__name__, error)
        _schedule_attempt(event_id, attempt, delay_seconds=settings.LEADML_WEBHOOK_BACKOFF_SECONDS)


def _schedule_attempt(event_id: int, attempt: int, *, delay_seconds: float) -> None:
    Schedule.objects.create(
        name=f"webhook-{event_id}-{attempt}",
        func="monitoring.tasks.webhook_deliver_task",
        args=f"{event_id},{attempt}",
        schedule_type=Schedule.ONCE,
        next_run=timezone.now() + timedelta(seconds=delay_seconds),
    )


def webhook_deliver(*, event_id: int, attempt: int) -> bool:
    """POST the event to its tenant's webhook; schedule the next attempt on failure."""
    event = MonitoringEvent.objects.filter(pk=event_id).first()
    if event is None or event.webhook_status != Delivery.PENDING:
        return False  # delivered already (a re-delivered task) or nothing to deliver
    webhook = TenantWebhook.objects.filter(tenant=event.tenant, enabled=True).first()
    if webhook is None:
        MonitoringEvent.objects.filter(pk=event_id).update(webhook_status=Delivery.FAILED, webhook_error="webhook removed")
        return False
    refusal, address = _webhook_address(webhook.url, resolve=True)
    if refusal is None and address is None:
        refusal = "the host does not resolve"
    if refusal is not None:
        MonitoringEvent.objects.filter(pk=event_id).update(
            webhook_status=Delivery.FAILED, webhook_attempts=F("webhook_attempts") + 1, webhook_error=f"refused: {refusal}"
        )
        logger.warning("webhook_refused event=%s reason=%s", event_id, refusal)
        return False
    body = json.dumps(event_payload(event), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "leadml-webhook",
        "X-Leadml-Event": event.kind,
        "X-Leadml-Delivery": str(event.pk),
        SIGNATURE_HEADER: signature(webhook.secret, body),
    }
    assert address is not None
    try:
        status = _post_pinned(webhook.url, address, body, headers, settings.LEADML_WEBHOOK_TIMEOUT_SECONDS)
    except (OSError, http.client.HTTPException, ValueError) as error:
        return _failed(event_id, attempt, f"{error.__class__.__name__}: {error}")
    if 300 <= status < 400:
        return _failed(event_id, attempt, f"HTTP {status} (redirects are not followed)")
    if not 200 <= status < 300:
        return _failed(event_id, attempt, f"HTTP {status}")
    MonitoringEvent.objects.filter(pk=event_id).update(
        webhook_status=Delivery.DELIVERED, webhook_attempts=attempt, webhook_error=""
    )
    logger.info("webhook_delivered event=%s attempt=%s", event_id, attempt)
    return True


def _failed(event_id: int, attempt: int, error: str) -> bool:
    final = attempt >= settings.LEADML_WEBHOOK_ATTEMPTS
    MonitoringEvent.objects.filter(pk=event_id).update(
        webhook_status=Delivery.FAILED if final else Delivery.PENDING,
        webhook_attempts=F("webhook_attempts") + 1,
        webhook_error=error,
    )
    logger.warning("webhook_failed event=%s attempt=%s final=%s error=%s", event_id, attempt, final, error)
    if not final:
        _schedule_attempt(event_id, attempt + 1, delay_seconds=settings.LEADML_WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1))
    return False
