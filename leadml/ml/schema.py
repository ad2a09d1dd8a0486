"""Column inference: what kind of input each column of the training data is, or why it is dropped.

`infer_schema` reads every column's values (ids by their values, one date format per
column, e-mails, job titles, numbers, tags, categories) and drops identifiers, personal
data, raw free text, empty or constant columns, saying why; columns the caller chose are
kept with a warning instead.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd

from leadml.ml.dates import ISO_DATE_TEXT, NUMERIC_DATE_TEXT, infer_date_format, to_datetime
from leadml.ml.nested import is_list, tag_set
from leadml.ml.parsing import TYPE_PARSE_SHARE, to_numeric
from leadml.ml.types import ColumnSpec, DroppedColumn, FeatureSchema
from leadml.ml.vocabulary import JOB_TITLE_FIELDS

IDENTIFIER_NAME = re.compile(r"(^|_)(id|uuid|guid|key)$|^(id|uuid|guid)_", re.IGNORECASE)
EMAIL_NAME = re.compile(r"(^|_)e?mail(_address)?$", re.IGNORECASE)
EMAIL_VALUE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PERSONAL_TEXT_NAMES = {"name", "first_name", "last_name", "full_name", "phone", "phone_number", "address"}
DATE_NAME = re.compile(r"(_at|_date|_on|^date|_time)$", re.IGNORECASE)
MAX_CATEGORIES_KEPT = 50
# List fields (tags): indicators for at most this many of the most frequent values, each
# seen in at least MIN_TAG_ROWS training rows.
MAX_TAGS_KEPT = 20
MIN_TAG_ROWS = 3



def _parse_share(parsed: pd.Series, present: pd.Series) -> float:
    count = int(present.sum())
    return float(parsed[present].notna().sum()) / count if count else 0.0


# An identifier's values hardly repeat: on average fewer than two rows share one. A column
# whose values repeat is a category, whatever its name says (`landing_page_id`).
IDENTIFIER_DISTINCT_SHARE = 0.5


def is_identifier_like(distinct: int, present: int) -> bool:
    return present > 0 and distinct / present >= IDENTIFIER_DISTINCT_SHARE


def infer_schema(
    frame: pd.DataFrame, *, keep: Iterable[str] | None = None, drop_constant: bool = True
) -> FeatureSchema:
    """Return the feature schema of a training frame (target column already removed).

    `keep` names columns the caller chose (an explicit `features` list, `allow_columns`):
    they are used even where a heuristic would drop them (identifier, personal data,
    constant, free text), with a warning saying which heuristic disagreed.
    `drop_constant=False` keeps single-valued columns (for describing a handful of
    records rather than training on them).
    """
    keep_set = set(keep or ())
    columns: list[ColumnSpec] = []
    dropped: list[DroppedColumn] = []
    warnings: list[str] = []
    for name in frame.columns:
        inferred = _infer_column(name, frame[name], len(frame), name in keep_set, drop_constant, warnings)
        if isinstance(inferred, ColumnSpec):
            columns.append(inferred)
        else:
            dropped.append(inferred)
    return FeatureSchema(columns=tuple(columns), dropped=tuple(dropped), warnings=tuple(warnings))


@dataclass(frozen=True)
class _Column:
    """One training column's present values, as the type heuristics read them."""

    name: str
    series: pd.Series
    present: pd.Series  # mask: neither missing nor blank
    values: pd.Series  # the present values
    numeric_dtype: bool
    missing_share: float
    unique_count: int
    chosen: bool  # named by the caller: heuristics warn instead of dropping

    @property
    def lowered(self) -> str:
        return str(self.name).lower()

    @property
    def present_count(self) -> int:
        return len(self.values)


def _infer_column(
    name: str, series: pd.Series, row_count: int, chosen: bool, drop_constant: bool, warnings: list[str]
) -> ColumnSpec | DroppedColumn:
    """One column's kind, or why it is dropped; what the caller should hear goes to `warnings`."""
    # Numbers need no text: converting wide numeric uploads to text was most of the scan's time.
    numeric_dtype = pd.api.types.is_numeric_dtype(series.dtype)
    if numeric_dtype:
        present = series.notna()
    else:
        present = series.notna() & ~series.map(_is_blank).astype(bool)
    present_count = int(present.sum())
    missing_share = round(1.0 - present_count / row_count, 4) if row_count else 1.0
    if present_count == 0:
        if chosen:
            warnings.append(f"{name}: chosen, but it has no values; left out")
        return DroppedColumn(name, "empty: no values")
    values = series[present]
    if values.map(lambda value: isinstance(value, Mapping)).any():
        return DroppedColumn(name, "nested objects: only one level of a JSON object is flattened")
    if values.map(is_list).any():
        tags = _top_tags(values)
        if tags:
            return ColumnSpec(name, "tags", missing_share, categories=tags)
        return DroppedColumn(name, f"list of values: none is in at least {MIN_TAG_ROWS} rows to learn from")
    unique_count = int(values.nunique()) if numeric_dtype else values.astype(str).nunique()
    column = _Column(name, series, present, values, numeric_dtype, missing_share, unique_count, chosen)
    screened = _screen(column, drop_constant, warnings)
    if screened is not None:
        return screened
    return _typed(column, warnings)


def _overruled(column: _Column, heuristic: str, warnings: list[str]) -> None:
    warnings.append(f"{column.name}: chosen, so kept, although it looks like {heuristic}")


