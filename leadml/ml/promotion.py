"""Champion/challenger: does a newly trained model beat the active one on the same rows?

Both models score the challenger's held-out test rows (raw records, so each applies its
own fitted pipeline). Lead models compare ROC-AUC and the challenger must be higher by
an absolute margin; lifetime-value models compare MAE and the challenger must be lower
by a relative margin. With no active model the challenger wins; when either cannot
score the rows, nothing changes automatically.

An active model that reads columns the challenger excluded as leakage suspects is not
compared like for like: its held-out score counts what those columns leak, values a
new lead does not have yet. The comparison is then made on an honest basis, the active
model scoring the same rows with those columns blanked (as they are at scoring time,
before the sales team fills them in), and the challenger needs no margin over it: the
active model's own standing is what is in doubt. The note says so and gives both scores.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, roc_auc_score

from leadml.ml.bundle import ModelBundle
from leadml.ml.transactions import FEATURE_COLUMNS as TRANSACTION_COLUMNS
from leadml.ml.types import is_classification

DEFAULT_MIN_IMPROVEMENT = {"lead_conversion": 0.002, "customer_lifetime_value": 0.01}
# Fewer rows held out by both versions than this and the comparison uses all of the new one's.
MIN_COMPARISON_ROWS = 30


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
    rows_note: str = ""
    # Set when the active version reads columns this version excluded as leakage suspects.
    leakage_note: str = ""
    champion_score_without_suspects: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def holdout_score(bundle: ModelBundle, features: pd.DataFrame, target: np.ndarray) -> float:
    """ROC-AUC (leads) or MAE (lifetime value) of one model on raw held-out rows.

    Values the model cannot read (text in a numeric column, say) count as missing, as
    imputation would treat them, instead of refusing the row as a request would.
    """
    records = features.astype(object).where(features.notna(), None).to_dict("records")
    predictions = bundle.predict(bundle.prepare(records, lenient=True).frame)
    if bundle.classification:
        return float(roc_auc_score(target, predictions))
    return float(mean_absolute_error(target, predictions))


def decide_promotion(
    *,
    challenger: ModelBundle,
    holdout: tuple[pd.DataFrame, np.ndarray, np.ndarray],
    champion: ModelBundle | None,
    champion_version: int | None = None,
    min_improvement: float | None = None,
) -> PromotionDecision:
    """Compare the challenger with the champion on held-out rows neither trained on.

    The challenger's held-out rows are narrowed to those the champion held out too (its
    split threshold), when the champion records one.
    """
    features, target, positions = holdout
    classification = is_classification(challenger.model_type)
    metric = "roc_auc" if classification else "mae"
    margin = DEFAULT_MIN_IMPROVEMENT[challenger.model_type] if min_improvement is None else float(min_improvement)
    common: dict[str, Any] = {"metric": metric, "min_improvement": margin, "champion_version": champion_version}
    if champion is None:
        score = _score_or_none(challenger, features, target)
        return PromotionDecision(
            promote=True, reason="no active model of this type", challenger_score=score, rows=len(target), **common
        )
    if _reads_transactions(challenger) != _reads_transactions(champion):
        # Each would be served requests shaped for the other (a transaction log, or
        # per-customer totals): every field imputed, an answer anyway. The CRM must change first.
        kinds = ("a transaction log", "per-customer fields")
        new_kind, old_kind = kinds if _reads_transactions(challenger) else kinds[::-1]
        return PromotionDecision(
            promote=False,
            reason=f"the new version reads {new_kind}, the active version {champion_version} {old_kind}: the CRM's "
            "requests for one do not fit the other; kept as candidate: activate it by hand once the CRM sends "
            f"{new_kind}",
            challenger_score=_score_or_none(challenger, features, target), rows=int(len(target)), **common,
        )
    features, target, common["rows_note"] = _comparison_rows(challenger, champion, features, target, positions)
    rows = int(len(target))
    try:
        challenger_score = holdout_score(challenger, features, target)
    except Exception as error:  # noqa: BLE001 - any failure means "cannot compare", never a failed job
        return PromotionDecision(
            promote=False, reason=f"the new version could not score its held-out rows ({error}); kept as candidate",
            challenger_score=None, rows=rows, **common,
        )
    try:
        champion_score = holdout_score(champion, features, target)
    except Exception as error:  # noqa: BLE001
        return PromotionDecision(
            promote=False,
            reason=f"the active version {champion_version} could not score the held-out rows ({error}); "
            "kept as candidate: compare and activate by hand",
            challenger_score=round(challenger_score, 6), rows=rows, **common,
        )
    suspects = [name for name in getattr(challenger, "leakage_excluded", ()) if name in champion.schema.names]
    if suspects:
        return _honest_decision(
            challenger, champion, features, target, suspects, challenger_score, champion_score, rows, common
        )
    return _margin_decision(classification, challenger_score, champion_score, rows, common)


def _reads_transactions(bundle: ModelBundle) -> bool:
    """Whether the version was trained on a customer table built from a transaction log (most of its columns)."""
    return 2 * len(set(TRANSACTION_COLUMNS) & set(bundle.schema.names)) > len(TRANSACTION_COLUMNS)


def _comparison_rows(
    challenger: ModelBundle, champion: ModelBundle, features: pd.DataFrame, target: np.ndarray, positions: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray, str]:
    """(features, target, a note for the decision): the rows both versions held out, when that can be told."""
    classification = is_classification(challenger.model_type)
    threshold = getattr(champion, "holdout_threshold", None)
    champion_key = getattr(champion, "holdout_key", None)
    same_split = champion_key is not None and champion_key == getattr(challenger, "holdout_key", None)
    if threshold is None or not same_split:
        return features, target, (
            "the active version split its rows differently (another id column or seed), so some of these rows "
            "may be ones it trained on; compared on all of the new version's held-out rows"
        )
    unseen = positions < threshold
    if unseen.sum() >= MIN_COMPARISON_ROWS and (not classification or len(np.unique(target[unseen])) == 2):
        return features[unseen], target[unseen], "held out by both versions"
    return features, target, "too few rows held out by both; compared on all of the new version's held-out rows"


def _margin_decision(
    classification: bool, challenger_score: float, champion_score: float, rows: int, common: dict[str, Any]
) -> PromotionDecision:
    """Promote when the challenger beats the champion by the margin (ROC-AUC gain, relative MAE drop)."""
    margin, champion_version = common["min_improvement"], common["champion_version"]
    if classification:
        gain = challenger_score - champion_score
        promote = gain >= margin
        comparison = (
            f"ROC-AUC {challenger_score:.4f} vs active version {champion_version} {champion_score:.4f} "
            f"on the same {rows} held-out rows ({gain:+.4f}; needed +{margin:g})"
        )
    else:
        relative = (champion_score - challenger_score) / champion_score if champion_score > 0 else 0.0
        promote = champion_score > 0 and relative >= margin
        comparison = (
            f"MAE {challenger_score:.4f} vs active version {champion_version} {champion_score:.4f} "
            f"on the same {rows} held-out rows ({-relative:+.2%}; needed -{margin:.2%})"
        )
    verdict = "beats the active model" if promote else "does not beat the active model by the margin; kept as candidate"
    return PromotionDecision(
        promote=promote,
        reason=f"{verdict}: {comparison}",
        challenger_score=round(challenger_score, 6),
        champion_score=round(champion_score, 6),
        rows=rows,
        **common,
    )


def _honest_decision(
    challenger: ModelBundle,
    champion: ModelBundle,
    features: pd.DataFrame,
    target: np.ndarray,
    suspects: list[str],
    challenger_score: float,
    champion_score: float,
    rows: int,
    common: dict[str, Any],
) -> PromotionDecision:
    """Compare with the active model scoring these rows without the leakage suspects it reads."""
    classification = challenger.classification
    champion_version = common["champion_version"]
    blanked = features.copy()
    for name in suspects:
        if name in blanked.columns:
            blanked[name] = None
    try:
        honest = holdout_score(champion, blanked, target)
    except Exception:  # noqa: BLE001 - then the plain scores are all there is
        honest = None
    shown = ", ".join(suspects)
    metric = "ROC-AUC" if classification else "MAE"
    note = (
        f"the active version {champion_version} reads {shown}, which this version excludes as leakage suspects "
        f"(recorded after the outcome, so missing when a new record is scored): its {metric} on these rows, "
        f"{champion_score:.4f}, counts what they leak"
    )
    better = (lambda a, b: a >= b) if classification else (lambda a, b: a <= b)
    if honest is None or better(challenger_score, honest):
        basis = "" if honest is None else f"; without them it scores {honest:.4f}"
        reason = (
            f"promoted as the honest model: {metric} {challenger_score:.4f} on the same {rows} held-out rows; "
            f"{note}{basis}"
        )
        promote = True
    else:
        reason = (
            f"kept as candidate: {metric} {challenger_score:.4f} is worse than the active version's {honest:.4f} "
            f"even with the suspects blanked; {note}. Activate it by hand to serve an honest model anyway"
        )
        promote = False
    return PromotionDecision(
        promote=promote,
        reason=reason,
        challenger_score=round(challenger_score, 6),
        champion_score=round(champion_score, 6),
        rows=rows,
        leakage_note=note,
        champion_score_without_suspects=None if honest is None else round(honest, 6),
        **common,
    )


def _score_or_none(bundle: ModelBundle, features: pd.DataFrame, target: np.ndarray) -> float | None:
    try:
        return round(holdout_score(bundle, features, target), 6)
    except Exception:  # noqa: BLE001 - informational only
        return None
