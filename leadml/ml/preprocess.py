"""Stateless preprocessing of a few records: what `POST /preprocess` answers.

The same feature engineering and ColumnTransformer a model's pipeline uses, fitted on
the records sent (there is no stored model to apply), so a tenant can see exactly what
an option does to their data before training with it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_selection import SelectKBest, f_classif, f_regression, mutual_info_classif, mutual_info_regression

from leadml.ml.errors import ConfigError, DataError
from leadml.ml.nested import flatten_records
from leadml.ml.features import FeatureEngineer, replace_placeholders, resolve_feature_options
from leadml.ml.pipeline import PREPROCESSING_KEYS, build_preprocessor, resolve_preprocessing
from leadml.ml.quality import quality_report
from leadml.ml.schema import infer_schema
from leadml.ml.targets import encode_target
from leadml.ml.types import LEAD_CONVERSION, MODEL_TYPES, FeatureOptions, is_classification

CONFIG_KEYS = (*PREPROCESSING_KEYS, "preprocessing", "feature_engineering", "missing_values", "target", "model_type",
               "positive_values")


def preprocess_records(records: Sequence[Mapping[str, Any]], config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Engineer, impute, encode, scale (and select, given a target) the records as `config` says.

    `config` takes the preprocessing options flat (as the original service did) or under
    `preprocessing`, plus `feature_engineering` / `missing_values`; feature selection
    needs `target` (a column of the records) and `model_type`.
    """
    config = dict(config or {})
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown config option(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(CONFIG_KEYS)}",
            field=f"config.{unknown[0]}",
        )
    flat = {key: config[key] for key in PREPROCESSING_KEYS if key in config}
    nested = config.get("preprocessing") or {}
    if not isinstance(nested, Mapping):
        raise ConfigError("config.preprocessing must be an object", field="config.preprocessing")
    preprocessing = resolve_preprocessing({**nested, **flat})
    engineering = config.get("feature_engineering") or {}
    if not isinstance(engineering, Mapping):
        raise ConfigError("config.feature_engineering must be an object", field="config.feature_engineering")
    engineering = dict(engineering)
    if "missing_values" in config:
        engineering.setdefault("missing_values", config["missing_values"])
    options = resolve_feature_options(engineering)
    target_name = config.get("target")
    if target_name is not None and not isinstance(target_name, str):
        raise ConfigError("config.target must be a column name", field="config.target")
    try:
        return _preprocess(records, config, preprocessing, options, target_name)
    except (ValueError, OverflowError) as error:  # what sklearn refuses about these particular records
        raise DataError(f"these records cannot be preprocessed with this config: {error}", field="data") from error


def _preprocess(
    records: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any],
    preprocessing: dict[str, Any],
    options: FeatureOptions,
    target_name: str | None,
) -> dict[str, Any]:
    frame = pd.DataFrame.from_records(flatten_records(list(records)))
    original_shape = [int(frame.shape[0]), int(frame.shape[1])]
    frame = replace_placeholders(frame, options.missing_values)
    model_type = config.get("model_type") or LEAD_CONVERSION
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"config.model_type must be one of {', '.join(MODEL_TYPES)}", field="config.model_type")
    labels = None
    if target_name is not None:
        if target_name not in frame.columns:
            raise ConfigError(f"config.target names column {target_name!r}, which the data lacks", field="config.target")
        labels = encode_target(
            frame.pop(target_name), model_type=model_type, positive_values=config.get("positive_values")
        )
    if preprocessing["feature_selection"] != "none" and (labels is None or labels.dropna().nunique() < 2):
        raise ConfigError(
            "feature_selection scores columns against a target: send config.target naming a column "
            "with at least two distinct values",
            field="config.target",
        )

    schema = infer_schema(frame, drop_constant=False)
    if not schema.columns:
        raise ConfigError("no usable columns: every column is an identifier, personal data or empty", field="data")
    engineer = FeatureEngineer(schema, options).fit(frame)
    preprocessor = build_preprocessor(engineer, preprocessing, rare_category_count=1)
    engineered = engineer.transform(frame)
    matrix = preprocessor.fit_transform(engineered)
    names = [str(name) for name in preprocessor.get_feature_names_out()]
    selection = None
    if preprocessing["feature_selection"] != "none":
        assert labels is not None
        matrix, selection = _select(matrix, names, labels, preprocessing, is_classification(model_type))
        names = selection["kept"]

    processed = pd.DataFrame(matrix, columns=names).astype(float)
    return {
        "processed_data": [
            {name: _plain(value) for name, value in row.items()} for row in processed.to_dict("records")
        ],
        "quality_report": quality_report(frame, labels, model_type=model_type),
        "original_shape": original_shape,
        "processed_shape": [int(processed.shape[0]), int(processed.shape[1])],
        "feature_names": names,
        "preprocessing": preprocessing,
        "feature_engineering": engineer.explain(),
        "dropped_columns": [{"name": d.name, "reason": d.reason} for d in schema.dropped],
        "feature_selection": selection,
    }


def _select(
    matrix: np.ndarray, names: list[str], labels: pd.Series, preprocessing: dict[str, Any], classification: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """The matrix's best `k` columns against the labelled rows' target, and what the selection scored."""
    keep = labels.notna().to_numpy()
    if preprocessing["feature_selection"] == "k_best":
        score_func: Any = f_classif if classification else f_regression
    else:
        base = mutual_info_classif if classification else mutual_info_regression
        score_func = lambda X, y: base(X, y, random_state=0)  # noqa: E731
    k = preprocessing["k"] if preprocessing["k"] < len(names) else "all"
    selector = SelectKBest(score_func=score_func, k=k).fit(matrix[keep], labels[keep].to_numpy())
    support = selector.get_support()
    selection = {
        "method": preprocessing["feature_selection"],
        "k": preprocessing["k"],
        "scores": {name: _plain(score) for name, score in zip(names, selector.scores_)},
        "kept": [name for name, kept in zip(names, support) if kept],
    }
    return matrix[:, support], selection


def _plain(value: Any) -> float | None:
    number = float(value)
    return None if not np.isfinite(number) else round(number, 6)
