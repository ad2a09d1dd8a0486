"""`map_distinct` gives exactly what `Series.map` gives, calling the function once per distinct text."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from leadml.ml.features import DISTINCT_MAP_MIN_ROWS, map_distinct


def _described(value: Any) -> str:
    return f"{type(value).__name__}:{value!r}"


def _text_or_none(value: Any) -> str | None:
    """As the features' `_as_text`: None for missing and blank values."""
    return value.strip() or None if isinstance(value, str) else None


def _flag(value: Any) -> float:
    return float(value.startswith("V")) if isinstance(value, str) else np.nan


@pytest.mark.parametrize(
    "values",
    [
        ["VP Sales", "CTO", None, "VP Sales", np.nan, "cto", " CTO ", "  "] * 40,  # text, missing, blank
        [1, 1.0, True, "1", None] * 40,  # equal under hashing, not the same value: plain map
        ["a", "b", "c", "d"] * 10,  # too few rows for the distinct path
        [f"title {index}" for index in range(200)],  # all distinct
    ],
)
@pytest.mark.parametrize("function", [_described, _text_or_none, _flag])
def test_the_result_is_series_map_exactly(values: list[Any], function: Any) -> None:
    series = pd.Series(values, index=range(100, 100 + len(values)), dtype=object)
    expected = series.map(function).astype(object)
    result = map_distinct(series, function)
    assert result.dtype == object and result.index.equals(series.index)
    # NaN != NaN: compare missing positions, then the values elsewhere.
    assert result.isna().tolist() == expected.isna().tolist()
    assert [type(value) for value in result] == [type(value) for value in expected]
    assert result[result.notna()].tolist() == expected[expected.notna()].tolist()


def test_each_distinct_text_is_computed_once() -> None:
    calls: list[Any] = []

    def counted(value: Any) -> Any:
        calls.append(value)
        return value

    series = pd.Series(["a", "b", None, "a", "b", np.nan] * DISTINCT_MAP_MIN_ROWS, dtype=object)
    map_distinct(series, counted)
    texts = [value for value in calls if isinstance(value, str)]
    assert sorted(texts) == ["a", "b"]
    assert len(calls) == 2 + 2 * DISTINCT_MAP_MIN_ROWS  # the missing values one by one
