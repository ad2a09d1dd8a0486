"""Per-token request throttling (SPEC §2)."""
from __future__ import annotations

from collections.abc import Callable

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
