"""The persisted unit of a model version: fitted pipeline plus what prediction needs.

`ModelBundle.prepare` validates raw records against the feature schema (wrong types are
refused, unknown and missing fields and out-of-range values become warnings) and
`ModelBundle.predict` scores them.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from leadml.ml.errors import InputError
from leadml.ml.types import ColumnSpec, FeatureSchema, is_classification


@dataclass
class PreparedRecords:
    frame: pd.DataFrame
    warnings: list[list[str]]


@dataclass
class ModelBundle:
    model_type: str
    algorithm: str
    pipeline: Pipeline
    schema: FeatureSchema
    trained_at: str
    # Lead models: the calibrated wrapper whose probabilities are served; `pipeline` is
    # the fitted pipeline inside it (what explanations read).
    calibrator: Any = None
    feature_importance: list[tuple[str, float]] = field(default_factory=list)
    explanation_method: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    # Percentiles 0..100 of held-out predictions: a score's rank among trained-on customers.
    score_quantiles: list[float] = field(default_factory=list)
    # Training held out rows whose split position (leadml.ml.split) is below this.
    holdout_threshold: float | None = None
    holdout_key: str | None = None  # what the split hashed (leadml.ml.split.HoldoutSplit.key)

    @property
    def classification(self) -> bool:
        return is_classification(self.model_type)

    def prepare(self, records: Sequence[Mapping[str, Any]], *, lenient: bool = False) -> PreparedRecords:
        """Validate records and return the frame to score with per-record warnings.

        `lenient` reads a value of the wrong type as missing (with a warning) instead of
        refusing the record: for scoring stored rows, never for requests.
        """
        known = set(self.schema.names) | {dropped.name for dropped in self.schema.dropped}
        placeholders = {value.strip().lower() for value in self.placeholders}
        rows: list[dict[str, Any]] = []
        warnings: list[list[str]] = []
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise InputError(f"record {index} must be a JSON object", field="data", row=index)
            record_warnings: list[str] = []
            unknown = sorted(str(key) for key in record if key not in known)
            if unknown:
                record_warnings.append(f"ignored unknown fields: {', '.join(unknown)}")
            cleaned: dict[str, Any] = {}
            missing: list[str] = []
            for column in self.schema.columns:
                value = record.get(column.name)
                if _is_missing(value, placeholders):
                    missing.append(column.name)
                    cleaned[column.name] = None
                    continue
                try:
                    cleaned[column.name] = _validated_value(column, value, index, record_warnings)
                except InputError as error:
                    if not lenient:
                        raise
                    record_warnings.append(f"unreadable, read as missing: {error.message}")
                    cleaned[column.name] = None
            if missing:
                record_warnings.append(f"missing fields imputed as in training: {', '.join(missing)}")
            rows.append(cleaned)
            warnings.append(record_warnings)
        frame = pd.DataFrame.from_records(rows, columns=list(self.schema.names))
        return PreparedRecords(frame=frame, warnings=warnings)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Values the model was trained to read as missing ("Select", "unknown", ...)."""
        options = getattr(self.pipeline.named_steps["features"], "options", None)
        return options.missing_values if options is not None else ()

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the positive-class probability (leads) or the predicted value (CLV)."""
        if self.classification:
            scorer = self.calibrator if self.calibrator is not None else self.pipeline
            return scorer.predict_proba(frame)[:, 1]
        # A lifetime value below zero means nothing; the regressors may extrapolate there.
        return np.clip(self.pipeline.predict(frame), 0.0, None)

    def percentile(self, value: float) -> float:
        """Return the share (0..100) of held-out predictions at or below this value."""
        if not self.score_quantiles:
            return float("nan")
        position = bisect_right(self.score_quantiles, value)
        return 100.0 * position / len(self.score_quantiles)


def _is_missing(value: Any, placeholders: set[str]) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip() or value.strip().lower() in placeholders
    if placeholders and isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        text = str(int(number)) if number.is_integer() else str(number)
        return text in placeholders
    return False


def _validated_value(column: ColumnSpec, value: Any, index: int, warnings: list[str]) -> Any:
    name = column.name
    if isinstance(value, (dict, list)):
        raise InputError(f"field '{name}' must be a single value, got a {type(value).__name__}", field=name, row=index)
    if column.kind == "numeric":
        number = _as_number(value)
        if number is None:
            raise InputError(f"field '{name}' must be a number, got {value!r}", field=name, row=index)
        if column.minimum is not None and column.maximum is not None and not (
            column.minimum <= number <= column.maximum
        ):
            warnings.append(
                f"outlier: {name}={number:g} is outside the training range [{column.minimum:g}, {column.maximum:g}]"
            )
        return number
    if column.kind == "datetime":
        if not _parses_as_date(value):
            raise InputError(f"field '{name}' must be a date (YYYY-MM-DD or ISO 8601), got {value!r}", field=name, row=index)
        return value
    return str(value) if not isinstance(value, str) else value


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _parses_as_date(value: Any) -> bool:
    if isinstance(value, datetime):
        return True
    if not isinstance(value, str):
        return False
    try:
        pd.Timestamp(value)
    except (ValueError, TypeError):
        return False
    return True
