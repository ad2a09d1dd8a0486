"""Per-token request throttling."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from leadml.api.throttling import ApiTokenRateThrottle
from tests.conftest import TENANT


def test_token_over_its_rate_gets_429_while_another_token_is_served(
    client_for: Callable[[str | None], APIClient],
    tenant_key: str,
    service_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache.clear()
    monkeypatch.setattr(ApiTokenRateThrottle, "rate", "2/min", raising=False)
    busy = client_for(tenant_key)
    assert busy.get(f"/models/{TENANT}").status_code == 200
    assert busy.get(f"/models/{TENANT}").status_code == 200
    refused = busy.get(f"/models/{TENANT}")
    assert refused.status_code == 429
    assert refused.json()["success"] is False and "throttled" in refused.json()["error"].lower()
    # The limit is per token, not global.
    assert client_for(service_key).get(f"/models/{TENANT}").status_code == 200


DATABASE_CACHE = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "leadml_cache"}}


@pytest.mark.django_db
def test_the_rate_holds_across_processes_through_the_shared_cache(
    client_for: Callable[[str | None], APIClient], tenant_key: str, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """Two processes (each with its own local counts) share one limit through the database cache."""
    settings.CACHES = DATABASE_CACHE
    monkeypatch.setattr(ApiTokenRateThrottle, "rate", "4/min", raising=False)
    client = client_for(tenant_key)
    served = []
    for _ in range(6):
        # A new process each time: nothing counted locally, only the shared counter remains.
        monkeypatch.setattr(ApiTokenRateThrottle, "_windows", {})
        served.append(client.get(f"/models/{TENANT}").status_code)
    assert served == [200, 200, 200, 200, 429, 429]
    refused = client.get(f"/models/{TENANT}")
    assert 0 < int(refused["Retry-After"]) <= 60


REDIS_ON_A_CLOSED_PORT = {
    # Port 9 (discard) has no Redis: every cache call raises a connection error.
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
}


@pytest.mark.django_db
def test_an_unreachable_shared_cache_fails_open_to_the_local_count(
    client_for: Callable[[str | None], APIClient], tenant_key: str, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """Redis down must not make every request a 500: this process keeps counting on its own."""
    settings.CACHES = REDIS_ON_A_CLOSED_PORT
    monkeypatch.setattr(ApiTokenRateThrottle, "rate", "3/min", raising=False)
    monkeypatch.setattr(ApiTokenRateThrottle, "_windows", {})
    monkeypatch.setattr(ApiTokenRateThrottle, "SYNC_SECONDS", 0.0)  # try the cache on every request
    client = client_for(tenant_key)
    served = [client.get(f"/models/{TENANT}").status_code for _ in range(5)]
    assert served == [200, 200, 200, 429, 429]
