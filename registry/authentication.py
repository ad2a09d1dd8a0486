"""API-token authentication, tenant authorisation and per-token throttling (SPEC §2)."""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from registry.cache import CachedToken, cached_token, cached_token_used, serving_cache_sync
from registry.models import ApiToken

logger = logging.getLogger(__name__)

# Refresh `last_used_at` at most this often: a write per request would double the
# cost of every prediction.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(key: str) -> str:
    # Keys are 256-bit random strings, so a plain sha256 is as strong as a slow hash here.
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class TokenPrincipal:
    """Who is calling: a tenant-scoped token or a service token."""

    token_id: int
    name: str
    tenant: str | None  # None: a service token, may act for any tenant

    is_authenticated = True
    is_anonymous = False

    @property
    def actor(self) -> str:
        return f"token:{self.name}"

    def may_act_for(self, tenant: str) -> bool:
        return self.tenant is None or self.tenant == tenant


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Accept `Authorization: Bearer <key>` or `Authorization: Token <key>`."""

    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[TokenPrincipal, CachedToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: expected 'Bearer <key>'.")
        # One small query per request: has anything the caches hold changed (registry.cache)?
        serving_cache_sync()
        key_hash = hash_key(header[1])
        token = cached_token(key_hash)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.token_id).update(last_used_at=now)
            cached_token_used(key_hash, now)
        principal = TokenPrincipal(token_id=token.token_id, name=token.name, tenant=token.tenant)
        return principal, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="leadml"'


def tenant_authorize(request: Request, tenant: str) -> None:
    """Refuse (403) a tenant-scoped token naming another tenant's `user_id`."""
    principal: TokenPrincipal = request.user
    if not principal.may_act_for(tenant):
        raise exceptions.PermissionDenied(f"This token may only act for user_id '{principal.tenant}'.")


def tenant_scope(request: Request) -> str | None:
    """Return the only tenant this caller may see, or None for a service token."""
    return request.user.tenant


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
        rate = self.rate or api_settings.DEFAULT_THROTTLE_RATES["api_token"]
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
