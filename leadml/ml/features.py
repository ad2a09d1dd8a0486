"""Column inference and feature engineering over raw CRM records.

`infer_schema` decides, per column of the training data, what kind of input it is and
which columns are dropped (identifiers, raw e-mails, free text, empty or constant
columns) and why. `FeatureEngineer` is the first step of every fitted pipeline: it turns
raw records into model-ready columns (numbers coerced, dates into age/month/weekday,
e-mails into a free-mail flag and domain, job titles into a seniority level), so the
pipeline saved with a model applies at prediction exactly what training learned.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from leadml.ml.btyd import BTYDFeatures
from leadml.ml.errors import ConfigError
from leadml.ml.nested import is_list, tag_column, tag_set
from leadml.ml.parsing import to_numeric
from leadml.ml.types import ColumnSpec, DroppedColumn, FeatureOptions, FeatureSchema
from leadml.ml.vocabulary import JOB_TITLE_FIELDS, email_domain, is_free_mail, seniority_level

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

# Share of a column's non-missing values that must parse for it to count as that type.
TYPE_PARSE_SHARE = 0.98


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
    row_count = len(frame)
    for name in frame.columns:
        series = frame[name]
        # Numbers need no text: converting wide numeric uploads to text was most of the scan's time.
        numeric_dtype = pd.api.types.is_numeric_dtype(series.dtype)
        if numeric_dtype:
            present = series.notna()
        else:
            present = series.notna() & ~series.map(_is_blank).astype(bool)
        present_count = int(present.sum())
        missing_share = round(1.0 - present_count / row_count, 4) if row_count else 1.0
        if present_count == 0:
            dropped.append(DroppedColumn(name, "empty: no values"))
            if name in keep_set:
                warnings.append(f"{name}: chosen, but it has no values; left out")
            continue
        values = series[present]
        if values.map(lambda value: isinstance(value, Mapping)).any():
            dropped.append(DroppedColumn(name, "nested objects: only one level of a JSON object is flattened"))
            continue
        if values.map(is_list).any():
            tags = _top_tags(values)
            if tags:
                columns.append(ColumnSpec(name, "tags", missing_share, categories=tags))
            else:
                dropped.append(
                    DroppedColumn(name, f"list of values: none is in at least {MIN_TAG_ROWS} rows to learn from")
                )
            continue
        unique_count = int(values.nunique()) if numeric_dtype else values.astype(str).nunique()
        lowered = str(name).lower()
        chosen = name in keep_set

        def overruled(heuristic: str, name: str = name) -> None:
            warnings.append(f"{name}: chosen, so kept, although it looks like {heuristic}")

        id_named = IDENTIFIER_NAME.search(lowered) is not None
        if id_named and is_identifier_like(unique_count, present_count):
            if not chosen:
                dropped.append(
                    DroppedColumn(
                        name,
                        f"identifier (name looks like an id and its values hardly repeat: {unique_count} distinct "
                        f"in {present_count} rows)",
                    )
                )
                continue
            overruled(f"an identifier ({unique_count} distinct values in {present_count} rows)")
        if lowered in PERSONAL_TEXT_NAMES:
            if not chosen:
                dropped.append(DroppedColumn(name, "personal data (names, phones and addresses are not used)"))
                continue
            overruled("personal data")
        if unique_count == 1 and (drop_constant or chosen):
            if not chosen:
                dropped.append(DroppedColumn(name, "constant: a single value"))
                continue
            overruled("a constant (a single value)")
        if id_named:
            # Codes, not quantities: landing page 1203 is not "more" than page 17.
            if not chosen:
                warnings.append(
                    f"{name}: the name looks like an id, but its {unique_count} values repeat "
                    f"({present_count / unique_count:.1f} rows each on average): kept as a category"
                )
            columns.append(ColumnSpec(name, "categorical", missing_share, categories=_top_categories(values)))
            continue

        as_text = values.astype(str) if not numeric_dtype else None
        # Judge by the values: "email_interactions" is a count, not an address.
        if as_text is not None and _reaches_share(
            as_text, lambda texts: texts.str.match(EMAIL_VALUE), 0.5 if EMAIL_NAME.search(lowered) else 0.9
        ):
            columns.append(ColumnSpec(name, "email", missing_share))
            continue
        if lowered in JOB_TITLE_FIELDS:
            columns.append(ColumnSpec(name, "job_title", missing_share, categories=_top_categories(values)))
            continue

        if numeric_dtype or _reaches_share(values, lambda part: to_numeric(part).notna(), TYPE_PARSE_SHARE):
            numeric = to_numeric(series)
            if numeric_dtype or _parse_share(numeric, present) >= TYPE_PARSE_SHARE:
                columns.append(
                    ColumnSpec(
                        name,
                        "numeric",
                        missing_share,
                        minimum=float(numeric.min()),
                        maximum=float(numeric.max()),
                        skew=_skew(numeric),
                    )
                )
                continue

        assert as_text is not None
        looks_dated = (
            DATE_NAME.search(lowered) is not None
            or _reaches_share(as_text, lambda texts: texts.str.match(ISO_DATE_TEXT), 0.9)
            or _reaches_share(as_text, lambda texts: texts.str.strip().str.match(NUMERIC_DATE_TEXT), 0.9)
        )
        if looks_dated:
            date_format, date_warning = infer_date_format(values)
            dates = to_datetime(series.where(present), date_format)
            if date_format is not None and _parse_share(dates, present) >= TYPE_PARSE_SHARE:
                columns.append(ColumnSpec(name, "datetime", missing_share, date_format=date_format))
                if date_warning:
                    warnings.append(f"{name}: {date_warning}")
                continue

        if unique_count > 50 and unique_count / present_count > 0.5:
            if not chosen:
                dropped.append(
                    DroppedColumn(
                        name, f"identifier-like text: {unique_count} distinct values in {present_count} rows"
                    )
                )
                continue
            overruled(f"free text ({unique_count} distinct values in {present_count} rows)")
        columns.append(ColumnSpec(name, "categorical", missing_share, categories=_top_categories(values)))
    return FeatureSchema(columns=tuple(columns), dropped=tuple(dropped), warnings=tuple(warnings))


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
    skew = numbers.dropna().skew()
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


def _as_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


FEATURE_OPTION_KEYS = (
    "date_features",
    "email_features",
    "seniority",
    "log_transform",
    "skew_threshold",
    "interactions",
    "missing_values",
    "btyd",
)
# Customer-table columns (leadml.ml.transactions) the BG/NBD and Gamma-Gamma models read.
BTYD_INPUTS = ("frequency", "age_at_last_days", "tenure_days", "avg_repeat_spend")
BTYD_DESCRIPTIONS = {
    "btyd_expected_purchases": "BG/NBD: expected purchase days over the horizon",
    "btyd_p_alive": "BG/NBD: probability the customer is still active",
    "btyd_expected_value": "Gamma-Gamma: expected value of one purchase",
    "btyd_expected_spend": "expected purchases × expected value: the BTYD lifetime-value estimate",
}


def resolve_feature_options(raw: Mapping[str, Any] | None) -> FeatureOptions:
    """Validate `training_config.feature_engineering` and return the options."""
    if raw is None:
        return FeatureOptions()
    if not isinstance(raw, Mapping):
        raise ConfigError("feature_engineering must be an object", field="feature_engineering")
    unknown = sorted(set(raw) - set(FEATURE_OPTION_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown feature_engineering option(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(FEATURE_OPTION_KEYS)}",
            field=f"feature_engineering.{unknown[0]}",
        )
    values: dict[str, Any] = {}
    for key in ("date_features", "email_features", "seniority", "log_transform", "btyd"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"feature_engineering.{key} must be true or false", field=f"feature_engineering.{key}")
            values[key] = raw[key]
    if "skew_threshold" in raw:
        threshold = raw["skew_threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
            raise ConfigError(
                "feature_engineering.skew_threshold must be a number >= 0", field="feature_engineering.skew_threshold"
            )
        values["skew_threshold"] = float(threshold)
    if "interactions" in raw:
        pairs = raw["interactions"]
        if not isinstance(pairs, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(name, str) and name for name in pair)
            for pair in pairs
        ):
            raise ConfigError(
                'feature_engineering.interactions must be a list of column-name pairs, e.g. [["a", "b"]]',
                field="feature_engineering.interactions",
            )
        values["interactions"] = tuple(dict.fromkeys((a, b) for a, b in pairs))  # each pair once
    if "missing_values" in raw:
        placeholders = raw["missing_values"]
        if not isinstance(placeholders, list) or not all(isinstance(value, (str, int, float)) for value in placeholders):
            raise ConfigError(
                'feature_engineering.missing_values must be a list of placeholder values, e.g. ["Select", "unknown"]',
                field="feature_engineering.missing_values",
            )
        values["missing_values"] = tuple(str(value) for value in placeholders)
    return FeatureOptions(**values)


def replace_placeholders(frame: pd.DataFrame, placeholders: Iterable[str]) -> pd.DataFrame:
    """Return `frame` with placeholder values ("Select", "unknown", ...) set to missing.

    Matching ignores case and surrounding spaces; numbers match their text ("-1", "999").
    """
    wanted = {str(value).strip().lower() for value in placeholders}
    if not wanted:
        return frame

    def is_placeholder(value: Any) -> bool:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return False
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value).strip().lower() in wanted

    cleaned = frame.copy()
    for name in cleaned.columns:
        hits = cleaned[name].map(is_placeholder)
        if hits.any():
            cleaned[name] = cleaned[name].astype(object).mask(hits, None)
    return cleaned


def interaction_name(left: str, right: str) -> str:
    return f"{left}__x__{right}"


class FeatureEngineer(BaseEstimator, TransformerMixin):
    """Turn raw records (a DataFrame or a list of dicts) into model-ready columns.

    Output columns are either numeric (floats, NaN for missing) or categorical (strings,
    NaN for missing); `numeric_columns_` and `categorical_columns_` name them,
    `sources_of_` maps each back to the input column(s) it came from and `explain()`
    says how every engineered column is made.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        options: FeatureOptions | None = None,
        reference_time: datetime | None = None,
    ) -> None:
        self.schema = schema
        self.options = options
        self.reference_time = reference_time

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Versions pickled before feature options existed: no options, one source per column.
        state.setdefault("options", None)
        if "source_of_" in state and "sources_of_" not in state:
            state["sources_of_"] = {name: (source,) for name, source in state.pop("source_of_").items()}
        if "sources_of_" in state:
            state.setdefault("log_columns_", [])
            state.setdefault("btyd_", None)
            state.setdefault("descriptions_", {name: "" for name in state["sources_of_"]})
        super().__setstate__(state)

    @property
    def _options(self) -> FeatureOptions:
        return self.options or FeatureOptions()

    def fit(self, X: pd.DataFrame | None = None, y: Any = None) -> FeatureEngineer:
        options = self._options
        by_name = {column.name: column for column in self.schema.columns}
        for pair in options.interactions:
            for name in pair:
                column = by_name.get(name)
                if column is None or column.kind != "numeric":
                    usable = ", ".join(c.name for c in self.schema.columns if c.kind == "numeric")
                    raise ConfigError(
                        f"feature_engineering.interactions names {name!r}, which is not a numeric input column; "
                        f"numeric columns: {usable}",
                        field="feature_engineering.interactions",
                    )
        self.numeric_columns_: list[str] = []
        self.categorical_columns_: list[str] = []
        self.sources_of_: dict[str, tuple[str, ...]] = {}
        self.descriptions_: dict[str, str] = {}
        self.log_columns_: list[str] = [
            column.name
            for column in self.schema.columns
            if options.log_transform
            and column.kind == "numeric"
            and column.minimum is not None
            and column.minimum >= 0
            and column.skew is not None
            and column.skew > options.skew_threshold
        ]
        for column in self.schema.columns:
            for derived, is_numeric, description in self._derived(column):
                self._add(derived, is_numeric, (column.name,), description)
        for left, right in options.interactions:
            self._add(interaction_name(left, right), True, (left, right), f"{left} × {right}")
        self.btyd_: BTYDFeatures | None = None
        if self.uses_btyd:
            for name, description in BTYD_DESCRIPTIONS.items():
                self._add(name, True, BTYD_INPUTS, f"{description} ({options.btyd_horizon_days} days)")
            if X is not None:
                inputs = pd.DataFrame({name: to_numeric(X[name]) for name in BTYD_INPUTS}, index=X.index)
                self.btyd_ = BTYDFeatures(horizon_days=options.btyd_horizon_days).fit(inputs)
        return self

    @property
    def from_transactions(self) -> bool:
        """Whether the schema is a customer table built from a transaction log (with its horizon)."""
        numeric = {column.name for column in self.schema.columns if column.kind == "numeric"}
        return bool(self._options.btyd_horizon_days and set(BTYD_INPUTS) <= numeric)

    @property
    def uses_btyd(self) -> bool:
        """Buy-till-you-die features apply to customer tables built from transaction logs, unless switched off."""
        return bool(self._options.btyd and self.from_transactions)

    def _add(self, name: str, is_numeric: bool, sources: tuple[str, ...], description: str) -> None:
        if name in self.sources_of_:
            raise ConfigError(
                f"feature {name!r} would be made twice (from {', '.join(self.sources_of_[name])} and from "
                f"{', '.join(sources)}); rename the input column or switch the feature off",
                field="feature_engineering",
            )
        (self.numeric_columns_ if is_numeric else self.categorical_columns_).append(name)
        self.sources_of_[name] = sources
        self.descriptions_[name] = description

    def _derived(self, column: ColumnSpec) -> list[tuple[str, bool, str]]:
        options = self._options
        name = column.name
        if column.kind == "numeric":
            if name in self.log_columns_:
                return [(f"{name}__log", True, f"log(1 + {name}); skewed (skewness {column.skew:.2f})")]
            return [(name, True, "number as given")]
        if column.kind == "categorical":
            return [(name, False, "category")]
        if column.kind == "tags":
            return [
                (tag_column(name, tag), True, f"1 if {tag!r} is among the values of {name}, else 0")
                for tag in column.categories
            ]
        if column.kind == "datetime":
            if not options.date_features:
                return []
            return [
                (f"{name}__age_days", True, f"days from {name} to the time of scoring"),
                (f"{name}__month", True, f"month of {name} (1-12)"),
                (f"{name}__weekday", True, f"weekday of {name} (0=Monday)"),
            ]
        if column.kind == "email":
            if not options.email_features:
                return []
            return [
                (f"{name}__free_mail", True, f"1 if {name} is at a free-mail provider (gmail, yahoo, ...)"),
                (f"{name}__domain", False, f"domain of {name}"),
            ]
        if column.kind == "job_title":
            if not options.seniority:
                return [(name, False, "category")]
            return [
                (f"{name}__seniority", True, f"seniority read from {name}: 0 unknown .. 5 C-level/owner"),
                (name, False, "category"),
            ]
        raise ValueError(f"unknown column kind {column.kind!r}")

    def explain(self) -> dict[str, Any]:
        """Describe what feature engineering did, for the training report."""
        return {
            "options": self._options.as_dict(),
            "features": [
                {
                    "feature": name,
                    "from": list(self.sources_of_[name]),
                    "kind": "numeric" if name in self.numeric_columns_ else "categorical",
                    "how": self.descriptions_[name],
                }
                for name in self.numeric_columns_ + self.categorical_columns_
            ],
            "log_transformed": list(self.log_columns_),
            "interactions": [interaction_name(a, b) for a, b in self._options.interactions],
            "btyd": self._btyd_summary(),
            "unused_inputs": [
                column.name
                for column in self.schema.columns
                if not any(column.name in sources for sources in self.sources_of_.values())
            ],
        }

    def _btyd_summary(self) -> dict[str, Any] | None:
        btyd = getattr(self, "btyd_", None)
        if btyd is None:
            return None
        return {
            "horizon_days": self._options.btyd_horizon_days,
            "fitted": bool(getattr(btyd, "fit_ok_", False)),
            "message": getattr(btyd, "fit_message_", ""),
            "bgnbd_params": getattr(btyd, "bgnbd_params_", None),
            "gamma_gamma_params": getattr(btyd, "gamma_gamma_params_", None),
        }

    def transform(self, X: pd.DataFrame | list[Mapping[str, Any]]) -> pd.DataFrame:
        options = self._options
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame.from_records(list(X))
        frame = replace_placeholders(frame, options.missing_values)
        now = pd.Timestamp(self.reference_time or datetime.now(timezone.utc))
        if now.tzinfo is None:
            now = now.tz_localize("UTC")
        missing = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        raw_numbers: dict[str, pd.Series] = {}
        out: dict[str, pd.Series] = {}
        for column in self.schema.columns:
            name = column.name
            raw = frame[name] if name in frame.columns else missing
            if column.kind == "numeric":
                numbers = to_numeric(raw)
                raw_numbers[name] = numbers
                if name in self.log_columns_:
                    out[f"{name}__log"] = np.log1p(numbers.clip(lower=0.0))
                else:
                    out[name] = numbers
            elif column.kind == "categorical":
                out[name] = raw.map(_as_text).astype(object)
            elif column.kind == "tags":
                sets = raw.map(tag_set, na_action="ignore")
                for tag in column.categories:
                    out[tag_column(name, tag)] = sets.map(
                        lambda tags, tag=tag: float(tag in tags) if isinstance(tags, frozenset) else np.nan
                    ).astype(float)
            elif column.kind == "datetime":
                if not options.date_features:
                    continue
                dates = to_datetime(raw, column.date_format)
                out[f"{name}__age_days"] = (now - dates).dt.total_seconds() / 86400.0
                out[f"{name}__month"] = dates.dt.month.astype(float)
                out[f"{name}__weekday"] = dates.dt.day_of_week.astype(float)
            elif column.kind == "email":
                if not options.email_features:
                    continue
                domains = raw.map(email_domain)
                out[f"{name}__free_mail"] = domains.map(
                    lambda domain: np.nan if not isinstance(domain, str) else float(is_free_mail(domain))
                ).astype(float)
                out[f"{name}__domain"] = domains.astype(object)
            elif column.kind == "job_title":
                titles = raw.map(_as_text)
                if options.seniority:
                    out[f"{name}__seniority"] = titles.map(
                        lambda title: np.nan if not isinstance(title, str) else float(seniority_level(title))
                    ).astype(float)
                out[name] = titles.astype(object)
        for left, right in options.interactions:
            out[interaction_name(left, right)] = raw_numbers[left] * raw_numbers[right]
        if self.uses_btyd:
            if self.btyd_ is None:
                raise ValueError("FeatureEngineer must be fitted on data before it adds BTYD features")
            inputs = pd.DataFrame({name: raw_numbers[name] for name in BTYD_INPUTS}, index=frame.index)
            predicted = self.btyd_.predict_components(inputs)
            for name in BTYD_DESCRIPTIONS:
                out[name] = predicted[name]
        result = pd.DataFrame(out, index=frame.index)
        numeric = self.numeric_columns_
        # A product or logarithm that overflows is unreadable, not infinite: impute it.
        result[numeric] = result[numeric].astype(float).replace([np.inf, -np.inf], np.nan)
        # Categorical columns must hold str or NaN only: the encoders refuse None.
        for name in self.categorical_columns_:
            result[name] = result[name].where(result[name].notna(), np.nan)
        return result[self.numeric_columns_ + self.categorical_columns_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.numeric_columns_ + self.categorical_columns_, dtype=object)
