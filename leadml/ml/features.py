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
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from leadml.ml.rules import email_domain, is_free_mail, seniority_level
from leadml.ml.types import ColumnSpec, DroppedColumn, FeatureSchema

IDENTIFIER_NAME = re.compile(r"(^|_)(id|uuid|guid|key)$|^(id|uuid|guid)_", re.IGNORECASE)
EMAIL_NAME = re.compile(r"(^|_)e?mail(_address)?$", re.IGNORECASE)
EMAIL_VALUE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
JOB_TITLE_NAMES = {"job_title", "title", "jobtitle", "position", "role"}
PERSONAL_TEXT_NAMES = {"name", "first_name", "last_name", "full_name", "phone", "phone_number", "address"}
DATE_NAME = re.compile(r"(_at|_date|_on|^date|_time)$", re.IGNORECASE)
MAX_CATEGORIES_KEPT = 50

# Share of a column's non-missing values that must parse for it to count as that type.
TYPE_PARSE_SHARE = 0.98


def to_numeric(series: pd.Series) -> pd.Series:
    """Coerce a column to floats; booleans become 0/1 and unparseable values NaN."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    if pd.api.types.is_numeric_dtype(series):
        return series.astype(float)
    mapped = series.map(lambda value: float(value) if isinstance(value, bool) else value)
    return pd.to_numeric(mapped, errors="coerce")


def to_datetime(series: pd.Series) -> pd.Series:
    """Parse a column of ISO-like dates to UTC timestamps; unparseable values become NaT."""
    return pd.to_datetime(series, errors="coerce", utc=True, format="mixed")


def _parse_share(parsed: pd.Series, present: pd.Series) -> float:
    count = int(present.sum())
    return float(parsed[present].notna().sum()) / count if count else 0.0


def infer_schema(frame: pd.DataFrame, *, keep: Iterable[str] | None = None) -> FeatureSchema:
    """Return the feature schema of a training frame (target column already removed).

    `keep` names columns the caller wants used even where inference would drop them
    as identifiers or free text.
    """
    keep_set = set(keep or ())
    columns: list[ColumnSpec] = []
    dropped: list[DroppedColumn] = []
    row_count = len(frame)
    for name in frame.columns:
        series = frame[name]
        present = series.notna() & series.astype(str).str.strip().ne("")
        present_count = int(present.sum())
        missing_share = round(1.0 - present_count / row_count, 4) if row_count else 1.0
        if present_count == 0:
            dropped.append(DroppedColumn(name, "empty: no values"))
            continue
        values = series[present]
        unique_count = values.astype(str).nunique()
        lowered = str(name).lower()

        if name not in keep_set and IDENTIFIER_NAME.search(lowered):
            dropped.append(DroppedColumn(name, "identifier (name looks like an id)"))
            continue
        if name not in keep_set and lowered in PERSONAL_TEXT_NAMES:
            dropped.append(DroppedColumn(name, "personal data (names, phones and addresses are not used)"))
            continue
        if unique_count == 1:
            dropped.append(DroppedColumn(name, "constant: a single value"))
            continue

        as_text = values.astype(str)
        # Judge by the values: "email_interactions" is a count, not an address.
        email_share = as_text.str.match(EMAIL_VALUE).mean()
        if email_share >= 0.9 or (EMAIL_NAME.search(lowered) and email_share >= 0.5):
            columns.append(ColumnSpec(name, "email", missing_share))
            continue
        if lowered in JOB_TITLE_NAMES:
            columns.append(ColumnSpec(name, "job_title", missing_share, categories=_top_categories(values)))
            continue

        numeric = to_numeric(series)
        if _parse_share(numeric, present) >= TYPE_PARSE_SHARE:
            columns.append(
                ColumnSpec(
                    name,
                    "numeric",
                    missing_share,
                    minimum=float(numeric.min()),
                    maximum=float(numeric.max()),
                )
            )
            continue

        if DATE_NAME.search(lowered) or as_text.str.match(r"^\d{4}-\d{2}-\d{2}").mean() >= 0.9:
            dates = to_datetime(series.where(present))
            if _parse_share(dates, present) >= TYPE_PARSE_SHARE:
                columns.append(ColumnSpec(name, "datetime", missing_share))
                continue

        if name not in keep_set and unique_count > 50 and unique_count / present_count > 0.5:
            dropped.append(
                DroppedColumn(name, f"identifier-like text: {unique_count} distinct values in {present_count} rows")
            )
            continue
        columns.append(ColumnSpec(name, "categorical", missing_share, categories=_top_categories(values)))
    return FeatureSchema(columns=tuple(columns), dropped=tuple(dropped))


def _top_categories(values: pd.Series) -> tuple[str, ...]:
    counts = values.astype(str).value_counts()
    return tuple(counts.index[:MAX_CATEGORIES_KEPT])


def _as_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


class FeatureEngineer(BaseEstimator, TransformerMixin):
    """Turn raw records (a DataFrame or a list of dicts) into model-ready columns.

    Output columns are either numeric (floats, NaN for missing) or categorical (strings,
    NaN for missing); `numeric_columns_` and `categorical_columns_` name them and
    `source_of_` maps each back to the input column it came from.
    """

    def __init__(self, schema: FeatureSchema, reference_time: datetime | None = None) -> None:
        self.schema = schema
        self.reference_time = reference_time

    def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureEngineer:
        self.numeric_columns_: list[str] = []
        self.categorical_columns_: list[str] = []
        self.source_of_: dict[str, str] = {}
        for column in self.schema.columns:
            for derived, is_numeric in self._derived_names(column):
                (self.numeric_columns_ if is_numeric else self.categorical_columns_).append(derived)
                self.source_of_[derived] = column.name
        return self

    @staticmethod
    def _derived_names(column: ColumnSpec) -> list[tuple[str, bool]]:
        name = column.name
        if column.kind == "numeric":
            return [(name, True)]
        if column.kind == "categorical":
            return [(name, False)]
        if column.kind == "datetime":
            return [(f"{name}__age_days", True), (f"{name}__month", True), (f"{name}__weekday", True)]
        if column.kind == "email":
            return [(f"{name}__free_mail", True), (f"{name}__domain", False)]
        if column.kind == "job_title":
            return [(f"{name}__seniority", True), (name, False)]
        raise ValueError(f"unknown column kind {column.kind!r}")

    def transform(self, X: pd.DataFrame | list[Mapping[str, Any]]) -> pd.DataFrame:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame.from_records(list(X))
        now = pd.Timestamp(self.reference_time or datetime.now(timezone.utc))
        if now.tzinfo is None:
            now = now.tz_localize("UTC")
        missing = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        out: dict[str, pd.Series] = {}
        for column in self.schema.columns:
            name = column.name
            raw = frame[name] if name in frame.columns else missing
            if column.kind == "numeric":
                out[name] = to_numeric(raw)
            elif column.kind == "categorical":
                out[name] = raw.map(_as_text).astype(object)
            elif column.kind == "datetime":
                dates = to_datetime(raw)
                out[f"{name}__age_days"] = (now - dates).dt.total_seconds() / 86400.0
                out[f"{name}__month"] = dates.dt.month.astype(float)
                out[f"{name}__weekday"] = dates.dt.weekday.astype(float)
            elif column.kind == "email":
                domains = raw.map(email_domain)
                out[f"{name}__free_mail"] = domains.map(
                    lambda domain: np.nan if domain is None else float(is_free_mail(domain))
                ).astype(float)
                out[f"{name}__domain"] = domains.astype(object)
            elif column.kind == "job_title":
                titles = raw.map(_as_text)
                out[f"{name}__seniority"] = titles.map(
                    lambda title: np.nan if title is None else float(seniority_level(title))
                ).astype(float)
                out[name] = titles.astype(object)
        result = pd.DataFrame(out, index=frame.index)
        # Categorical columns must hold str or NaN only: the encoders refuse None.
        for name in self.categorical_columns_:
            result[name] = result[name].where(result[name].notna(), np.nan)
        return result[self.numeric_columns_ + self.categorical_columns_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.numeric_columns_ + self.categorical_columns_, dtype=object)
