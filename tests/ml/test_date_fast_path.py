"""One date of a record is checked without pandas when it is plainly ISO 8601, with pandas' verdict."""
from __future__ import annotations

import itertools

import pandas as pd
import pytest

from leadml.ml import validation
from leadml.ml.dates import DATE_FORMATS, parse_dates
from leadml.ml.validation import _parses_as_date_text, _plainly_iso, parses_as_date

SHAPES = [
    "2024-08-07", "2024-02-29", "2023-02-29", "2024-13-01", "2024-00-10", "0001-01-01", "1677-12-31", "1678-01-01",
    "2261-12-31", "2262-05-01", "2024-08-07T10:21", "2024-08-07T10:21:33", "2024-08-07 10:21:33.123",
    "2024-08-07T10:21:33.123456Z", "2024-08-07T10:21:33+02:00", "2024-08-07T10:21:33-0530", "2024-08-07T25:00:00",
    "2024-08-07T10:61", "2024-08-07T10:21:33.1234567", "2024-08-07Z", " 2024-08-07 ", "2024-08-07T24:00:00",
    "2024-08-07T10:21:60", "13-02-2018", "02/13/18", "Feb 13, 2018", "yesterday",
]


def _pandas_reads(value: str, date_format: str | None) -> bool:
    if date_format is None:
        try:
            pd.Timestamp(value)
        except (ValueError, TypeError):
            return False
        return True
    return not pd.isna(parse_dates(pd.Series([value], dtype=object), date_format).iloc[0])


@pytest.mark.parametrize(("value", "date_format"), itertools.product(SHAPES, [None, *DATE_FORMATS]))
def test_the_verdict_is_pandas_verdict(value: str, date_format: str | None) -> None:
    _parses_as_date_text.cache_clear()
    assert parses_as_date(value, date_format) == _pandas_reads(value, date_format)


def test_a_plain_iso_date_never_reaches_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    _parses_as_date_text.cache_clear()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pandas asked about a plain ISO date")

    monkeypatch.setattr(validation, "parse_dates", refuse)
    monkeypatch.setattr(validation.pd, "Timestamp", refuse)
    assert parses_as_date("2024-08-07T10:21:33.5Z", "day_first")
    assert parses_as_date("2024-08-07", None)
    assert not _plainly_iso("2024-02-30")  # invalid: left to pandas, which refuses it too
