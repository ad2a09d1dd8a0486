"""Reading numbers and CSV tables out of untrusted text, the only way the service does it.

pandas' C number parsers (`pd.to_numeric` on text, `read_csv`'s type inference) crash
the whole process with a segmentation fault on text whose exponent has a dozen digits
or more: an ordinary hex id such as `4e746882294308d42eeed71ba0aacbf8` reads as
4 × 10^746882294308 (pandas 2.3 and 3.1 alike; pandas-dev/pandas#63650). A float's
exponent never needs more than three digits, so text with a longer exponent is not a
number we can compute with: it is set aside before any C parser sees it. CSV files are
read as text (no C type inference) and typed column by column here.
"""
from __future__ import annotations

import json
import re
from typing import IO, Any

import numpy as np
import pandas as pd

# Share of a column's non-missing values that must parse for it to count as that type
# (numbers, dates) when a schema is inferred.
TYPE_PARSE_SHARE = 0.98
# A digit (or point) followed by an exponent of four or more digits: never a usable float.
HUGE_EXPONENT = re.compile(r"[0-9.][eE][+-]?[0-9]{4,}")


def has_huge_exponent(text: str) -> bool:
    return HUGE_EXPONENT.search(text) is not None


def to_numeric(series: pd.Series) -> pd.Series:
    """Coerce a column to floats; booleans become 0/1, unreadable and non-finite values NaN."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    if pd.api.types.is_numeric_dtype(series):
        numbers = series.astype(float)
        return numbers.where(np.isfinite(numbers), np.nan)
    mapped = series.map(_screened, na_action="ignore").astype(object)
    try:
        numbers = pd.to_numeric(mapped, errors="coerce")
    except OverflowError:  # an integer beyond float range somewhere in the column
        numbers = pd.to_numeric(mapped.map(number_or_none), errors="coerce")
    numbers = numbers.astype(float)
    # Infinities (or numbers too large to compute with) count as unreadable.
    return numbers.where(np.isfinite(numbers), np.nan)


def _screened(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        return None if has_huge_exponent(text) else text
    return value


def number_or_none(value: Any) -> float | None:
    """Return a finite float read from one value (Python's own parser), or None."""
    if isinstance(value, str) and has_huge_exponent(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if np.isfinite(number) else None


BOOLEAN_TEXT = {"true": True, "false": False}
# Integers beyond this lose precision as floats; such columns stay floats.
SAFE_INTEGER = 2**53


def read_csv_typed(source: str | IO[str], **options: Any) -> pd.DataFrame:
    """Read a CSV as pandas would, but with our own, crash-free type inference.

    Cells are read as text (pandas' usual missing markers become missing); a column
    whose every present value is a number becomes numbers (integers when they all are
    whole and safe), one of only true/false becomes booleans, anything else stays text.
    """
    frame = pd.read_csv(source, dtype=str, **options)
    return frame.apply(type_text_column)


def type_text_column(column: pd.Series) -> pd.Series:
    present = column.notna()
    if not present.any():
        return column.astype(object)
    structured = _structured_values(column[present])
    if structured is not None:
        return structured.reindex(column.index).astype(object).where(present, None)
    lowered = column[present].str.strip().str.lower()
    if lowered.isin(list(BOOLEAN_TEXT)).all():
        return column.map(lambda value: BOOLEAN_TEXT[value.strip().lower()] if isinstance(value, str) else None)
    numbers = to_numeric(column)
    if numbers[present].isna().any():
        return column.astype(object).where(present, None)
    whole = numbers[present]
    if present.all() and (whole == np.floor(whole)).all() and (whole.abs() < SAFE_INTEGER).all():
        return numbers.astype(np.int64)
    return numbers


# PostgreSQL's text form of a one-dimensional array: {a,b,"c d"} (what a CRM's `tags` exports as).
PG_ARRAY = re.compile(r'^\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\}$')
PG_ARRAY_ELEMENT = re.compile(r'"((?:[^"\\]|\\.)*)"|([^,]+)')


def _structured_values(values: pd.Series) -> pd.Series | None:
    """A column whose every cell is a JSON object/array (or a PostgreSQL array), parsed; else None."""
    stripped = values.str.strip()
    if not stripped.str.match(r"^[\[{]").all():
        return None
    parsed = []
    for text in stripped:
        value = _json_container(text)
        if value is None:
            value = _pg_array(text)
        if value is None:
            return None
        parsed.append(value)
    if any(isinstance(value, list) for value in parsed):
        # "{}" is an empty PostgreSQL array in a column of arrays, not an empty object.
        parsed = [[] if value == {} else value for value in parsed]
    return pd.Series(parsed, index=values.index, dtype=object)


def _json_container(text: str) -> dict[str, Any] | list[Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, (dict, list)) else None


def _pg_array(text: str) -> list[str] | None:
    if not PG_ARRAY.match(text):
        return None
    inner = text[1:-1]
    if not inner:
        return []
    elements = []
    for quoted, bare in PG_ARRAY_ELEMENT.findall(inner):
        element = re.sub(r"\\(.)", r"\1", quoted) if quoted else bare.strip()
        if not quoted and element.upper() == "NULL":
            continue
        elements.append(element)
    return elements
