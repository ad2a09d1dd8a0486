"""Records checked against a model's feature schema: one by one, or a column at a time.

`ModelBundle.prepare` refuses values of the wrong type (an `InputError` naming the record
and field), reads missing values and placeholders as missing, and warns about unknown
fields, missing fields and numbers outside the training range. A few records are
checked one by one (`prepare_each`). A batch is checked a column at a time
(`prepare_by_column`): the values a CRM sends (numbers, text, null, lists of tags) are
judged with numpy and set operations, and every other value (a number written as text,
an object, a NaN from a Python caller) goes through the one-by-one functions
themselves. Both give the same outcome: the same first error (in record order, then
schema order), the same cleaned values, the same warnings in the same order.

It stays one module past 400 lines: the one-by-one and the column-at-a-time checks
must give the same outcome, and the column checks hand every value they do not judge
themselves to the one-by-one functions; side by side is how the two stay the same.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from leadml.ml.errors import InputError
from leadml.ml.dates import EARLIEST_DATE, LATEST_DATE, describe_date_format, parse_dates
from leadml.ml.nested import record_columns
from leadml.ml.types import ColumnSpec, FeatureSchema

# A record built by the service may carry one warning for its own output under this key
# (a transaction history with no purchase, scored from the no-purchase row).
RECORD_WARNING_FIELD = "_leadml_warning"
# Up to this many records are checked one by one: below it, setting up the column
# checks costs more than the per-value work they save.
EACH_MAX_ROWS = 64

_NONE = type(None)
_NUMBER_TYPES: frozenset[type] = frozenset({_NONE, float, int, bool})
_TEXT_TYPES: frozenset[type] = frozenset({_NONE, str})
_TAG_TYPES: frozenset[type] = frozenset({_NONE, list})


class PreparedRecords:
    """Validated records (schema columns only, in schema order) and each record's warnings.

    Built from rows (one dict per record) or from columns (one list per schema column);
    the other form is made when first asked for.
    """

    def __init__(
        self,
        *,
        warnings: list[list[str]],
        columns: tuple[str, ...],
        rows: list[dict[str, Any]] | None = None,
        values: dict[str, list[Any]] | None = None,
        frame_values: dict[str, Any] | None = None,
        offset: int = 0,
    ) -> None:
        if rows is None and values is None:
            raise ValueError("PreparedRecords needs rows or column values")
        self.warnings = warnings
        self.columns = columns
        # Where these records start in the records first prepared (`slice`), for errors' rows.
        self.offset = offset
        self._rows = rows
        self._values = values
        # Per column, what the frame holds: a float array for numbers (NaN when missing).
        self._frame_values = frame_values or {}

    def __len__(self) -> int:
        return len(self.warnings)

    def slice(self, start: int, stop: int) -> PreparedRecords:
        """Records start..stop-1 (their rows or their column values, whichever is built), warnings included."""
        part = slice(start, stop)
        rows = self._rows[part] if self._rows is not None else None
        values = None if rows is not None or self._values is None else {
            name: column[part] for name, column in self._values.items()
        }
        frame_values = {name: column[part] for name, column in self._frame_values.items()} if values else None
        return PreparedRecords(
            warnings=self.warnings[part], columns=self.columns, rows=rows, values=values, frame_values=frame_values,
            offset=self.offset + start,
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        if self._rows is None:
            assert self._values is not None
            lists = [self._values[name] for name in self.columns]
            self._rows = [dict(zip(self.columns, row)) for row in zip(*lists)]
        return self._rows

    @property
    def frame(self) -> pd.DataFrame:
        if self._values is None:
            return pd.DataFrame.from_records(self.rows, columns=list(self.columns))
        # Column by column, what `from_records` on the rows would build (dtypes included).
        data = {name: self._frame_values.get(name, self._values[name]) for name in self.columns}
        return pd.DataFrame(data, columns=list(self.columns), index=pd.RangeIndex(len(self)))


def placeholder_texts(placeholders: Iterable[str]) -> set[str]:
    return {value.strip().lower() for value in placeholders}


def prepare_each(
    records: Sequence[Any], schema: FeatureSchema, placeholders: set[str], *, lenient: bool
) -> PreparedRecords:
    """Check records one by one: the reference behaviour, and the fast way for a few records."""
    known = _known_names(schema)
    rows: list[dict[str, Any]] = []
    warnings: list[list[str]] = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise InputError(f"record {index} must be a JSON object", field="data", row=index)
        record_warnings: list[str] = []
        note = record.get(RECORD_WARNING_FIELD)
        if isinstance(note, str) and note:
            record_warnings.append(note)
        unknown = sorted(str(key) for key in record if key not in known and key != RECORD_WARNING_FIELD)
        if unknown:
            record_warnings.append(_unknown_warning(unknown))
        cleaned: dict[str, Any] = {}
        missing: list[str] = []
        for column in schema.columns:
            value = record.get(column.name)
            if is_missing(value, placeholders, numeric=column.kind == "numeric"):
                missing.append(column.name)
                cleaned[column.name] = None
                continue
            try:
                cleaned[column.name] = validated_value(column, value, index, record_warnings)
            except InputError as error:
                if not lenient:
                    raise
                record_warnings.append(_unreadable_warning(error))
                cleaned[column.name] = None
        if missing:
            record_warnings.append(_missing_warning(missing))
        rows.append(cleaned)
        warnings.append(record_warnings)
    return PreparedRecords(rows=rows, warnings=warnings, columns=schema.names)


def _known_names(schema: FeatureSchema) -> set[str]:
    return set(schema.names) | {dropped.name for dropped in schema.dropped}


def _unknown_warning(unknown: list[str]) -> str:
    return f"ignored unknown fields: {', '.join(unknown)}"


def _unreadable_warning(error: InputError) -> str:
    return f"unreadable, read as missing: {error.message}"


def _missing_warning(missing: Iterable[str]) -> str:
    return f"missing fields imputed as in training: {', '.join(missing)}"


# --- A column at a time -------------------------------------------------------------


@dataclass
class _Column:
    """One schema column's outcome over the batch."""

    cleaned: list[Any]  # per record: the cleaned value, None when missing or unreadable
    missing: np.ndarray  # bool per record: read as missing (imputed)
    notes: dict[int, str] = field(default_factory=dict)  # record -> its warning about this column
    error: InputError | None = None  # the first refused value's error (lowest record)
    frame_values: np.ndarray | None = None  # numbers: the frame's float column


