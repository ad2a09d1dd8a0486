"""Checks every stored record passes, whatever its path in (upload or prediction)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leadml.errors import ApplicationError

NUL = "\x00"


def records_check(records: Sequence[Any], *, field: str, indexed: bool = True) -> None:
    """Refuse non-object records, nested values and NUL characters (PostgreSQL jsonb cannot store them).

    Errors name `field[i].key` for lists of records and the bare `key` for a single record,
    as the model's schema check does.
    """
    for index, record in enumerate(records):
        where = f"{field}[{index}]" if indexed else field
        if not isinstance(record, dict):
            raise ApplicationError(f"{where} must be a JSON object", details={where: ["not an object"]})
        for key, value in record.items():
            name = f"{where}.{key}" if indexed else str(key)
            if isinstance(value, (dict, list)):
                raise ApplicationError(
                    f"field '{name}' must be a single value, not a {type(value).__name__}",
                    details={name: ["nested value"]},
                )
            if NUL in str(key) or (isinstance(value, str) and NUL in value):
                raise ApplicationError(f"field '{name}' contains a NUL character", details={name: ["NUL character"]})
            if number_too_large(value):
                raise ApplicationError(
                    f"field '{name}' is a number too large to compute with", details={name: ["number out of range"]}
                )


def number_too_large(value: Any) -> bool:
    """An integer beyond what a float can hold (JSON allows any length of digits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return True
    return False
