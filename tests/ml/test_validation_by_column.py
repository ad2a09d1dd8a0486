"""A batch checked a column at a time gets exactly what checking it record by record gives. No database.

`prepare_each` is the reference (what single records still use); `prepare_by_column` must
return the same cleaned values, frame and warnings (in the same order), and refuse a
batch with the same first error, whatever mix of values a column holds.
"""
from __future__ import annotations

import math
import random
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from leadml.ml.errors import InputError
from leadml.ml.types import ColumnSpec, DroppedColumn, FeatureSchema
from leadml.ml.validation import RECORD_WARNING_FIELD, placeholder_texts, prepare_by_column, prepare_each

PLACEHOLDERS = placeholder_texts(("unknown", "Select", "-1", "999", "0.5", "0"))
SCHEMA = FeatureSchema(
    columns=(
        ColumnSpec("lead_score", "numeric", minimum=0.0, maximum=100.0),
        ColumnSpec("company_size", "numeric", minimum=1.0, maximum=20000.0),
        ColumnSpec("visits", "numeric"),  # no training range: never an outlier
        ColumnSpec("industry", "categorical", categories=("Retail", "Finance")),
        ColumnSpec("email", "email"),
        ColumnSpec("job_title", "job_title"),
        ColumnSpec("created_at", "datetime", date_format="day_first"),
        ColumnSpec("updated_at", "datetime", date_format="iso8601"),
        ColumnSpec("seen_at", "datetime", date_format=None),  # a version from before date formats
        ColumnSpec("tags", "tags", categories=("demo", "newsletter")),
    ),
    dropped=(DroppedColumn("id", "identifier"),),
)

# Values each column may get; every one is accepted (or read as missing) by its column.
GOOD_VALUES: dict[str, list[Any]] = {
    "numeric": [
        None, 0, 1, 7, 42.5, -3, 1e6, -0.0, True, False, 2**60, "42", " 1,000 ", "-1.0", "-1", "", "  ",
        "unknown", " SELECT ", 999, 999.0, 0.5, "0.5", "1e3", 1e-300, "7",
    ],
    "categorical": [
        None, "Retail", " retail ", "Finance", "", "   ", "Select", " unknown ", 5, 5.0, -1, 999.0, True, "-1",
        "-1.0", "ünïcödé\tx", "a\\b", "line\nbreak", 0.5, 2**70,
    ],
    "datetime": [
        None, "2025-02-19", "2025-02-19T10:00:00Z", "2025-02-19 10:00", "Feb 13, 2018", "", "unknown", "0001-01-01", "2199-12-31", "9999-12-31T00:00:00Z", "1899-12-31", datetime(2025, 1, 1, tzinfo=timezone.utc),
        " 2024-01-05 ",
    ],
    "tags": [None, [], ["demo"], ["demo", "newsletter"], [1, 2.0, None, True], "newsletter", "", "unknown",
             ("demo",), 5, ["", "  "]],
}
# Values each column refuses (or, leniently, reads as missing with a warning).
BAD_VALUES: dict[str, list[Any]] = {
    "numeric": ["abc", [1, 2], {"a": 1}, float("nan"), float("inf"), "1e999", (1,), object()],
    "categorical": [[1], {"a": 1}, ("x",)],
    "datetime": ["not a date", "13/13/2018", 20250219, 3.5, ["2025-01-01"], {"a": 1}, "2025-02-30"],
    "tags": [[["nested"]], [{"a": 1}], {"a": 1}, [("x",)]],
}
# Dates as three numbers: only a column whose training dates showed their order reads them.
NUMERIC_DATES = ["19-02-2025", "13.02.2018 10:30", "5/12/17", "31-12-1999 23:59:59", "01-01-1850"]
EXTRA_FIELDS: list[dict[str, Any]] = [
    {}, {"id": "lead-1"}, {"shoe_size": 44}, {"shoe_size": 44, "Zeta": 1, "alpha": None},
    {RECORD_WARNING_FIELD: "scored from the no-purchase row"}, {RECORD_WARNING_FIELD: ""},
    {RECORD_WARNING_FIELD: 5, "x": 1},
]


def kind_of(column: ColumnSpec) -> str:
    return column.kind if column.kind in GOOD_VALUES else "categorical"


