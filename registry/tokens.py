"""API tokens as the API meets them: key hashing and the lookup behind every request's authentication."""
from __future__ import annotations

import hashlib
from datetime import timedelta

from django.utils import timezone

from leadml.api.authentication import BearerTokenAuthentication, TokenPrincipal
from registry.cache import CachedToken, cached_token, cached_token_used, serving_cache_sync
from registry.models import ApiToken

# Refresh `last_used_at` at most this often: a write per request would double the
# cost of every prediction.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(key: str) -> str:
    # Keys are 256-bit random strings, so a plain sha256 is as strong as a slow hash here.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenAuthentication(BearerTokenAuthentication):
    """Keys are ApiToken rows (stored hashed), read through the per-process serving cache."""

    def principal_for_key(self, key: str) -> tuple[TokenPrincipal, CachedToken] | None:
        # One small query per request: has anything the caches hold changed (registry.cache)?
        serving_cache_sync()
        key_hash = hash_key(key)
        token = cached_token(key_hash)
        if token is None:
            return None
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.token_id).update(last_used_at=now)
            cached_token_used(key_hash, now)
        return TokenPrincipal(token_id=token.token_id, name=token.name, tenant=token.tenant), token