def prepare_by_column(
    records: Sequence[Any], schema: FeatureSchema, placeholders: set[str], *, lenient: bool
) -> PreparedRecords:
    """`prepare_each`'s outcome, a column at a time (records that are not all dicts: one by one)."""
    if not all(type(record) is dict for record in records):
        return prepare_each(records, schema, placeholders, lenient=lenient)
    count = len(records)
    numeric_placeholders = _numeric_placeholders(placeholders)
    shared = record_columns(records)
    by_name = dict(zip(*shared)) if shared is not None else None
    checked: list[_Column] = []
    for column in schema.columns:
        if by_name is None:
            values = [record.get(column.name) for record in records]
        else:
            values = list(by_name[column.name]) if column.name in by_name else [None] * count
        checked.append(_column_check(column, values, placeholders, numeric_placeholders, lenient=lenient))
    errors = [(result.error.row, position, result.error) for position, result in enumerate(checked) if result.error]
    if errors:
        raise min(errors, key=lambda item: (item[0], item[1]))[2]

    # Each record's warnings in the order `prepare_each` writes them.
    warnings: list[list[str]] = [[] for _ in range(count)]
    for index, record_warnings in _record_level_warnings(records, _known_names(schema), by_name):
        warnings[index].extend(record_warnings)
    for result in checked:
        for index, note in result.notes.items():
            warnings[index].append(note)
    for index, message in _missing_warnings(schema.names, [result.missing for result in checked]):
        warnings[index].append(message)

    cleaned = {column.name: result.cleaned for column, result in zip(schema.columns, checked)}
    frame_values = {
        column.name: result.frame_values
        for column, result in zip(schema.columns, checked)
        if result.frame_values is not None
    }
    return PreparedRecords(warnings=warnings, columns=schema.names, values=cleaned, frame_values=frame_values)


