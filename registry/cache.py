"""Per-process caches: each model version loaded once (checksum verified), and what requests resolve to.

Keyed by version id: activating another version changes which id the next request
asks for, so every process serves it from its next request without a restart. Before
serving a cached bundle, the artifact file's signature (inode, size, mtime) is compared
with the one it was loaded from: a file changed or removed on disk is read and checked
again, so a corrupted artifact is caught on the next request, not at the next restart.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.db import connection
from django.utils import timezone

from leadml.ml.artifacts import load_bytes
from leadml.ml.errors import ArtifactIntegrityError
from leadml.ml.bundle import ModelBundle
from registry.artifacts import artifact_read, artifact_signature
from registry.models import ApiToken, ModelVersion, RegistryState

logger = logging.getLogger(__name__)
MAX_CACHED_MODELS = 32
# Chosen versions kept per process, by (tenant, model type, name, version).
MAX_CACHED_VERSIONS = 10_000
# Older versions of a model tried, newest first, when its chosen version cannot be loaded.
MAX_FALLBACK_VERSIONS = 3
_cache: OrderedDict[int, tuple[ModelBundle, tuple[int, int, int] | None]] = OrderedDict()
_lock = threading.Lock()


class ArtifactUnusable(OSError):
    """This host cannot load a version's artifact (missing, unreadable or failing its checksum)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ArtifactFault:
    """A version whose artifact this process could not load: a fault of this host, not of the version."""

    version_id: int
    tenant: str
    name: str
    version: int
    reason: str
    signature: tuple[int, int, int] | None  # the file as it was when it failed
    since: datetime
    checked_at: float  # time.monotonic() of the last attempt


# A faulty artifact is read again when its file changes, or after this long (a file
# restored on shared storage may keep a signature this host cannot see change).
FAULT_RETRY_SECONDS = 30.0
_faults: dict[int, ArtifactFault] = {}


def bundle_load(model_version: ModelVersion) -> ModelBundle:
    """Return the version's bundle; raises ArtifactUnusable when this host cannot load it.

    A failure is remembered per process (`artifact_faults`, reported by /health) and the
    file is not read again until it changes or FAULT_RETRY_SECONDS pass; once it loads,
    the fault is forgotten: restoring the right bytes brings the version back by itself.
    """
    signature = artifact_signature(model_version.artifact_path)
    with _lock:
        cached = _cache.get(model_version.pk)
        if cached is not None and cached[1] == signature:
            _cache.move_to_end(model_version.pk)
            return cached[0]
        _cache.pop(model_version.pk, None)
        fault = _faults.get(model_version.pk)
    if fault is not None and fault.signature == signature and time.monotonic() - fault.checked_at < FAULT_RETRY_SECONDS:
        raise ArtifactUnusable(fault.reason)
    try:
        data = artifact_read(model_version.artifact_path)
        bundle = load_bytes(data, expected_sha256=model_version.artifact_sha256)
    except ArtifactIntegrityError as error:
        raise _fault_record(model_version, f"artifact failed its checksum: {error}", signature, fault) from error
    except OSError as error:
        raise _fault_record(model_version, f"artifact could not be read: {error.__class__.__name__}", signature, fault) from error
    with _lock:
        _cache[model_version.pk] = (bundle, signature)
        while len(_cache) > MAX_CACHED_MODELS:
            _cache.popitem(last=False)
        recovered = _faults.pop(model_version.pk, None)
    if recovered is not None:
        logger.warning(
            "artifact_recovered version_id=%s tenant=%s name=%s version=%s after=%s",
            model_version.pk, model_version.tenant, model_version.name, model_version.version, recovered.reason,
        )
    return bundle


def _fault_record(
    model_version: ModelVersion, reason: str, signature: tuple[int, int, int] | None, previous: ArtifactFault | None
) -> ArtifactUnusable:
    fault = ArtifactFault(
        version_id=model_version.pk,
        tenant=model_version.tenant,
        name=model_version.name,
        version=model_version.version,
        reason=reason,
        signature=signature,
        since=previous.since if previous is not None else timezone.now(),
        checked_at=time.monotonic(),
    )
    with _lock:
        _faults[model_version.pk] = fault
    if previous is None or previous.reason != reason:
        logger.error(
            "artifact_unusable host=%s pid=%s version_id=%s tenant=%s name=%s version=%s reason=%s",
            socket.gethostname(), os.getpid(), model_version.pk, model_version.tenant, model_version.name,
            model_version.version, reason,
        )
    return ArtifactUnusable(reason)


def artifact_faults() -> list[ArtifactFault]:
    """The versions this process could not load, oldest fault first."""
    with _lock:
        return sorted(_faults.values(), key=lambda fault: fault.since)


def bundle_forget(model_version_id: int) -> None:
    with _lock:
        _cache.pop(model_version_id, None)


def cache_clear() -> None:
    with _lock:
        _cache.clear()
        _faults.clear()
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
    fallbacks: dict[tuple[str, int], list[ModelVersion]] = field(default_factory=dict)


_serving = _Serving()
_GENERATION_SQL = f'SELECT generation FROM "{RegistryState._meta.db_table}" WHERE id = 1'


def registry_generation() -> int:
    # Raw SQL: the ORM compiling this query cost more CPU than the round trip (every request reads it).
    with connection.cursor() as cursor:
        cursor.execute(_GENERATION_SQL)
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def serving_cache_sync() -> None:
    """Read the registry's generation (one small query) and forget everything kept if it moved."""
    generation = registry_generation()
    with _lock:
        if generation != _serving.generation:
            _serving.tokens.clear()
            _serving.versions.clear()
            _serving.fallbacks.clear()
            _serving.generation = generation


def serving_cache_forget() -> None:
    """Forget the tokens and versions kept; the next request reads the generation again."""
    with _lock:
        _serving.tokens.clear()
        _serving.versions.clear()
        _serving.fallbacks.clear()
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
    # leadml.api.errors, which the selectors need, is still being imported.
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


def model_version_fallbacks_for_request(model_version: ModelVersion) -> list[ModelVersion]:
    """The versions to serve instead when this one cannot be loaded here: the same model's
    older usable versions, newest first (kept in memory like the chosen versions)."""
    key = ("fallbacks", model_version.pk)
    with _lock:
        if key in _serving.fallbacks:
            return _serving.fallbacks[key]
    older = list(
        ModelVersion.objects.defer(*SERVING_DEFERRED_FIELDS)
        .filter(
            tenant=model_version.tenant,
            name=model_version.name,
            model_type=model_version.model_type,
            version__lt=model_version.version,
        )
        .exclude(status__in=[ModelVersion.Status.BROKEN, ModelVersion.Status.ARCHIVED])
        .order_by("-version")[:MAX_FALLBACK_VERSIONS]
    )
    with _lock:
        _serving.fallbacks[key] = older
    return older
