"""Data-quality summary of a training table (SPEC §3)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from leadml.ml.features import to_numeric
from leadml.ml.types import is_classification


def quality_report(features: pd.DataFrame, labels: pd.Series, *, model_type: str) -> dict[str, Any]:
    """Summarise rows, missing values, constant columns, duplicates, target and leakage."""
    row_count = len(features)
    as_text = features.astype(str).where(features.notna(), None)
    missing_share = {
        str(name): round(float(features[name].isna().mean()), 4) if row_count else 0.0 for name in features.columns
    }
    constant = [str(name) for name in features.columns if features[name].dropna().astype(str).nunique() <= 1]
    duplicate_rows = int(as_text.duplicated().sum()) if row_count else 0
    labelled = labels.dropna()

    report: dict[str, Any] = {
        "rows": row_count,
        "columns": len(features.columns),
        "labelled_rows": int(len(labelled)),
        "unlabelled_rows": int(row_count - len(labelled)),
        "missing_share": missing_share,
        "constant_columns": constant,
        "duplicate_rows": duplicate_rows,
        "leakage_suspects": _leakage_suspects(features, labels),
    }
    if is_classification(model_type):
        positives = int((labelled == 1).sum())
        report["target"] = {
            "positive": positives,
            "negative": int(len(labelled) - positives),
            "positive_rate": round(positives / len(labelled), 4) if len(labelled) else None,
        }
    else:
        described = labelled.describe() if len(labelled) else pd.Series(dtype=float)
        report["target"] = {
            key: (None if pd.isna(described.get(key)) else round(float(described.get(key)), 4))
            for key in ("mean", "std", "min", "25%", "50%", "75%", "max")
        } | {"zero_share": round(float((labelled == 0).mean()), 4) if len(labelled) else None}
    return report


def _leakage_suspects(features: pd.DataFrame, labels: pd.Series) -> list[dict[str, str]]:
    """Columns that are the target again: equal to it, or a number perfectly correlated with it."""
    labelled = labels.notna()
    if labelled.sum() < 2:
        return []
    target = labels[labelled].astype(float)
    suspects = []
    for name in features.columns:
        column = features.loc[labelled, name]
        numbers = to_numeric(column)
        if numbers.notna().all() and numbers.nunique() > 1 and target.nunique() > 1:
            correlation = float(np.corrcoef(numbers.to_numpy(), target.to_numpy())[0, 1])
            if abs(correlation) > 0.999:
                suspects.append({"column": str(name), "reason": "equal to the target (correlation 1.0)"})
                continue
        # A category that maps one-to-one onto the target is the target in another spelling.
        if column.notna().all() and column.astype(str).nunique() == target.nunique():
            pairs = pd.DataFrame({"value": column.astype(str).to_numpy(), "target": target.to_numpy()})
            if (pairs.groupby("value")["target"].nunique() == 1).all():
                suspects.append({"column": str(name), "reason": "determines the target exactly"})
    return suspects
