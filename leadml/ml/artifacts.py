"""Serialise model bundles to bytes with a sha256, and load them only if it matches.

Storage (disk, S3, ...) is the Django layer's business; this module only sees bytes.
"""
from __future__ import annotations

import hashlib
import io
from typing import Any

import joblib

from leadml.ml.errors import ArtifactIntegrityError


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump_bytes(obj: Any) -> tuple[bytes, str]:
    """Return the joblib serialisation of `obj` and its sha256."""
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, compress=3)
    data = buffer.getvalue()
    return data, sha256_hex(data)


def load_bytes(data: bytes, *, expected_sha256: str) -> Any:
    """Deserialise an artifact, refusing it when its checksum differs from the recorded one.

    The checksum is checked before unpickling: bytes we did not write never execute.
    """
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise ArtifactIntegrityError(
            f"artifact checksum mismatch: expected {expected_sha256[:12]}..., got {actual[:12]}..."
        )
    return joblib.load(io.BytesIO(data))
