"""The per-token request throttle, counted across processes and hosts in the shared cache."""
from __future__ import annotations

import logging
import threading
import time

from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from leadml.api.authentication import TokenPrincipal

logger = logging.getLogger(__name__)


class ApiTokenRateThrottle(BaseThrottle):
    """Requests per token per window (LEADML_THROTTLE_RATE), counted across processes and hosts.

    Fixed windows (a minute for "6000/min"), counted in the shared cache (Redis with
    REDIS_URL, else the database's cache table): a per-process count would have let
    every gunicorn worker grant the whole rate. Each process counts locally and adds its
    count to the shared counter at most every SYNC_SECONDS, and always before refusing,
    so a request costs a cache round trip only about once a second per token.
    """

    SYNC_SECONDS = 1.0
    rate: str | None = None  # tests may override; else the setting
    _lock = threading.Lock()
    _windows: dict[tuple[int, int], list[float]] = {}  # (token, window) -> [shared, pending, synced_at]

    def allow_request(self, request: Request, view: object) -> bool:
        user = getattr(request, "user", None)
        if not isinstance(user, TokenPrincipal):
            return True
        limit, period = self._parsed()
        now = time.time()
        window = int(now // period)
        self.wait_seconds = (window + 1) * period - now
        key = (user.token_id, window)
        with self._lock:
            state = self._windows.get(key)
            if state is None:
                self._forget_old(window)
                state = self._windows[key] = [0.0, 0.0, 0.0]
            state[1] += 1
            stale = now - state[2] >= self.SYNC_SECONDS
            pending = state[1] if stale or state[0] + state[1] > limit else 0.0
            if pending:
                state[1] -= pending
                state[2] = now
        if pending:
            shared = self._shared_add(user.token_id, window, int(pending), period)
            with self._lock:
                # Without the shared cache this process goes on counting alone.
                state[0] = state[0] + pending if shared is None else max(state[0], shared)
        with self._lock:
            return state[0] + state[1] <= limit

    def wait(self) -> float | None:
        return getattr(self, "wait_seconds", None)

    def _parsed(self) -> tuple[int, int]:
        rate = self.rate or str(api_settings.DEFAULT_THROTTLE_RATES["api_token"])
        count, _, unit = rate.partition("/")
        return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit[0]]

    def _forget_old(self, window: int) -> None:
        for old in [key for key in self._windows if key[1] < window]:
            del self._windows[old]

    @staticmethod
    def _shared_add(token_id: int, window: int, count: int, period: int) -> int | None:
        """Add to the shared counter and return it; None when the cache is unreachable.

        A cache outage (Redis down, the database's cache table unreachable) must not turn
        every request into a 500: the throttle fails open to this process's own count.
        """
        key = f"throttle:api_token:{token_id}:{window}"
        try:
            try:
                return int(cache.incr(key, count))
            except ValueError:  # no counter yet for this window
                if cache.add(key, count, timeout=period * 2):
                    return count
                return int(cache.incr(key, count))
        except Exception as error:  # noqa: BLE001 - any backend's connection error
            logger.warning("throttle_cache_unavailable error=%s", error.__class__.__name__)
            return None
