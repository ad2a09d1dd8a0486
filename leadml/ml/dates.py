"""Dates as CRM exports write them: one format per column, read the same at training and prediction.

`infer_date_format` decides from all of a column's training values how it is written
(ISO 8601, day first, month first, or with month names); `to_datetime` reads a column in
that format to UTC timestamps, and anything outside EARLIEST_DATE..LATEST_DATE as
missing.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from leadml.ml.parsing import TYPE_PARSE_SHARE

# Dates outside this range are typos or sentinels ("0001-01-01"), not CRM history.
EARLIEST_DATE = pd.Timestamp("1900-01-01", tz="UTC")
LATEST_DATE = pd.Timestamp("2200-01-01", tz="UTC")

# How a date column is written, decided once per column from all its values and stored in
# its ColumnSpec, so that training and prediction read "05-12-2017" the same way. Only
# dates written as three numbers are ambiguous; ISO 8601 and month names ("Feb 13, 2018")
# are read as they are in every format.
DATE_FORMATS: dict[str, str] = {
    "iso8601": "ISO 8601 (YYYY-MM-DD, an optional time and UTC offset) or with a month name",
    "day_first": (
        "DD-MM-YYYY (or DD/MM/YYYY, DD.MM.YYYY, a two-digit year, an optional HH:MM[:SS]), "
        "ISO 8601 or with a month name"
    ),
    "month_first": (
        "MM-DD-YYYY (or MM/DD/YYYY, MM.DD.YYYY, a two-digit year, an optional HH:MM[:SS]), "
        "ISO 8601 or with a month name"
    ),
    "mixed": "with a month name (Feb 13, 2018) or ISO 8601",
}
ISO_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d|$)")
# Day, month and year as numbers: 13-02-2018, 2/13/18, 13.02.2018 10:30.
NUMERIC_DATE_TEXT = re.compile(
    r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?)?$"
)
# Two-digit years as strptime's %y reads them: 00-68 are 20xx, 69-99 are 19xx.
TWO_DIGIT_YEAR_PIVOT = 69


def to_datetime(series: pd.Series, date_format: str | None = None) -> pd.Series:
    """Parse a column of dates to UTC timestamps as `date_format` says; unreadable or absurd values become NaT.

    Without a format (versions trained before formats were inferred) each value is read
    on its own, as those versions were trained.
    """
    dates = parse_dates(series, date_format)
    return dates.where((dates >= EARLIEST_DATE) & (dates < LATEST_DATE))


def parse_dates(series: pd.Series, date_format: str | None = None) -> pd.Series:
    """`to_datetime` without the plausible-range check: what a value *says*, however absurd.

    Day-month-year numbers are rewritten as ISO 8601 in the column's order (or, in a
    column whose training values never showed an order, read as unreadable); every
    other value is read on its own, as pandas reads it.
    """
    if date_format is not None:
        series = _numeric_dates_as_iso(series, date_format)
    return pd.to_datetime(series, errors="coerce", utc=True, format="mixed")


def _numeric_dates_as_iso(series: pd.Series, date_format: str) -> pd.Series:
    values = series.map(lambda value: value.strip() if isinstance(value, str) else value).astype(object)
    text = values.where(values.map(lambda value: isinstance(value, str)))
    parts = text.str.extract(NUMERIC_DATE_TEXT)
    matched = parts[0].notna()
    if not matched.any():
        return values
    if date_format not in ("day_first", "month_first"):
        return values.mask(matched, None)
    first, second = parts.loc[matched, 0], parts.loc[matched, 2]
    day, month = (first, second) if date_format == "day_first" else (second, first)
    year = parts.loc[matched, 3]
    short = year.str.len() == 2
    century = pd.Series(
        np.where(year.where(short, "0").astype(int) < TWO_DIGIT_YEAR_PIVOT, "20", "19"), index=year.index
    )
    year = year.where(~short, century + year)
    time = (
        parts.loc[matched, 4].fillna("0").str.zfill(2)
        + ":"
        + parts.loc[matched, 5].fillna("00")
        + ":"
        + parts.loc[matched, 6].fillna("00").str.zfill(2)
    )
    rewritten = values.copy()
    rewritten[matched] = (year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + "T" + time).to_numpy()
    return rewritten


def infer_date_format(values: pd.Series) -> tuple[str | None, str | None]:
    """Return (format, warning) for a column's present values, or (None, None) if they are not dates.

    The format is one of DATE_FORMATS, chosen from every value: ISO 8601 when (almost)
    all values are; for day, month and year written as numbers, day first when some
    first field exceeds 12 and month first when some second field does. A column where
    neither ever exceeds 12 is ambiguous: month first with "/" (as US exports write it),
    day first with "-" or "." (as most of the world does), and a warning.
    """
    text = values.map(lambda value: value.strip() if isinstance(value, str) else None).dropna()
    if text.empty:
        # Datetime objects (a frame built in Python, not read from text): nothing to guess.
        return ("mixed", None) if len(values.dropna()) else (None, None)
    iso = text.str.match(ISO_DATE_TEXT)
    parts = text[~iso].str.extract(NUMERIC_DATE_TEXT).dropna(subset=[0])
    if (float(iso.sum()) + len(parts)) / len(text) >= TYPE_PARSE_SHARE and len(parts):
        first, second = parts[0].astype(int), parts[2].astype(int)
        day_first_evidence, month_first_evidence = int((first > 12).sum()), int((second > 12).sum())
        separator = parts[1].mode().iloc[0]
        if day_first_evidence and month_first_evidence:
            chosen = "day_first" if day_first_evidence >= month_first_evidence else "month_first"
            minority = min(day_first_evidence, month_first_evidence)
            return chosen, (
                f"mixes day-first and month-first dates; read {chosen.replace('_', ' ')} as most values are, "
                f"so {minority} value(s) that cannot be read that way count as missing"
            )
        if day_first_evidence:
            return "day_first", None
        if month_first_evidence:
            return "month_first", None
        chosen = "month_first" if separator == "/" else "day_first"
        example = text[~iso].iloc[0]
        return chosen, (
            f"dates such as {example!r} could be day first or month first (no day above 12 in "
            f"{len(parts)} values); read {chosen.replace('_', ' ')}"
        )
    if iso.mean() >= TYPE_PARSE_SHARE:
        return "iso8601", None
    return "mixed", None


def describe_date_format(date_format: str | None) -> str:
    return DATE_FORMATS.get(date_format or "mixed", DATE_FORMATS["mixed"])
