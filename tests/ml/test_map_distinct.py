"""`map_distinct` gives exactly what `Series.map` gives, calling the function once per distinct text."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from leadml.ml.features import DISTINCT_MAP_MIN_ROWS, map_distinct


def _described(value: Any) -> str:
    return f"{type(value).__name__}:{value!r}"


@pytest.mark.parametrize(
    "values",
    [
        ["VP Sales", "CTO", None, "VP Sales", np.nan, "cto", " CTO "] * 40,  # text with missing values
        [1, 1.0, True, "1", None] * 40,  # equal under hashing, not the same value: plain map
        ["a", "b", "c", "d"] * 10,  # too few rows for the distinct path
        [f"title {index}" for index in range(200)],  # all distinct
    ],
)
def test_the_result_is_series_map_exactly(values: list[Any]) -> None:
    series = pd.Series(values, index=range(100, 100 + len(values)), dtype=object)
    expected = series.map(_described).astype(object)
    result = map_distinct(series, _described)
    assert result.dtype == object and result.index.equals(series.index)
    assert result.tolist() == expected.tolist()


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