def good_values(column: ColumnSpec) -> list[Any]:
    numeric_dates = NUMERIC_DATES if column.date_format == "day_first" else []
    return GOOD_VALUES[kind_of(column)] + numeric_dates


def bad_values(column: ColumnSpec) -> list[Any]:
    numeric_dates = NUMERIC_DATES if column.kind == "datetime" and column.date_format == "iso8601" else []
    return BAD_VALUES[kind_of(column)] + numeric_dates


def varied_records(count: int, seed: int, *, bad_share: float = 0.0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        record: dict[str, Any] = dict(rng.choice(EXTRA_FIELDS))
        for column in SCHEMA.columns:
            if rng.random() < 0.15:
                continue  # absent
            pool = bad_values(column) if rng.random() < bad_share else good_values(column)
            record[column.name] = rng.choice(pool)
        items = list(record.items())
        rng.shuffle(items)  # field order differs from record to record
        records.append(dict(items))
    return records


def assert_same_outcome(records: list[Any], *, lenient: bool) -> None:
    try:
        expected = prepare_each(records, SCHEMA, PLACEHOLDERS, lenient=lenient)
    except InputError as error:
        with pytest.raises(InputError) as raised:
            prepare_by_column(records, SCHEMA, PLACEHOLDERS, lenient=lenient)
        assert (raised.value.message, raised.value.field, raised.value.row) == (error.message, error.field, error.row)
        return
    actual = prepare_by_column(records, SCHEMA, PLACEHOLDERS, lenient=lenient)
    assert actual.warnings == expected.warnings
    assert_same_rows(actual.rows, expected.rows)
    pd.testing.assert_frame_equal(actual.frame, expected.frame)


def assert_same_rows(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(actual) == len(expected)
    for got, wanted in zip(actual, expected):
        assert list(got) == list(wanted)
        for name, value in wanted.items():
            assert type(got[name]) is type(value), name
            assert got[name] == value or (isinstance(value, float) and math.isnan(value)), name


@pytest.mark.parametrize("seed", range(6))
def test_a_varied_batch_of_accepted_values_is_cleaned_and_warned_alike(seed: int) -> None:
    records = varied_records(300, seed)

    assert_same_outcome(records, lenient=False)
    assert any(prepare_each(records, SCHEMA, PLACEHOLDERS, lenient=False).warnings)


@pytest.mark.parametrize("seed", range(6))
def test_leniently_every_refused_value_becomes_the_same_warning(seed: int) -> None:
    records = varied_records(300, seed, bad_share=0.1)

    assert_same_outcome(records, lenient=True)
    warnings = prepare_by_column(records, SCHEMA, PLACEHOLDERS, lenient=True).warnings
    assert any("unreadable, read as missing" in warning for record in warnings for warning in record)


@pytest.mark.parametrize("seed", range(20))
def test_the_first_refused_value_is_the_error_whatever_the_column(seed: int) -> None:
    rng = random.Random(seed)
    records = varied_records(400, seed)
    # Two bad values: the record-order first one is raised (schema order within a record).
    for _ in range(2):
        row, column = rng.randrange(len(records)), rng.choice(SCHEMA.columns)
        records[row][column.name] = rng.choice(bad_values(column))

    assert_same_outcome(records, lenient=False)


def test_a_bad_value_deep_in_a_large_batch_names_its_record_and_field() -> None:
    records = varied_records(10_000, 1)
    records[7371]["lead_score"] = "lots"
    records[9000]["industry"] = ["a", "b"]

    with pytest.raises(InputError) as raised:
        prepare_by_column(records, SCHEMA, PLACEHOLDERS, lenient=False)

    assert (raised.value.row, raised.value.field) == (7371, "lead_score")
    assert raised.value.message == "field 'lead_score' must be a number, got 'lots'"


def test_mixed_type_columns_are_read_as_one_by_one() -> None:
    base = [{"lead_score": value} for value in (1, 2.5, True, "3", None, " 1,000 ", "", "-1", 999, 1e9)]
    records = base * 10

    assert_same_outcome(records, lenient=False)
    prepared = prepare_by_column(records, SCHEMA, PLACEHOLDERS, lenient=False)
    assert prepared.rows[0]["lead_score"] == 1.0 and prepared.rows[2]["lead_score"] == 1.0
    assert prepared.rows[3]["lead_score"] == 3.0 and prepared.rows[5]["lead_score"] == 1000.0
    assert prepared.rows[6]["lead_score"] is None and prepared.rows[7]["lead_score"] is None  # blank, placeholder
    assert prepared.rows[8]["lead_score"] is None  # 999 is a placeholder
    assert "outlier: lead_score=1e+09" in prepared.warnings[9][-2]
    assert prepared.frame["lead_score"].dtype == np.float64


def test_all_missing_columns_are_missing_in_every_record_and_object_in_the_frame() -> None:
    records = [{"id": f"lead-{index}", "industry": None, "tags": None} for index in range(200)]

    assert_same_outcome(records, lenient=False)
    prepared = prepare_by_column(records, SCHEMA, PLACEHOLDERS, lenient=False)
    assert prepared.warnings[0] == [f"missing fields imputed as in training: {', '.join(SCHEMA.names)}"]
    assert prepared.frame["lead_score"].dtype == object and prepared.frame["lead_score"].isna().all()


def test_records_that_are_not_objects_are_refused_as_one_by_one() -> None:
    records: list[Any] = [{"lead_score": 1}] * 100 + ["not a lead"]

    assert_same_outcome(records, lenient=False)
    with pytest.raises(InputError, match="record 100 must be a JSON object"):
        prepare_by_column(records, SCHEMA, PLACEHOLDERS, lenient=False)


def test_an_integer_beyond_a_float_fails_as_one_by_one() -> None:
    records = [{"lead_score": 10**400}] + [{"lead_score": 1}] * 100

    with pytest.raises(OverflowError):
        prepare_each(records, SCHEMA, PLACEHOLDERS, lenient=False)
    with pytest.raises(OverflowError):
        prepare_by_column(records, SCHEMA, PLACEHOLDERS, lenient=False)


def test_unknown_fields_are_warned_per_record_whatever_their_order() -> None:
    records = [{"b_unknown": 1, "lead_score": 5, "a_unknown": 2}, {"a_unknown": 2, "b_unknown": 1}] * 50

    assert_same_outcome(records, lenient=False)
    prepared = prepare_by_column(records, SCHEMA, PLACEHOLDERS, lenient=False)
    assert prepared.warnings[1][0] == "ignored unknown fields: a_unknown, b_unknown"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lenient", [False, True])
def test_records_with_the_same_fields_in_the_same_order_are_read_alike(seed: int, lenient: bool) -> None:
    # What a CRM export sends: every field in every record, in one order (read by one transposition).
    order = ["id", *SCHEMA.names, "shoe_size"]
    varied = varied_records(300, seed, bad_share=0.05 if lenient else 0.0)
    records = [{name: record.get(name) for name in order} for record in varied]

    assert_same_outcome(records, lenient=lenient)
    warnings = prepare_by_column(records, SCHEMA, PLACEHOLDERS, lenient=lenient).warnings
    assert all(record[0] == "ignored unknown fields: shoe_size" for record in warnings)


def test_a_date_column_is_parsed_once_however_many_distinct_dates_it_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    # The plausible-years check once parsed each distinct date on its own: 17 s for 10,000 records.
    import leadml.ml.validation as validation

    calls: list[int] = []
    parse = validation.parse_dates

    def counted(series: pd.Series, date_format: str | None = None) -> pd.Series:
        calls.append(len(series))
        return parse(series, date_format)

    monkeypatch.setattr(validation, "parse_dates", counted)
    schema = FeatureSchema(columns=(ColumnSpec("created_at", "datetime", date_format="day_first"),))
    dates = [f"{day:02d}-{month:02d}-{year}" for day in range(1, 29) for month in (1, 6) for year in (1850, 2020)]
    prepared = prepare_by_column([{"created_at": date} for date in dates], schema, set(), lenient=False)
    assert calls == [len(dates)]
    flagged = [index for index, notes in enumerate(prepared.warnings) if any("plausible dates" in n for n in notes)]
    assert flagged == [index for index, date in enumerate(dates) if date.endswith("1850")]
