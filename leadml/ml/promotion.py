"""Champion/challenger: does a newly trained model beat the active one on the same rows?

Both models score the challenger's held-out test rows (raw records, so each applies its
own fitted pipeline). Lead models compare ROC-AUC and the challenger must be higher by
an absolute margin; lifetime-value models compare MAE and the challenger must be lower
by a relative margin. With no active model, or one that cannot score these rows, the
challenger wins.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, roc_auc_score

from leadml.ml.bundle import ModelBundle
from leadml.ml.errors import InputError
from leadml.ml.types import is_classification

DEFAULT_MIN_IMPROVEMENT = {"lead_conversion": 0.002, "customer_lifetime_value": 0.01}


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    metric: str
    min_improvement: float
    challenger_score: float | None
    champion_score: float | None = None
    champion_version: int | None = None
    rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def holdout_score(bundle: ModelBundle, features: pd.DataFrame, target: np.ndarray) -> float:
    """ROC-AUC (leads) or MAE (lifetime value) of one model on raw held-out rows."""
    records = features.astype(object).where(features.notna(), None).to_dict("records")
    predictions = bundle.predict(bundle.prepare(records).frame)
    if bundle.classification:
        return float(roc_auc_score(target, predictions))
    return float(mean_absolute_error(target, predictions))


def decide_promotion(
    *,
    challenger: ModelBundle,
    holdout: tuple[pd.DataFrame, np.ndarray],
    champion: ModelBundle | None,
    champion_version: int | None = None,
    min_improvement: float | None = None,
) -> PromotionDecision:
    """Compare the challenger with the champion on the challenger's held-out rows."""
    features, target = holdout
    classification = is_classification(challenger.model_type)
    metric = "roc_auc" if classification else "mae"
    margin = DEFAULT_MIN_IMPROVEMENT[challenger.model_type] if min_improvement is None else float(min_improvement)
    challenger_score = holdout_score(challenger, features, target)
    common = {
        "metric": metric,
        "min_improvement": margin,
        "challenger_score": round(challenger_score, 6),
        "champion_version": champion_version,
        "rows": int(len(target)),
    }
    if champion is None:
        return PromotionDecision(promote=True, reason="no active model of this type", **common)
    try:
        champion_score = holdout_score(champion, features, target)
    except (InputError, KeyError, ValueError) as error:
        return PromotionDecision(
            promote=True,
            reason=f"the active version {champion_version} cannot score these rows ({error}); the new version replaces it",
            **common,
        )
    common["champion_score"] = round(champion_score, 6)
    if classification:
        gain = challenger_score - champion_score
        promote = gain >= margin
        comparison = (
            f"ROC-AUC {challenger_score:.4f} vs active version {champion_version} {champion_score:.4f} "
            f"on the same {len(target)} held-out rows ({gain:+.4f}; needed +{margin:g})"
        )
    else:
        relative = (champion_score - challenger_score) / champion_score if champion_score > 0 else 0.0
        promote = champion_score > 0 and relative >= margin
        comparison = (
            f"MAE {challenger_score:.4f} vs active version {champion_version} {champion_score:.4f} "
            f"on the same {len(target)} held-out rows ({-relative:+.2%}; needed -{margin:.2%})"
        )
    verdict = "beats the active model" if promote else "does not beat the active model by the margin; kept as candidate"
    return PromotionDecision(promote=promote, reason=f"{verdict}: {comparison}", champion_score=common.pop("champion_score"), **common)
