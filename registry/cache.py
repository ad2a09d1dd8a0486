"""Load each model version once per process, verifying its checksum on every load from disk.

Keyed by version id: activating another version changes which id the next request
asks for, so every process serves it from its next request without a restart. Before
serving a cached bundle, the artifact file's signature (inode, size, mtime) is compared
with the one it was loaded from: a file changed or removed on disk is read and checked
again, so a corrupted artifact is caught on the next request, not at the next restart.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from leadml.ml.artifacts import load_bytes
from leadml.ml.bundle import ModelBundle
from registry.artifacts import artifact_read, artifact_signature
from registry.models import ModelVersion

MAX_CACHED_MODELS = 32
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
