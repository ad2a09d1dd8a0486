"""Per-process caches: each model version loaded once (checksum verified), and what requests resolve to.

Keyed by version id: activating another version changes which id the next request
asks for, so every process serves it from its next request without a restart. Before
serving a cached bundle, the artifact file's signature (inode, size, mtime) is compared
with the one it was loaded from: a file changed or removed on disk is read and checked
again, so a corrupted artifact is caught on the next request, not at the next restart.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime

from leadml.ml.artifacts import load_bytes
from leadml.ml.bundle import ModelBundle
from registry.artifacts import artifact_read, artifact_signature
from registry.models import ApiToken, ModelVersion, RegistryState

MAX_CACHED_MODELS = 32
# Chosen versions kept per process, by (tenant, model type, name, version).
MAX_CACHED_VERSIONS = 10_000
_cache: OrderedDict[int, tuple[ModelBundle, tuple[int, int, int] | None]] = OrderedDict()
_lock = threading.Lock()


def bundle_load(model_version: ModelVersion) -> ModelBundle:
    """Return the version's bundle; raises ArtifactIntegrityError or OSError when unusable."""
    signature = artifact_signature(model_version.artifact_path)
    with _lock:
        cached = _cache.get(model_version.pk)
        if cached is not None and cached[1] == signature:
            _cache.move_to_end(model_version.pk)
            return cached[0]
        _cache.pop(model_version.pk, None)
    data = artifact_read(model_version.artifact_path)
    bundle = load_bytes(data, expected_sha256=model_version.artifact_sha256)
    with _lock:
        _cache[model_version.pk] = (bundle, signature)
        while len(_cache) > MAX_CACHED_MODELS:
            _cache.popitem(last=False)
    return bundle


def bundle_forget(model_version_id: int) -> None:
    with _lock:
        _cache.pop(model_version_id, None)


def cache_clear() -> None:
    with _lock:
        _cache.clear()
    serving_cache_forget()


# --- What a request is served: tokens and chosen versions, per process ---------------
#
# Resolving a request used to cost three queries before any scoring: the token, the
# active (or named) version's row with its large JSON, and the version again for the
# model. Each process now keeps both in memory and reads one counter per request,
# `RegistryState.generation`, which every change that could alter them moves in its own
# transaction (registry.services.registry_changed). A process that sees the counter
# move forgets what it kept, so an activation made through any process is served by
# every process from its next request.

# Version fields the scoring path never reads: left in the database (read on access).
SERVING_DEFERRED_FIELDS = (
    "training_report",
    "feature_schema",
    "metrics",
    "cross_validation",
    "feature_importance",
    "training_config",
    "params",
)


@dataclass(frozen=True)
class CachedToken:
    token_id: int
    name: str
    tenant: str | None  # None: a service token
    last_used_at: datetime | None


@dataclass
class _Serving:
    generation: int | None = None
    tokens: dict[str, CachedToken] = field(default_factory=dict)
    versions: dict[tuple[str, str, str | None, int | None], ModelVersion | None] = field(default_factory=dict)


_serving = _Serving()


def registry_generation() -> int:
    return RegistryState.objects.filter(pk=1).values_list("generation", flat=True).first() or 0


def serving_cache_sync() -> None:
    """Read the registry's generation (one small query) and forget everything kept if it moved."""
    generation = registry_generation()
    with _lock:
        if generation != _serving.generation:
            _serving.tokens.clear()
            _serving.versions.clear()
            _serving.generation = generation


def serving_cache_forget() -> None:
    """Forget the tokens and versions kept; the next request reads the generation again."""
    with _lock:
        _serving.tokens.clear()
        _serving.versions.clear()
        _serving.generation = None


def cached_token(key_hash: str) -> CachedToken | None:
    """Return the live token with this key hash, from memory or the database."""
    with _lock:
        cached = _serving.tokens.get(key_hash)
    if cached is not None:
        return cached
    token = ApiToken.objects.filter(key_hash=key_hash, revoked_at__isnull=True).first()
    if token is None:
        return None  # unknown keys are not kept: a flood of them must not fill memory
    cached = CachedToken(
        token_id=token.pk,
        name=token.name,
        tenant=None if token.is_service else token.tenant,
        last_used_at=token.last_used_at,
    )
    with _lock:
        _serving.tokens[key_hash] = cached
    return cached


def cached_token_used(key_hash: str, at: datetime) -> None:
    with _lock:
        cached = _serving.tokens.get(key_hash)
        if cached is not None:
            _serving.tokens[key_hash] = replace(cached, last_used_at=at)


def model_version_for_request(
    *, tenant: str, model_type: str, model_name: str | None = None, version: int | None = None
) -> ModelVersion | None:
    """The version a scoring request gets (registry.selectors.model_version_select), kept in memory."""
    # Imported here: DRF loads the authentication (which imports this module) while
    # leadml.errors, which the selectors need, is still being imported.
    from registry.selectors import model_version_select

    key = (tenant, model_type, model_name or None, version)
    with _lock:
        if key in _serving.versions:
            return _serving.versions[key]
    chosen = model_version_select(
        tenant=tenant,
        model_type=model_type,
        model_name=model_name,
        version=version,
        deferred=SERVING_DEFERRED_FIELDS,
    )
    with _lock:
        _serving.versions[key] = chosen
        while len(_serving.versions) > MAX_CACHED_VERSIONS:
            _serving.versions.pop(next(iter(_serving.versions)))
    return chosen
