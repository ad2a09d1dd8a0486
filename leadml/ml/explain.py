"""Global feature importance, mapped back to the input columns the CRM sends.

Model-native where the estimator has it (forest impurity importances, linear
coefficients on standardised inputs), permutation importance on the raw input columns
otherwise. Engineered columns (e-mail domain, seniority, date parts) and one-hot columns
are summed into the input column they came from.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

PERMUTATION_SAMPLE_ROWS = 2000


def transformed_sources(pipeline: Pipeline) -> list[tuple[str, ...]]:
    """Return, for each column entering the estimator, the input column(s) it came from."""
    engineer = pipeline.named_steps["features"]
    preprocess = pipeline.named_steps["preprocess"]
    sources: list[tuple[str, ...]] = []
    for name, transformer, columns in preprocess.transformers_:
        if name == "remainder" or transformer == "drop":
            continue
        if name == "num":
            sources.extend(engineer.sources_of_[column] for column in columns)
            continue
        encoder = transformer.named_steps["encode"]
        if hasattr(encoder, "categories_") and encoder.__class__.__name__ == "OneHotEncoder":
            output_names = encoder.get_feature_names_out(columns)
            # Each output is "<column>_<category>"; the longest column prefix owns it.
            ordered = sorted(columns, key=len, reverse=True)
            for output in output_names:
                owner = next(column for column in ordered if str(output).startswith(f"{column}_"))
                sources.append(engineer.sources_of_[owner])
        else:
            sources.extend(engineer.sources_of_[column] for column in columns)
    if "select" in pipeline.named_steps:
        support = pipeline.named_steps["select"].get_support()
        sources = [source for source, kept in zip(sources, support) if kept]
    return sources


def _native_weights(pipeline: Pipeline) -> tuple[np.ndarray, str] | None:
    estimator = pipeline.named_steps["model"]
    if hasattr(estimator, "feature_importances_"):
        return np.asarray(estimator.feature_importances_, dtype=float), "model_native:impurity"
    scaler_is_standard = any(
        name == "num"
        and "scale" in getattr(transformer, "named_steps", {})
        and transformer.named_steps["scale"].__class__.__name__ == "StandardScaler"
        for name, transformer, _ in pipeline.named_steps["preprocess"].transformers_
        if name != "remainder"
    )
    if hasattr(estimator, "coef_") and scaler_is_standard:
        return np.abs(np.ravel(estimator.coef_)), "model_native:coefficients"
    return None


def feature_importance(
    pipeline: Pipeline,
    features: pd.DataFrame,
    target: np.ndarray,
    *,
    scoring: str,
    random_state: int = 42,
) -> tuple[list[tuple[str, float]], str]:
    """Return (input column, share of importance) pairs, largest first, and the method."""
    input_columns = [column.name for column in pipeline.named_steps["features"].schema.columns]
    native = _native_weights(pipeline)
    totals: dict[str, float] = defaultdict(float)
    if native is not None:
        weights, method = native
        for sources, weight in zip(transformed_sources(pipeline), weights):
            # An interaction's weight is shared by the columns it multiplies.
            for source in sources:
                totals[source] += float(weight) / len(sources)
    else:
        method = "permutation"
        sample = features
        sample_target = target
        if len(features) > PERMUTATION_SAMPLE_ROWS:
            rng = np.random.default_rng(random_state)
            index = rng.choice(len(features), PERMUTATION_SAMPLE_ROWS, replace=False)
            sample, sample_target = features.iloc[index], target[index]
        result = permutation_importance(
            pipeline, sample[input_columns], sample_target, scoring=scoring, n_repeats=5, random_state=random_state
        )
        for column, weight in zip(input_columns, result.importances_mean):
            # A column whose shuffling helps the score carries no signal: weight 0, not negative.
            totals[column] = max(float(weight), 0.0)
    total = sum(totals.values())
    ranked = sorted(
        ((column, round(totals.get(column, 0.0) / total, 6) if total > 0 else 0.0) for column in input_columns),
        key=lambda pair: pair[1],
        reverse=True,
    )
    return ranked, method
