"""Turn a few prepared records into the estimator's input matrix without pandas.

Applied to one record, a fitted pipeline spends ~10 ms in pandas and in the column
transformer's per-call checks (the one-hot encoder rebuilds its lookup of a thousand
e-mail domains on every call); the arithmetic itself takes microseconds.
`CompiledPipeline` reads the fitted steps once and then maps records straight to the
matrix the estimator takes:

- feature engineering runs per value, through the same helpers `FeatureEngineer` uses;
- each numeric column's imputation and scaling are replayed from the fitted statistics,
  in the steps' own order of operations (histogram boosting compares inputs with bin
  edges taken from training values, so even the last bit of a float must match);
- each categorical column's encoding is a table from category to output block, built
  by passing every known category (and one unseen value) through the fitted encoder.

Small requests use it; large batches go through the pipeline, where pandas' vectorised
work wins. `compile_pipeline` returns None for pipelines it does not know (transaction
BTYD features, custom steps), and callers then use the pipeline.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from leadml.ml.dates import EARLIEST_DATE, ISO_DATE_TEXT, LATEST_DATE, to_datetime
from leadml.ml.features import FeatureEngineer, _as_text, interaction_name
from leadml.ml.nested import tag_column, tag_set
from leadml.ml.vocabulary import email_domain, is_free_mail, seniority_level

# Below this many records the compiled path is faster than the pipeline's vectorised one.
COMPILED_MAX_ROWS = 1000
_UNSEEN = "\x00leadml-unseen\x00"


class CompiledPipeline:
    """The transform steps of a fitted pipeline, as per-record Python and numpy."""

    def __init__(self, pipeline: Pipeline) -> None:
        engineer: FeatureEngineer = pipeline.named_steps["features"]
        self._engineer = engineer
        self._options = engineer._options
        # (column, output index, value when missing, [(operation, operand), ...])
        self._numeric_plans: list[tuple[str, int, float, list[tuple[str, float]]]] = []
        self._categorical_plans: list[tuple[str, int, dict[str, np.ndarray], np.ndarray]] = []
        width = 0
        for name, transformer, columns in pipeline.named_steps["preprocess"].transformers_:
            if name == "remainder" or transformer == "drop":
                continue
            if name == "num":
                width = self._plan_numeric(transformer, list(columns), width)
            elif name == "cat":
                width = self._plan_categorical(transformer, list(columns), width)
            else:
                raise ValueError(f"unknown column transformer {name!r}")
        self.width = width
        self._selected: np.ndarray | None = None
        if "select" in pipeline.named_steps:
            self._selected = np.flatnonzero(pipeline.named_steps["select"].get_support())

    def _plan_numeric(self, transformer: Pipeline, columns: list[str], start: int) -> int:
        steps = [step for _, step in transformer.steps]
        if not steps or not isinstance(steps[0], SimpleImputer) or len(steps) > 2:
            raise ValueError("numeric steps other than impute, then an optional scaler")
        statistics = np.asarray(steps[0].statistics_, dtype=float)
        scaler = steps[1] if len(steps) == 2 else None
        for position, column in enumerate(columns):
            operations = _scaler_operations(scaler, position)
            # The scaler applies to the imputed value too.
            missing = _apply(float(statistics[position]), operations)
            self._numeric_plans.append((column, start + position, missing, operations))
        return start + len(columns)

    def _plan_categorical(self, transformer: Pipeline, columns: list[str], start: int) -> int:
        encoder = transformer.steps[-1][1]
        if not isinstance(encoder, (OneHotEncoder, OrdinalEncoder)):
            raise ValueError("categorical encoder other than one-hot/ordinal")
        categories = [list(map(str, known)) for known in encoder.categories_]
        rows = max(len(known) for known in categories) + 1
        catalog = pd.DataFrame(
            {
                column: [known[min(i, len(known) - 1)] for i in range(rows - 1)] + [_UNSEEN]
                for column, known in zip(columns, categories)
            },
            dtype=object,
        )
        encoded = np.asarray(transformer.transform(catalog), dtype=float)
        widths = list(getattr(encoder, "_n_features_outs", [1] * len(columns)))
        if sum(widths) != encoded.shape[1]:
            raise ValueError("cannot tell the encoder's output widths")
        offset = 0
        for column, known, block_width in zip(columns, categories, widths):
            block = encoded[:, offset : offset + block_width]
            table = {category: block[i] for i, category in enumerate(known)}
            self._categorical_plans.append((column, start + offset, table, block[-1]))
            offset += block_width
        return start + encoded.shape[1]

    def matrix(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Return the estimator input for records as `ModelBundle.prepare` cleaned them."""
        now = self._engineer.reference_time or datetime.now(timezone.utc)
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        out = np.empty((len(records), self.width), dtype=float)
        for row, record in enumerate(records):
            values = self._engineered(record, now)
            for column, index, missing, operations in self._numeric_plans:
                value = values[column]
                out[row, index] = missing if value is None else _apply(value, operations)
            for column, index, table, unseen in self._categorical_plans:
                value = values[column]
                block = table.get("missing" if value is None else value, unseen)
                out[row, index : index + len(block)] = block
        return out if self._selected is None else out[:, self._selected]

    def _engineered(self, record: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """One record's engineered columns: floats or None, strings or None."""
        options = self._options
        engineer = self._engineer
        values: dict[str, Any] = {}
        numbers: dict[str, float | None] = {}
        for column in engineer.schema.columns:
            name = column.name
            raw = record.get(name)
            if column.kind == "numeric":
                number = _finite(raw)
                numbers[name] = number
                if name in engineer.log_columns_:
                    values[f"{name}__log"] = None if number is None else _finite(math.log1p(max(number, 0.0)))
                else:
                    values[name] = number
            elif column.kind == "categorical":
                values[name] = _as_text(raw)
            elif column.kind == "tags":
                tags = tag_set(raw)
                for tag in column.categories:
                    values[tag_column(name, tag)] = None if tags is None else float(tag in tags)
            elif column.kind == "datetime":
                if options.date_features:
                    date_format = getattr(column, "date_format", None)
                    moment = _parse_date(raw, date_format) if raw is not None else None
                    age = month = weekday = None
                    if moment is not None:
                        age = (now - moment).total_seconds() / 86400.0
                        month, weekday = float(moment.month), float(moment.weekday())
                    values |= {f"{name}__age_days": age, f"{name}__month": month, f"{name}__weekday": weekday}
            elif column.kind == "email":
                if options.email_features:
                    domain = email_domain(raw)
                    values[f"{name}__free_mail"] = None if domain is None else float(is_free_mail(domain))
                    values[f"{name}__domain"] = domain
            elif column.kind == "job_title":
                title = _as_text(raw)
                if options.seniority:
                    values[f"{name}__seniority"] = None if title is None else float(seniority_level(title))
                values[name] = title
        for left, right in options.interactions:
            a, b = numbers[left], numbers[right]
            values[interaction_name(left, right)] = None if a is None or b is None else _finite(a * b)
        return values


def compile_pipeline(pipeline: Pipeline) -> CompiledPipeline | None:
    """Return the compiled transform of a fitted pipeline, or None if it has unknown steps."""
    engineer = pipeline.named_steps.get("features")
    if not isinstance(engineer, FeatureEngineer) or engineer.uses_btyd or "preprocess" not in pipeline.named_steps:
        return None
    try:
        return CompiledPipeline(pipeline)
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


def _scaler_operations(scaler: Any, position: int) -> list[tuple[str, float]]:
    """The scaler's arithmetic on one column, in the order its `transform` does it."""
    if scaler is None:
        return []
    if isinstance(scaler, StandardScaler):
        operations = []
        if scaler.with_mean:
            operations.append(("sub", float(scaler.mean_[position])))
        if scaler.with_std:
            operations.append(("div", float(scaler.scale_[position])))
        return operations
    if isinstance(scaler, MinMaxScaler) and not scaler.clip:
        return [("mul", float(scaler.scale_[position])), ("add", float(scaler.min_[position]))]
    raise ValueError(f"unknown scaler {scaler.__class__.__name__}")


def _apply(value: float, operations: list[tuple[str, float]]) -> float:
    for operation, operand in operations:
        if operation == "sub":
            value = value - operand
        elif operation == "div":
            value = value / operand
        elif operation == "mul":
            value = value * operand
        else:
            value = value + operand
    return value


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, str):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@lru_cache(maxsize=4096)
def _parse_date(value: Any, date_format: str | None = None) -> datetime | None:
    """Parse one value exactly as `to_datetime` parses a column in `date_format` (cached: dates repeat).

    ISO 8601 text, what the CRM sends and every format accepts, is read by the standard
    library (naive times are UTC, as `to_datetime(utc=True)` reads them); anything else
    goes through `to_datetime` itself.
    """
    if isinstance(value, str) and ISO_DATE_TEXT.match(value.strip()) and "," not in value:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
        if moment is not None:
            moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
            return moment if EARLIEST_DATE <= moment < LATEST_DATE else None
    parsed = to_datetime(pd.Series([value], dtype=object), date_format).iloc[0]
    return None if pd.isna(parsed) else parsed.to_pydatetime()