def _record_level_warnings(
    records: Sequence[dict[str, Any]], known: set[str], by_name: dict[Any, tuple[Any, ...]] | None
) -> Iterable[tuple[int, list[str]]]:
    """The note a record carries and its unknown fields: judged once per distinct set of field names."""
    if by_name is not None and RECORD_WARNING_FIELD not in by_name:  # the same fields in every record
        unknown = sorted(str(key) for key in by_name if key not in known)
        if unknown:
            warning = _unknown_warning(unknown)
            yield from ((index, [warning]) for index in range(len(records)))
        return
    by_names: dict[tuple[Any, ...], tuple[bool, str | None]] = {}
    for index, record in enumerate(records):
        names = tuple(record)
        judged = by_names.get(names)
        if judged is None:
            unknown = sorted(str(key) for key in names if key not in known and key != RECORD_WARNING_FIELD)
            judged = (RECORD_WARNING_FIELD in record, _unknown_warning(unknown) if unknown else None)
            by_names[names] = judged
        has_note, unknown_warning = judged
        if not has_note and unknown_warning is None:
            continue
        found = []
        note = record.get(RECORD_WARNING_FIELD) if has_note else None
        if isinstance(note, str) and note:
            found.append(note)
        if unknown_warning is not None:
            found.append(unknown_warning)
        if found:
            yield index, found


def _missing_warnings(names: Sequence[str], missing: list[np.ndarray]) -> Iterable[tuple[int, str]]:
    if not missing:
        return
    matrix = np.column_stack(missing)
    rows = np.flatnonzero(matrix.any(axis=1))
    if not len(rows):
        return
    patterns = np.packbits(matrix[rows], axis=1)
    messages: dict[bytes, str] = {}
    for index, pattern, flags in zip(rows.tolist(), patterns, matrix[rows]):
        key = pattern.tobytes()
        message = messages.get(key)
        if message is None:
            message = messages[key] = _missing_warning(name for name, flag in zip(names, flags) if flag)
        yield index, message


def _column_check(
    column: ColumnSpec,
    values: list[Any],
    placeholders: set[str],
    numeric_placeholders: np.ndarray,
    *,
    lenient: bool,
) -> _Column:
    types = set(map(type, values))
    if column.kind == "numeric":
        return _numbers_check(column, values, types, placeholders, numeric_placeholders, lenient=lenient)
    if column.kind == "tags":
        return _tags_check(column, values, types, placeholders, lenient=lenient)
    return _texts_check(column, values, types, placeholders, lenient=lenient)


def _odd_positions(values: list[Any], types: set[type], usual: frozenset[type]) -> list[int]:
    """The records whose value is of a type the column check does not judge itself."""
    if types <= usual:
        return []
    return [index for index, value in enumerate(values) if type(value) not in usual]


def _blanked(values: list[Any], positions: list[int]) -> list[Any]:
    """The values with None at `positions` (the odd ones, judged one by one later), so the
    column-at-a-time check reads them as missing; `values` itself, uncopied, when there are none."""
    if not positions:
        return values
    usual = list(values)
    for index in positions:
        usual[index] = None
    return usual


def _each_value(
    result: _Column, column: ColumnSpec, values: list[Any], positions: Iterable[int], placeholders: set[str],
    *, lenient: bool,
) -> None:
    """Judge these records' values one by one, as `prepare_each` does, into `result`."""
    numeric = column.kind == "numeric"
    for index in positions:
        value = values[index]
        result.cleaned[index] = None
        if is_missing(value, placeholders, numeric=numeric):
            result.missing[index] = True
            continue
        result.missing[index] = False
        notes: list[str] = []
        try:
            result.cleaned[index] = validated_value(column, value, index, notes)
        except InputError as error:
            if not lenient:
                result.error = error  # positions come in record order: this one is raised
                return
            notes.append(_unreadable_warning(error))
        if notes:
            (result.notes[index],) = notes  # one warning per value at most
        else:
            result.notes.pop(index, None)


