"""Who is calling and for which tenant: `Authorization: Bearer <key>`, TokenPrincipal, tenant checks.

The keys themselves live in the registry (registry/tokens.py: ApiTokenAuthentication
looks them up); this module knows the header, the principal and the tenant rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from rest_framework import authentication, exceptions
from rest_framework.request import Request


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


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Accept `Authorization: Bearer <key>` or `Authorization: Token <key>`; subclasses look the key up."""

    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[TokenPrincipal, Any] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: expected 'Bearer <key>'.")
        found = self.principal_for_key(header[1])
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        return found

    def principal_for_key(self, key: str) -> tuple[TokenPrincipal, Any] | None:
        """(the principal, the token as `request.auth`) for a live key, else None."""
        raise NotImplementedError

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="leadml"'


def tenant_authorize(request: Request, tenant: str) -> None:
    """Refuse (403) a tenant-scoped token naming another tenant's `user_id`."""
    principal = _principal(request)
    if not principal.may_act_for(tenant):
        raise exceptions.PermissionDenied(f"This token may only act for user_id '{principal.tenant}'.")


def tenant_scope(request: Request) -> str | None:
    """Return the only tenant this caller may see, or None for a service token."""
    return _principal(request).tenant


def _principal(request: Request) -> TokenPrincipal:
    """The caller; every API view authenticates with a token first (DRF's permission classes)."""
    return cast(TokenPrincipal, request.user)
