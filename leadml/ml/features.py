"""Feature engineering over raw CRM records, on the schema leadml.ml.schema inferred.

`FeatureEngineer` is the first step of every fitted pipeline: it turns raw records into
model-ready columns (numbers coerced, dates into age/month/weekday, e-mails into a
free-mail flag and domain, job titles into a seniority level), so the pipeline saved
with a model applies at prediction exactly what training learned.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype
from sklearn.base import BaseEstimator, TransformerMixin

from leadml.ml.btyd import BTYDFeatures
from leadml.ml.dates import to_datetime
from leadml.ml.errors import ConfigError
from leadml.ml.nested import tag_column, tag_set
from leadml.ml.parsing import to_numeric
from leadml.ml.types import ColumnSpec, FeatureOptions, FeatureSchema
from leadml.ml.vocabulary import email_domain, is_free_mail, seniority_level


# Below this many rows a plain `Series.map` is as quick as finding the distinct values.
DISTINCT_MAP_MIN_ROWS = 64


def map_distinct(values: pd.Series, function: Callable[[Any], Any]) -> pd.Series:
    """`values.map(function)` (an object Series), calling `function` once per distinct text.

    A CRM column repeats its values (job titles, industries, e-mail domains), so a batch
    of 10,000 rows holds a few hundred distinct ones. Only for columns of text (and
    missing values, passed to `function` one by one as they are): equal texts are the
    same value, where 1, 1.0 and True would be merged by hashing.
    """
    if len(values) >= DISTINCT_MAP_MIN_ROWS and infer_dtype(values, skipna=True) == "string":
        codes, distinct = pd.factorize(values, use_na_sentinel=True)
        if 2 * len(distinct) <= len(values):
            table = np.empty(len(distinct), dtype=object)
            table[:] = [function(value) for value in distinct]
            mapped = table[codes]
            missing = np.flatnonzero(codes < 0)
            if len(missing):
                raw = values.to_numpy(dtype=object)
                mapped[missing] = [function(value) for value in raw[missing]]
            # Built from a list, as `map` builds its result: the same dtype inferred, so
            # the same missing values (a None among texts reads as NaN, as after `map`).
            return pd.Series(mapped.tolist(), index=values.index).astype(object)
    return values.map(function).astype(object)


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
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1e300:
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
                assert options.btyd_horizon_days is not None  # uses_btyd: a customer table with its horizon
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
            raw = frame[column.name] if column.name in frame.columns else missing
            if column.kind == "numeric":
                raw_numbers[column.name] = to_numeric(raw)
                raw = raw_numbers[column.name]
            out.update(self._engineered(column, raw, now))
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

    def _engineered(self, column: ColumnSpec, raw: pd.Series, now: pd.Timestamp) -> dict[str, pd.Series]:
        """The engineered columns of one input column (`raw` already numbers for a numeric one)."""
        options = self._options
        name = column.name
        if column.kind == "numeric":
            if name in self.log_columns_:
                return {f"{name}__log": np.log1p(raw.clip(lower=0.0))}
            return {name: raw}
        if column.kind == "categorical":
            return {name: map_distinct(raw, _as_text)}
        if column.kind == "tags":
            sets = raw.map(tag_set, na_action="ignore")
            return {
                tag_column(name, tag): sets.map(
                    lambda tags, tag=tag: float(tag in tags) if isinstance(tags, frozenset) else np.nan
                ).astype(float)
                for tag in column.categories
            }
        if column.kind == "datetime" and options.date_features:
            dates = to_datetime(raw, column.date_format)
            return {
                f"{name}__age_days": (now - dates).dt.total_seconds() / 86400.0,
                f"{name}__month": dates.dt.month.astype(float),
                f"{name}__weekday": dates.dt.day_of_week.astype(float),
            }
        if column.kind == "email" and options.email_features:
            domains = raw.map(email_domain)
            free_mail = map_distinct(
                domains, lambda domain: np.nan if not isinstance(domain, str) else float(is_free_mail(domain))
            )
            return {f"{name}__free_mail": free_mail.astype(float), f"{name}__domain": domains.astype(object)}
        if column.kind == "job_title":
            titles = map_distinct(raw, _as_text)
            if not options.seniority:
                return {name: titles}
            seniority = map_distinct(
                titles, lambda title: np.nan if not isinstance(title, str) else float(seniority_level(title))
            )
            return {f"{name}__seniority": seniority.astype(float), name: titles.astype(object)}
        return {}

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.numeric_columns_ + self.categorical_columns_, dtype=object)