def _numeric_placeholders(placeholders: set[str]) -> np.ndarray:
    """The numbers `is_missing` reads as placeholders: those whose text is one."""
    numbers = []
    for text in placeholders:
        number = as_number(text)
        if number is not None and _number_text(number) == text:
            numbers.append(number)
    return np.asarray(numbers, dtype=float)


def _numbers_check(
    column: ColumnSpec,
    values: list[Any],
    types: set[type],
    placeholders: set[str],
    numeric_placeholders: np.ndarray,
    *,
    lenient: bool,
) -> _Column:
    count = len(values)
    odd = _odd_positions(values, types, _NUMBER_TYPES)
    usual = _blanked(values, odd)
    try:
        numbers = np.array(usual, dtype=float)  # None becomes NaN, booleans 0/1
    except OverflowError:  # an integer beyond a float: every value one by one
        numbers, odd = np.full(count, np.nan), list(range(count))
    nan = np.isnan(numbers)
    missing = nan.copy()
    odd_set = set(odd)
    if int(nan.sum()) != usual.count(None):
        # NaN floats (from Python callers) are refused, as `prepare_each` refuses them.
        odd_set.update(index for index in np.flatnonzero(nan).tolist() if usual[index] is not None)
    if not np.isfinite(numbers[~nan]).all():
        odd_set.update(np.flatnonzero(np.isinf(numbers)).tolist())
    if len(numeric_placeholders):
        placeholder = np.isin(numbers, numeric_placeholders)
        if bool in types:  # booleans are never placeholders
            placeholder &= np.fromiter((type(value) is not bool for value in usual), dtype=bool, count=count)
        missing |= placeholder
    odd = sorted(odd_set)
    present = ~missing
    if odd:
        present[odd] = False
    result = _Column(cleaned=[], missing=missing)
    if column.minimum is not None and column.maximum is not None:
        outside = present & ~((column.minimum <= numbers) & (numbers <= column.maximum))
        for index in np.flatnonzero(outside).tolist():
            result.notes[index] = (
                f"outlier: {column.name}={float(numbers[index]):g} is outside the training range "
                f"[{column.minimum:g}, {column.maximum:g}]"
            )
    numbers = np.where(present, numbers, np.nan)
    result.cleaned = numbers.tolist()
    for index in np.flatnonzero(~present).tolist():
        result.cleaned[index] = None
    if odd:
        _each_value(result, column, values, odd, placeholders, lenient=lenient)
        numbers[odd] = [np.nan if result.cleaned[index] is None else result.cleaned[index] for index in odd]
    # A column with no number at all is a column of None in `from_records` too.
    result.frame_values = numbers if not np.isnan(numbers).all() else None
    return result


def _missing_texts(texts: Iterable[str], placeholders: set[str]) -> set[str]:
    """The distinct texts `is_missing` reads as missing: blank, or a placeholder."""
    distinct = set(texts)
    lowered = map(str.lower, map(str.strip, distinct))
    return {text for text, low in zip(distinct, lowered) if not low or low in placeholders}


