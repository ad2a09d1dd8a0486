"""Model artifact files, through Django's storage API (the `models` storage)."""
from __future__ import annotations

import logging
import os
import re

from django.core.files.base import ContentFile
from django.core.files.storage import storages

logger = logging.getLogger(__name__)
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _storage():  # type: ignore[no-untyped-def]
    return storages["models"]


def _safe(part: str) -> str:
    return UNSAFE.sub("_", part).strip("._") or "x"


def artifact_path_for(*, tenant: str, model_type: str, name: str, sha256: str) -> str:
    """Return the free storage path an artifact with this content would be written to."""
    return _storage().get_available_name(f"{_safe(tenant)}/{model_type}/{_safe(name)}-{sha256[:16]}.joblib")


def artifact_save(*, tenant: str, model_type: str, name: str, sha256: str, data: bytes, path: str | None = None) -> str:
    """Write an artifact (at `path` when it is still free) and return its storage path.

    Never overwrites an existing file. The file is written in place: a process killed
    while writing leaves a partial file at that path, which is why callers can learn
    the path first (`artifact_path_for`).
    """
    wanted = path or artifact_path_for(tenant=tenant, model_type=model_type, name=name, sha256=sha256)
    return _storage().save(wanted, ContentFile(data))


def artifact_read(path: str) -> bytes:
    with _storage().open(path, "rb") as handle:
        return handle.read()


def artifact_signature(path: str) -> tuple[int, int, int] | None:
    """Return (inode, size, mtime in ns) of a local artifact file, None where storage is remote.

    A cheap stat: what a process compares before serving a model it loaded earlier, so
    a file replaced or corrupted on disk is read (and checked) again.
    """
    try:
        local = _storage().path(path)
    except NotImplementedError:
        return None
    try:
        stat = os.stat(local)
    except OSError:
        return (-1, -1, -1)  # gone: differs from any loaded file's signature
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def artifact_delete(path: str) -> None:
    try:
        _storage().delete(path)
    except OSError:
        logger.warning("artifact_delete_failed path=%s", path, exc_info=True)

