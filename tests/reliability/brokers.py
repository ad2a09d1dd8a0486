"""A django-q2 broker that cannot be reached, for tests that need the job queue down."""
from __future__ import annotations

import socket

import pytest
from django_q.conf import Conf


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_down(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point django-q2 at a Redis on a closed port, with tasks no longer run inline; return its URL.

    django-q2 reads Q_CLUSTER once, into `Conf`, so the test settings' ORM broker and
    `sync` are switched off there.
    """
    url = f"redis://127.0.0.1:{closed_port()}/0?socket_connect_timeout=2"
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", url)
    return url