def _texts_check(
    column: ColumnSpec, values: list[Any], types: set[type], placeholders: set[str], *, lenient: bool
) -> _Column:
    """Categorical, e-mail, job-title and date columns: text as it came, or missing."""
    count = len(values)
    odd = _odd_positions(values, types, _TEXT_TYPES)
    usual = _blanked(values, odd)
    texts = [value for value in usual if value is not None] if _NONE in types or odd else usual
    absent = _missing_texts(texts, placeholders) | {None}
    missing = np.fromiter(map(absent.__contains__, usual), dtype=bool, count=count)
    if missing.any():
        cleaned = [None if flag else value for value, flag in zip(usual, missing.tolist())]
    else:
        cleaned = list(usual)
    result = _Column(cleaned=cleaned, missing=missing)
    refused = odd
    if column.kind == "datetime":
        present = set(texts) - absent
        date_format = getattr(column, "date_format", None)
        unreadable, implausible = _date_verdicts(present, date_format)
        if unreadable:
            refused = sorted(set(odd) | {index for index, value in enumerate(usual) if value in unreadable})
        for index, value in enumerate(usual):
            if value in implausible:
                result.notes[index] = _implausible_date_note(column.name, value)
    if refused:
        _each_value(result, column, values, refused, placeholders, lenient=lenient)
    return result


def _date_verdicts(texts: set[str], date_format: str | None) -> tuple[set[str], set[str]]:
    """(not dates in the column's format, dates outside the plausible years): `validated_value`'s, for many at once."""
    if not texts:
        return set(), set()
    if date_format is None:  # versions before formats: each value on its own, as they were read
        unreadable = {text for text in texts if not _parses_as_date_text(text, None)}
        return unreadable, _implausible_dates(texts - unreadable, None)
    candidates = list(texts)
    stamps = parse_dates(pd.Series(candidates, dtype=object), date_format)
    unreadable = {text for text, unread in zip(candidates, stamps.isna().tolist()) if unread}
    return unreadable, _implausible_dates(texts - unreadable, date_format, stamps=dict(zip(candidates, stamps)))


def _tags_check(
    column: ColumnSpec, values: list[Any], types: set[type], placeholders: set[str], *, lenient: bool
) -> _Column:
    count = len(values)
    odd = _odd_positions(values, types, _TAG_TYPES)
    lists = [index for index, value in enumerate(values) if type(value) is list] if list in types else []
    missing = np.fromiter((value is None for value in values), dtype=bool, count=count)
    cleaned: list[Any] = [None] * count
    element_types = set(map(type, chain.from_iterable(values[index] for index in lists)))
    if any(issubclass(kind, (Mapping, list, tuple)) for kind in element_types):
        odd = sorted(set(odd) | set(lists))  # a nested element: refused by name, one by one
    else:
        for index in lists:
            cleaned[index] = list(values[index])
    result = _Column(cleaned=cleaned, missing=missing)
    if odd:
        _each_value(result, column, values, odd, placeholders, lenient=lenient)
    return result


# --- One value at a time ------------------------------------------------------------


def is_missing(value: Any, placeholders: set[str], *, numeric: bool = False) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        text = value.strip().lower()
        if not text or text in placeholders:
            return True
        # In a numeric column "-1.0" is the placeholder "-1" too: the pipeline reads the number.
        number = as_number(text) if placeholders and numeric else None
        return number is not None and _number_text(number) in placeholders
    if placeholders and isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        return math.isfinite(number) and _number_text(number) in placeholders
    return False


def _number_text(number: float) -> str:
    return str(int(number)) if number.is_integer() else str(number)


def validated_value(column: ColumnSpec, value: Any, index: int, warnings: list[str]) -> Any:
    name = column.name
    if column.kind == "tags":
        # A list of values (or one value: a single tag).
        elements = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, Mapping) or any(isinstance(element, (Mapping, list, tuple)) for element in elements):
            raise InputError(
                f"field '{name}' must be a list of values (tags), got nested values", field=name, row=index
            )
        return list(elements)
    if isinstance(value, (Mapping, list, tuple)):
        kind = "an object" if isinstance(value, Mapping) else "a list"
        raise InputError(f"field '{name}' must be a single value, got {kind}", field=name, row=index)
    if column.kind == "numeric":
        number = as_number(value)
        if number is None:
            raise InputError(f"field '{name}' must be a number, got {value!r}", field=name, row=index)
        if column.minimum is not None and column.maximum is not None and not (
            column.minimum <= number <= column.maximum
        ):
            warnings.append(
                f"outlier: {name}={number:g} is outside the training range [{column.minimum:g}, {column.maximum:g}]"
            )
        return number
    if column.kind == "datetime":
        # Versions pickled before date formats existed have no `date_format` (None).
        date_format = getattr(column, "date_format", None)
        if not parses_as_date(value, date_format):
            written = "YYYY-MM-DD or ISO 8601" if date_format is None else describe_date_format(date_format)
            raise InputError(f"field '{name}' must be a date ({written}), got {value!r}", field=name, row=index)
        if isinstance(value, str) and _implausible_date_text(value, date_format):
            warnings.append(_implausible_date_note(name, value))
        return value
    return str(value) if not isinstance(value, str) else value


