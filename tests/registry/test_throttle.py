"""Per-token request throttling (SPEC §2)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from registry.authentication import ApiTokenRateThrottle
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
