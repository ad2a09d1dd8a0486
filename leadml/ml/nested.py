"""CRM rows as they come: JSON objects inside a record, and lists of values.

A CRM's `leads` row carries `custom_fields` (a JSON object, often `{}`) and `tags` (a
text array, often `[]`). Both are read the same way at upload and at prediction:

- an object is flattened one level: `{"custom_fields": {"industry": "saas"}}` becomes the
  column `custom_fields.industry`, so a tenant can train on its custom fields. An empty
  object leaves its own name with no value (so it is reported, then ignored). A key
  already in the record wins over a flattened one of the same name. Deeper objects stay
  as they are; the feature inference drops such columns and says so. Records are
  flattened once, where they enter: the dataset services and the scoring service.
- a list is a set of tags: the columns the model learns are indicators of its most
  frequent values, `tags=<value>` (leadml.ml.features, column kind "tags").
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

SEPARATOR = "."
# Values that are never JSON objects: a record holding only these has nothing to flatten
# (a set of types is checked in C, `isinstance(value, Mapping)` per value is not).
_NEVER_OBJECTS = frozenset({type(None), bool, int, float, str, list})


def flatten_record(record: Mapping[str, Any], keep: Collection[str] = ()) -> dict[str, Any]:
    """Return the record with its JSON-object fields flattened one level.

    Fields named in `keep` (a model's own columns) stay as they are, so an object sent
    for a column the model reads is refused by name rather than silently taken apart.
    """
    if set(map(type, record.values())) <= _NEVER_OBJECTS or not any(
        isinstance(value, Mapping) for value in record.values()
    ):
        return dict(record)
    flat: dict[str, Any] = {}
    nested: list[tuple[str, Any]] = []
    for key, value in record.items():
        # A dotted key holding an object is a second level already flattened once: kept,
        # so flattening twice changes nothing.
        if isinstance(value, Mapping) and key not in keep and SEPARATOR not in str(key):
            if not value:
                flat[key] = None
            for inner_key, inner_value in value.items():
                nested.append((f"{key}{SEPARATOR}{inner_key}", inner_value))
        else:
            flat[key] = value
    for key, value in nested:
        flat.setdefault(key, value)
    return flat


def flatten_records(records: Sequence[Any], keep: Collection[str] = ()) -> list[Any]:
    """Flatten every object record; anything else is passed on for validation to refuse."""
    shared = record_columns(records)
    if shared is not None and all(_NEVER_OBJECTS.issuperset(map(type, column)) for column in shared[1]):
        return list(map(dict, records))  # no record holds an object: copies, as flatten_record gives
    return [flatten_record(record, keep) if isinstance(record, Mapping) else record for record in records]


def record_columns(records: Sequence[Any]) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]] | None:
    """The records' values field by field, when they are dicts with the same fields in the same order.

    A CRM's export (or its JSON) writes every row with the same fields: one transposition
    in C gives every column, where `record.get(name)` per record and field would be a
    Python call per value. None for anything else (records with fields of their own).
    """
    if not records or not all(type(record) is dict for record in records):
        return None
    names = tuple(records[0])
    if len(set(map(tuple, records))) != 1:
        return None
    if not names:
        return names, []
    return names, list(zip(*map(dict.values, records)))


def is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def tag_text(value: Any) -> str | None:
    """One tag as text, or None for a missing or nested element."""
    if value is None or isinstance(value, (Mapping, list, tuple)):
        return None
    if isinstance(value, float):
        if np.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip()
    return text or None


def tag_set(value: Any) -> frozenset[str] | None:
    """A field's tags: a list's elements, a single value as one tag, None when missing."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    elements: Iterable[Any] = value if is_list(value) else (value,)
    return frozenset(text for text in map(tag_text, elements) if text is not None)


def tag_column(name: str, tag: str) -> str:
    return f"{name}={tag}"