def _screen(column: _Column, drop_constant: bool, warnings: list[str]) -> ColumnSpec | DroppedColumn | None:
    """Identifiers, personal data and constants dropped (unless chosen); id-named codes kept as categories."""
    name, unique_count, present_count = column.name, column.unique_count, column.present_count
    id_named = IDENTIFIER_NAME.search(column.lowered) is not None
    if id_named and is_identifier_like(unique_count, present_count):
        if not column.chosen:
            return DroppedColumn(
                name,
                f"identifier (name looks like an id and its values hardly repeat: {unique_count} distinct "
                f"in {present_count} rows)",
            )
        _overruled(column, f"an identifier ({unique_count} distinct values in {present_count} rows)", warnings)
    if column.lowered in PERSONAL_TEXT_NAMES:
        if not column.chosen:
            return DroppedColumn(name, "personal data (names, phones and addresses are not used)")
        _overruled(column, "personal data", warnings)
    if unique_count == 1 and (drop_constant or column.chosen):
        if not column.chosen:
            return DroppedColumn(name, "constant: a single value")
        _overruled(column, "a constant (a single value)", warnings)
    if id_named:
        # Codes, not quantities: landing page 1203 is not "more" than page 17.
        if not column.chosen:
            warnings.append(
                f"{name}: the name looks like an id, but its {unique_count} values repeat "
                f"({present_count / unique_count:.1f} rows each on average): kept as a category"
            )
        return ColumnSpec(name, "categorical", column.missing_share, categories=_top_categories(column.values))
    return None


def _typed(column: _Column, warnings: list[str]) -> ColumnSpec | DroppedColumn:
    """E-mail, job title, number, date, free text or category, judged by the values."""
    name, values, missing_share, lowered = column.name, column.values, column.missing_share, column.lowered
    as_text = values.astype(str) if not column.numeric_dtype else None
    # Judge by the values: "email_interactions" is a count, not an address.
    if as_text is not None and _reaches_share(
        as_text, lambda texts: texts.str.match(EMAIL_VALUE), 0.5 if EMAIL_NAME.search(lowered) else 0.9
    ):
        return ColumnSpec(name, "email", missing_share)
    if lowered in JOB_TITLE_FIELDS:
        return ColumnSpec(name, "job_title", missing_share, categories=_top_categories(values))

    numeric = _numeric_column(column)
    if numeric is not None:
        return numeric

    assert as_text is not None
    looks_dated = (
        DATE_NAME.search(lowered) is not None
        or _reaches_share(as_text, lambda texts: texts.str.match(ISO_DATE_TEXT), 0.9)
        or _reaches_share(as_text, lambda texts: texts.str.strip().str.match(NUMERIC_DATE_TEXT), 0.9)
    )
    if looks_dated:
        date_format, date_warning = infer_date_format(values)
        dates = to_datetime(column.series.where(column.present), date_format)
        if date_format is not None and _parse_share(dates, column.present) >= TYPE_PARSE_SHARE:
            if date_warning:
                warnings.append(f"{name}: {date_warning}")
            return ColumnSpec(name, "datetime", missing_share, date_format=date_format)

    unique_count, present_count = column.unique_count, column.present_count
    if unique_count > 50 and unique_count / present_count > 0.5:
        if not column.chosen:
            return DroppedColumn(name, f"identifier-like text: {unique_count} distinct values in {present_count} rows")
        _overruled(column, f"free text ({unique_count} distinct values in {present_count} rows)", warnings)
    return ColumnSpec(name, "categorical", missing_share, categories=_top_categories(values))


def _numeric_column(column: _Column) -> ColumnSpec | None:
    """A numeric column: a number dtype, or text of which TYPE_PARSE_SHARE parses as numbers."""
    if not column.numeric_dtype and not _reaches_share(
        column.values, lambda part: to_numeric(part).notna(), TYPE_PARSE_SHARE
    ):
        return None
    numeric = to_numeric(column.series)
    if not column.numeric_dtype and _parse_share(numeric, column.present) < TYPE_PARSE_SHARE:
        return None
    return ColumnSpec(
        column.name,
        "numeric",
        column.missing_share,
        minimum=float(numeric.min()),
        maximum=float(numeric.max()),
        skew=_skew(numeric),
    )


# Type tests read growing heads of a column first: misses there often settle it at once.
SHARE_HEAD_ROWS = (500, 4000)


def _reaches_share(values: pd.Series, test: Callable[[pd.Series], pd.Series], share: float) -> bool:
    """Whether at least `share` of `values` pass `test` (exactly), reading heads of the column first.

    When a head alone holds more misses than the whole column may have, the rest is not
    read: the text columns of a wide upload are settled in a few hundred values.
    """
    allowed_misses = (1.0 - share) * len(values)
    for size in (*SHARE_HEAD_ROWS, len(values)):
        head = values.iloc[:size]
        misses = int((~test(head).fillna(False).astype(bool)).sum())
        if misses > allowed_misses:
            return False
        if len(head) == len(values):
            return len(values) > 0
    return False


def _is_blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _skew(numbers: pd.Series) -> float | None:
    skew = cast(float, numbers.dropna().skew())  # a float Series' skewness (NaN when undefined)
    return None if pd.isna(skew) else round(float(skew), 4)


def _top_tags(values: pd.Series) -> tuple[str, ...]:
    """The most frequent elements of a list column (in at least MIN_TAG_ROWS rows), most frequent first."""
    counts: Counter[str] = Counter()
    for tags in values.map(tag_set):
        if tags:
            counts.update(tags)
    frequent = sorted((tag for tag, count in counts.items() if count >= MIN_TAG_ROWS), key=lambda t: (-counts[t], t))
    return tuple(frequent[:MAX_TAGS_KEPT])


def _top_categories(values: pd.Series) -> tuple[str, ...]:
    counts = values.astype(str).value_counts()
    return tuple(counts.index[:MAX_CATEGORIES_KEPT])
