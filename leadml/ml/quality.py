"""Data-quality summary of a training table (SPEC §3)."""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from leadml.ml.features import infer_schema
from leadml.ml.parsing import to_numeric
from leadml.ml.types import is_classification


def quality_report(features: pd.DataFrame, labels: pd.Series | None, *, model_type: str) -> dict[str, Any]:
    """Summarise rows, missing values, constant columns, duplicates, target and leakage.

    Without labels (describing records, not training data) the target and leakage parts
    are left out.
    """
    row_count = len(features)
    as_text = features.astype(str).where(features.notna(), None)
    missing_share = {
        str(name): round(float(features[name].isna().mean()), 4) if row_count else 0.0 for name in features.columns
    }
    constant = [str(name) for name in features.columns if features[name].dropna().astype(str).nunique() <= 1]
    duplicate_rows = int(as_text.duplicated().sum()) if row_count else 0
    schema = infer_schema(features, drop_constant=False)
    report: dict[str, Any] = {
        "rows": row_count,
        "columns": len(features.columns),
        "missing_share": missing_share,
        "constant_columns": constant,
        "duplicate_rows": duplicate_rows,
        "column_kinds": {column.name: column.kind for column in schema.columns},
        "dropped_columns": [{"name": d.name, "reason": d.reason} for d in schema.dropped],
    }
    if labels is None:
        return report
    labelled = labels.dropna()
    report["labelled_rows"] = int(len(labelled))
    report["unlabelled_rows"] = int(row_count - len(labelled))
    report["leakage_suspects"] = _leakage_suspects(features, labels, model_type=model_type)
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


# Names of fields that are only known once the outcome is: the length of the sales call,
# when or why a deal closed. They predict conversion because they record it.
POST_OUTCOME_NAME = re.compile(
    r"^(duration|call_duration|call_length|talk_time)$"
    r"|(^|_)(closed|close|won|lost|converted|conversion|churned|cancelled)_(at|on|date|time|reason)$"
    r"|(^|_)(loss|lost|close|closing|win|won)_reason$"
    r"|^(outcome|result|deal_stage|stage|status_reason)$",
    re.IGNORECASE,
)
# A single column that alone ranks the outcome this well is almost certainly the outcome.
LEAKAGE_AUC = 0.95
LEAKAGE_CORRELATION = 0.95
LEAKAGE_SAMPLE_ROWS = 50_000


def _single_column_auc(column: pd.Series, target: pd.Series) -> float | None:
    """ROC-AUC of one column alone (either direction), categories by out-of-fold target rate."""
    numbers = to_numeric(column)
    if numbers.notna().mean() >= 0.98:
        values = numbers.fillna(numbers.median())
    else:
        text = column.astype(str).where(column.notna(), "<missing>")
        if text.nunique() > 0.5 * len(text):
            return None  # identifier-like text: an in-sample rate per value would always look perfect
        # Each half's category rates come from the other half, so rare values cannot fake signal.
        halves = np.arange(len(text)) % 2 == 0
        values = pd.Series(np.nan, index=text.index)
        prior = float(target.mean())
        for fit_half in (halves, ~halves):
            rates = target[fit_half].groupby(text[fit_half]).mean()
            values[~fit_half] = text[~fit_half].map(rates).fillna(prior).to_numpy()
    if values.nunique() < 2:
        return None
    auc = float(roc_auc_score(target, values))
    return max(auc, 1.0 - auc)


def _leakage_suspects(features: pd.DataFrame, labels: pd.Series, *, model_type: str) -> list[dict[str, Any]]:
    """Columns that look like the outcome itself, or like something known only after it."""
    labelled = labels.notna()
    target = labels[labelled].astype(float)
    if len(target) > LEAKAGE_SAMPLE_ROWS:
        target = target.sample(LEAKAGE_SAMPLE_ROWS, random_state=0)
    suspects: list[dict[str, Any]] = []
    for name in features.columns:
        if POST_OUTCOME_NAME.search(str(name)):
            suspects.append(
                {
                    "column": str(name),
                    "reason": "known only after the outcome (e.g. call duration, close date or reason)",
                    "score": None,
                }
            )
            continue
        if len(target) < 20 or target.nunique() < 2:
            continue
        column = features.loc[target.index, name]
        if is_classification(model_type):
            auc = _single_column_auc(column, target)
            if auc is not None and auc > LEAKAGE_AUC:
                suspects.append(
                    {
                        "column": str(name),
                        "reason": f"alone predicts the target almost perfectly (ROC-AUC {auc:.3f} > {LEAKAGE_AUC})",
                        "score": round(auc, 4),
                    }
                )
            continue
        numbers = to_numeric(column)
        present = numbers.notna()
        if present.mean() < 0.98 or numbers[present].nunique() < 2:
            continue
        correlation = float(spearmanr(numbers[present], target[present]).statistic)
        if np.isfinite(correlation) and abs(correlation) > LEAKAGE_CORRELATION:
            suspects.append(
                {
                    "column": str(name),
                    "reason": f"alone ranks the target almost perfectly (Spearman {correlation:.3f})",
                    "score": round(abs(correlation), 4),
                }
            )
    return suspects
