"""Prediction ids that reveal nothing across tenants.

Predictions are numbered by one table-wide sequence; handing those numbers out would let
any tenant read the platform's volume off its own ids (and guess its neighbours'). The
API shows instead a keyed permutation of each number: an 8-round Feistel network over
52 bits (every id stays a safe JavaScript integer, below 2^53), keyed from
LEADML_PUBLIC_ID_KEY, by default derived from SECRET_KEY. It is a bijection, so a public
id maps back to exactly one prediction with no extra column or index, and it costs a
few vectorised numpy operations per batch (plain integers for a few ids). Consecutive predictions get unrelated ids.

Every host must share the key (they share SECRET_KEY); changing it changes every
public id, so set LEADML_PUBLIC_ID_KEY explicitly before rotating SECRET_KEY.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from django.conf import settings

BITS = 52
HALF_BITS = BITS // 2
HALF_MASK = np.uint64((1 << HALF_BITS) - 1)
ROUNDS = 8
MAX_ID = (1 << BITS) - 1
# splitmix64's multipliers: a cheap, well-mixing round function.
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_WORD = (1 << 64) - 1
# Up to this many ids, plain Python integers (the same arithmetic, modulo 2^64) beat
# numpy's per-call overhead: a `/predict` numbers one prediction.
SCALAR_MAX_IDS = 16


@lru_cache(maxsize=4)
def _round_keys(key: str) -> tuple[np.uint64, ...]:
    digest = hashlib.blake2b(key.encode(), person=b"leadml-pred-ids", digest_size=8 * ROUNDS).digest()
    return tuple(np.uint64(int.from_bytes(digest[8 * i : 8 * i + 8], "little")) for i in range(ROUNDS))


def _keys() -> tuple[np.uint64, ...]:
    return _round_keys(settings.LEADML_PUBLIC_ID_KEY or f"from-secret-key:{settings.SECRET_KEY}")


def _mix(half: np.ndarray, key: np.uint64) -> np.ndarray:
    value = half ^ key
    value = (value ^ (value >> np.uint64(30))) * _M1
    value = (value ^ (value >> np.uint64(27))) * _M2
    return (value ^ (value >> np.uint64(31))) & HALF_MASK


def _mix_int(half: int, key: int) -> int:
    """`_mix` on one Python integer."""
    value = half ^ key
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _WORD
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _WORD
    return (value ^ (value >> 31)) & ((1 << HALF_BITS) - 1)


def _public_id_int(internal: int, keys: Sequence[int]) -> int:
    if not 0 <= internal <= MAX_ID:
        raise OverflowError(f"prediction number beyond {MAX_ID}: widen the public id space")
    left, right = internal >> HALF_BITS, internal & ((1 << HALF_BITS) - 1)
    for key in keys:
        left, right = right, left ^ _mix_int(right, key)
    return (left << HALF_BITS) | right


def public_ids(internal_ids: Sequence[int]) -> list[int]:
    """Return the public id of each prediction number."""
    if len(internal_ids) <= SCALAR_MAX_IDS:
        keys = [int(key) for key in _keys()]
        return [_public_id_int(int(internal), keys) for internal in internal_ids]
    values = np.asarray(internal_ids, dtype=np.uint64)
    if len(values) and int(values.max()) > MAX_ID:
        raise OverflowError(f"prediction number beyond {MAX_ID}: widen the public id space")
    left, right = values >> np.uint64(HALF_BITS), values & HALF_MASK
    with np.errstate(over="ignore"):
        for key in _keys():
            left, right = right, left ^ _mix(right, key)
    return [int(value) for value in (left << np.uint64(HALF_BITS)) | right]


def internal_id(public_id: int) -> int | None:
    """Return the prediction number behind a public id, or None for a number no id can be."""
    public_id = int(public_id)
    if not 0 <= public_id <= MAX_ID:
        return None
    left, right = public_id >> HALF_BITS, public_id & ((1 << HALF_BITS) - 1)
    for key in reversed(_keys()):
        left, right = right ^ _mix_int(left, int(key)), left
    return (left << HALF_BITS) | right