def _implausible_date_note(name: str, value: str) -> str:
    return (
        f"{name}={value!r} is outside the plausible dates ({EARLIEST_DATE.date()} .. {LATEST_DATE.date()}): "
        "read as missing"
    )


@lru_cache(maxsize=65536)
def _implausible_date_text(value: str, date_format: str | None) -> bool:
    """One date's `_implausible_dates` verdict (records checked one by one)."""
    return bool(_implausible_dates({value}, date_format))


def _implausible_dates(
    texts: set[str], date_format: str | None, *, stamps: dict[str, Any] | None = None
) -> set[str]:
    """The dates (`parses_as_date`) outside EARLIEST_DATE .. LATEST_DATE, which the pipeline reads as missing.

    CRMs write "no date" as 0001-01-01 (.NET's DateTime.MinValue) or 9999-12-31. Plain
    ISO texts are judged by their year; the others by `stamps` (their parse, when the
    caller has it) or one parse of them all.
    """
    implausible: set[str] = set()
    others: list[str] = []
    for text in texts:
        if not _PLAIN_ISO_TEXT.fullmatch(text.strip()):
            others.append(text)
            continue
        try:
            year = datetime.fromisoformat(text.strip()).year
        except ValueError:
            continue
        if not EARLIEST_DATE.year <= year < LATEST_DATE.year:
            implausible.add(text)
    if others:
        parsed = (
            pd.Series([stamps[text] for text in others]) if stamps is not None
            else parse_dates(pd.Series(others, dtype=object), date_format)
        )
        outside = parsed.notna() & ~((parsed >= EARLIEST_DATE) & (parsed < LATEST_DATE))
        implausible.update(text for text, flag in zip(others, outside.tolist()) if flag)
    return implausible


def as_number(value: Any) -> float | None:
    if type(value) is float:  # the common case, first
        return value if math.isfinite(value) else None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def parses_as_date(value: Any, date_format: str | None = None) -> bool:
    if isinstance(value, datetime):
        return True
    if not isinstance(value, str):
        return False
    return _parses_as_date_text(value, date_format)


# ISO 8601 as CRMs write it: a date, or a date and time with an optional UTC offset.
_PLAIN_ISO_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
# pandas' Timestamp range (1677-09-21 .. 2262-04-11), whole years inside it.
_PANDAS_YEARS = range(1678, 2262)


def _plainly_iso(text: str) -> bool:
    """A valid date in that shape, within pandas' range: one pandas reads in every date format.

    A few microseconds, where asking pandas about one value costs about a millisecond (a
    Series, a regular-expression extract, a parse). False only means "ask pandas".
    """
    if not _PLAIN_ISO_TEXT.fullmatch(text):
        return False
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return parsed.year in _PANDAS_YEARS


@lru_cache(maxsize=65536)
def _parses_as_date_text(value: str, date_format: str | None) -> bool:
    # Cached: a batch repeats dates, and parsing one costs more than the rest of a record.
    if _plainly_iso(value if date_format is None else value.strip()):
        return True
    if date_format is None:
        try:
            pd.Timestamp(value)
        except (ValueError, TypeError):
            return False
        return True
    # The pipeline's own parser, in the column's format. A date outside the plausible
    # range is still a date: the pipeline reads it as missing, as it always has.
    return not pd.isna(parse_dates(pd.Series([value], dtype=object), date_format).iloc[0])
