"""API-token authentication, tenant authorisation and per-token throttling (SPEC §2)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from registry.cache import CachedToken, cached_token, cached_token_used, serving_cache_sync
from registry.models import ApiToken

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


class ApiTokenRateThrottle(SimpleRateThrottle):
    scope = "api_token"

    def get_cache_key(self, request: Request, view: object) -> str | None:
        user = getattr(request, "user", None)
        if not isinstance(user, TokenPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.token_id}
