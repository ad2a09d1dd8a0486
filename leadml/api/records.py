"""Checks every stored record passes, whatever its path in (upload or prediction)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

from django.conf import settings

from leadml.api.errors import ApplicationError
from leadml.ml.nested import record_columns

NUL = "\x00"
# A record is a flat CRM row; a field may hold an object or a list (flattened or read as
# tags, leadml.ml.nested), and those a few levels more. Anything deeper is not a CRM row.
MAX_VALUE_DEPTH = 4
# A batch is screened field by field when its records share at most this many field
# names; records each with their own names are walked one by one.
MAX_SCREENED_FIELDS = 256
_PLAIN_SCALARS = frozenset({type(None), bool, float})


def records_check(records: Sequence[Any], *, field: str, indexed: bool = True) -> None:
    """Refuse non-object records, values nested too deep, NUL characters and unusable numbers.

    NUL characters cannot be stored by PostgreSQL's jsonb. Errors name `field[i].key`
    for lists of records and the bare `key` for a single record, as the model's schema
    check does. Lists and objects inside a record are allowed (a CRM's `tags` and
    `custom_fields`); what the model can use of them is decided by its schema.

    A batch that passes the screen (one look per field, not per value) is accepted as is;
    any other is walked record by record, so the error is the one the walk finds first.
    """
    if len(records) > 1 and _records_pass_screen(records):
        return
    for index, record in enumerate(records):
        where = f"{field}[{index}]" if indexed else field
        if not isinstance(record, dict):
            raise ApplicationError(f"{where} must be a JSON object", details={where: ["not an object"]})
        for key, value in record.items():
            name = f"{where}.{key}" if indexed else str(key)
            if NUL in str(key):
                raise ApplicationError(f"field '{name}' contains a NUL character", details={name: ["NUL character"]})
            _value_check(value, name, depth=1)


def _records_pass_screen(records: Sequence[Any]) -> bool:
    """Whether no record can fail `records_check`, judged a field at a time.

    False means "walk them": a non-object record, a NUL or an over-long text anywhere, an
    integer too large, an object or list that fails its own walk, a value of any other type.
    """
    if not all(type(record) is dict for record in records):
        return False
    shared = record_columns(records)
    names: tuple[Any, ...]
    columns: Sequence[Sequence[Any]]
    if shared is not None:
        names, columns = shared
    else:
        names = tuple(dict.fromkeys(chain.from_iterable(records)))
        if len(names) > MAX_SCREENED_FIELDS:
            return False
        columns = [[record.get(name) for record in records] for name in names]
    if NUL in "".join(map(str, names)):
        return False
    return all(map(_field_passes_screen, columns))


def _field_passes_screen(values: Sequence[Any]) -> bool:
    types = set(map(type, values))
    if types <= _PLAIN_SCALARS:
        return True
    for kind in types - _PLAIN_SCALARS:
        same: list[Any] = [value for value in values if type(value) is kind]
        if kind is str:
            if NUL in "".join(same) or max(map(len, same)) > settings.LEADML_MAX_VALUE_CHARS:
                return False
        elif kind is int:
            if number_too_large(max(same)) or number_too_large(min(same)):
                return False
        elif kind is dict or kind is list:
            try:
                for value in same:
                    _value_check(value, "", depth=1)
            except ApplicationError:
                return False
        else:
            return False
    return True


def _value_check(value: Any, name: str, *, depth: int) -> None:
    if isinstance(value, str):
        if NUL in value:
            raise ApplicationError(f"field '{name}' contains a NUL character", details={name: ["NUL character"]})
        if len(value) > settings.LEADML_MAX_VALUE_CHARS:
            raise ApplicationError(
                f"field '{name}' is {len(value)} characters long; at most {settings.LEADML_MAX_VALUE_CHARS} are allowed",
                details={name: ["value too long"]},
            )
        return
    if number_too_large(value):
        raise ApplicationError(
            f"field '{name}' is a number too large to compute with", details={name: ["number out of range"]}
        )
    if isinstance(value, (Mapping, list)):
        if depth > MAX_VALUE_DEPTH:
            raise ApplicationError(
                f"field '{name}' is nested more than {MAX_VALUE_DEPTH} levels deep",
                details={name: ["nested too deep"]},
            )
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, inner in items:
            inner_name = f"{name}.{key}" if isinstance(value, Mapping) else f"{name}[{key}]"
            if isinstance(value, Mapping) and NUL in str(key):
                raise ApplicationError(
                    f"field '{inner_name}' contains a NUL character", details={inner_name: ["NUL character"]}
                )
            _value_check(inner, inner_name, depth=depth + 1)


def number_too_large(value: Any) -> bool:
    """An integer beyond what a float can hold (JSON allows any length of digits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return True
    return False
