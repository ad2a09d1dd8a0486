"""Data-quality summary of a training table, leakage evidence included.

Leakage is judged from evidence, not only from names. For every candidate column
(one inference would keep as a feature) the report gives:

* its power alone: ROC-AUC of the column by itself (leads; either direction, categories
  and partly-missing numbers by out-of-fold target rates) or |Spearman| (lifetime value);
* outcome vocabulary in its name or in its values (`OUTCOME_VOCABULARY`: "Closed by ...",
  "Lost to ...", "Converted to Lead", a `lead_quality` or `last_activity` field);
* whether it is filled mostly for one class only (sales teams fill a "lost reason" for
  lost deals, a "closed by" for won ones);
* (training only, leadml.ml.leakage) its share of a probe model's importance and what
  dropping it costs on cross-validation.

A column is *excluded* (a leakage suspect) when it alone predicts the target almost
perfectly, when its name says it is recorded after the outcome (`POST_OUTCOME_NAME`), or
when it carries outcome vocabulary or one-class filling *and* predicts the target well
on its own (`SUPPORTING_AUC`, `SUPPORTING_CORRELATION`; two such signs need only
`WARN_EVIDENCE_AUC`, `WARN_EVIDENCE_CORRELATION`). Weaker evidence is *warned*.
The scan reads at most `LEAKAGE_SAMPLE_ROWS` rows, vectorised where it can, so wide
uploads stay cheap.
"""
from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from leadml.ml.parsing import to_numeric
from leadml.ml.schema import infer_schema
from leadml.ml.types import FeatureSchema, is_classification

# Rows the column-kind and leakage scans read; counts (missing, constant, duplicates) use all.
QUALITY_SAMPLE_ROWS = 20_000
LEAKAGE_SAMPLE_ROWS = QUALITY_SAMPLE_ROWS
# No CRM figure (a score, a count, a revenue) comes near this. Beyond it a number is a typo
# or a sentinel, and a few of them overflow training (squares past 1e308: the scalers'
# variances, boosting's bins): training reads them as missing, the report says so.
MAX_PLAUSIBLE_NUMBER = 1e15


def implausible_numbers_blanked(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """`frame` with numbers beyond ±MAX_PLAUSIBLE_NUMBER as missing, and a warning per column that had any.

    Only numbers are looked at (texts stay texts, booleans booleans); `frame` is not changed.
    """
    blanked = frame
    warnings: dict[str, str] = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column.dtype):
            continue
        if pd.api.types.is_numeric_dtype(column.dtype):
            numbers = column.astype(float)
        elif column.dtype == object:
            kinds = column.map(type)
            numbers = pd.to_numeric(column.where(kinds.isin((int, float))), errors="coerce").astype(float)
        else:
            continue
        with np.errstate(invalid="ignore"):
            implausible = (numbers.abs() > MAX_PLAUSIBLE_NUMBER).to_numpy()
        if implausible.any():
            if blanked is frame:
                blanked = frame.copy()
            blanked[name] = column.mask(implausible)
            warnings[str(name)] = (
                f"{name}: {int(implausible.sum())} value(s) beyond ±{MAX_PLAUSIBLE_NUMBER:g} read as missing "
                f"(e.g. {float(numbers[implausible].iloc[0]):g})"
            )
    return blanked, warnings


def quality_report(
    features: pd.DataFrame,
    labels: pd.Series | None,
    *,
    model_type: str,
    trusted: Iterable[str] = (),
    implausible: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Summarise rows, missing values, constant columns, duplicates, target and leakage.

    Without labels (describing records, not training data) the target and leakage parts
    are left out. `trusted` columns are known to predate the outcome (the service built
    them from transactions before the cut-off): their evidence is shown, never a verdict.
    """
    if implausible is None:  # else `features` were blanked by the caller, who passes the warnings
        features, found = implausible_numbers_blanked(features)
        implausible = list(found.values())
    row_count = len(features)
    missing_share = {
        str(name): round(float(share), 4) if row_count else 0.0 for name, share in features.isna().mean().items()
    }
    constant = [str(name) for name in features.columns if _distinct_count(features[name]) <= 1]
    sample = _sample(features, labels)
    schema = infer_schema(sample, drop_constant=False)
    report: dict[str, Any] = {
        "rows": row_count,
        "columns": len(features.columns),
        "missing_share": missing_share,
        "constant_columns": constant,
        "duplicate_rows": _duplicate_rows(features),
        "column_kinds": {column.name: column.kind for column in schema.columns},
        "dropped_columns": [{"name": d.name, "reason": d.reason} for d in schema.dropped],
        "column_warnings": [*implausible, *schema.warnings],
    }
    if len(sample) < row_count:
        report["sampled_rows"] = len(sample)
    if labels is None:
        return report
    labelled = labels.dropna()
    report["labelled_rows"] = int(len(labelled))
    report["unlabelled_rows"] = int(row_count - len(labelled))
    evidence = leakage_evidence(features, labels, model_type=model_type, schema=schema, trusted=trusted)
    report["leakage_suspects"] = [item for item in evidence if item["verdict"] == EXCLUDE]
    report["leakage_warnings"] = [item for item in evidence if item["verdict"] == WARN]
    report["column_evidence"] = evidence
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
            key: _statistic(described, key) for key in ("mean", "std", "min", "25%", "50%", "75%", "max")
        } | {"zero_share": round(float((labelled == 0).mean()), 4) if len(labelled) else None}
    return report


def _sample(features: pd.DataFrame, labels: pd.Series | None) -> pd.DataFrame:
    """At most QUALITY_SAMPLE_ROWS rows, labelled ones first, the same every time."""
    if len(features) <= QUALITY_SAMPLE_ROWS:
        return features
    if labels is not None and labels.notna().sum() >= QUALITY_SAMPLE_ROWS:
        return features[labels.notna().to_numpy()].sample(QUALITY_SAMPLE_ROWS, random_state=0)
    return features.sample(QUALITY_SAMPLE_ROWS, random_state=0)


def _distinct_count(column: pd.Series) -> int:
    present = column.dropna()
    if pd.api.types.is_object_dtype(present.dtype):
        try:
            return int(present.nunique())
        except TypeError:  # unhashable values
            return int(present.astype(str).nunique())
    return int(present.nunique())


def _duplicate_rows(features: pd.DataFrame) -> int:
    if features.empty:
        return 0
    try:
        # One 64-bit hash per row instead of the text of every cell: wide uploads stay cheap.
        hashes = pd.util.hash_pandas_object(features, index=False)
    except TypeError:  # unhashable cell values
        hashes = features.astype(str).where(features.notna(), None).apply(tuple, axis=1)
    return int(hashes.duplicated().sum())


# --- Leakage evidence ----------------------------------------------------------------------

EXCLUDE = "exclude"
WARN = "warn"

# Names of fields that are only known once the outcome is: the length of the sales call,
# when or why a deal closed. They predict conversion because they record it.
POST_OUTCOME_NAME = re.compile(
    r"^(duration|call_duration|call_length|talk_time)$"
    r"|(^|_)(closed|close|won|lost|converted|conversion|churned|cancelled)_(at|on|date|time|reason)$"
    r"|(^|_)(loss|lost|close|closing|win|won)_reason$"
    r"|^(outcome|result|deal_stage|stage|status_reason)$",
    re.IGNORECASE,
)
# Words and phrases of the sales process's outcome: in a column's name ("lead_quality",
# "Last Notable Activity", "deal_status") or in its values ("Closed by Horizzon", "Lost to
# EINS", "Already a student", "Converted to Lead"). A phrase matches when its words appear
# in this order among the text's words ("last activity" matches "last_notable_activity").
# Extend it with the words of your own CRM; it is evidence, never a verdict on its own.
OUTCOME_VOCABULARY: tuple[str, ...] = (
    "won", "win", "lost", "lose", "closed", "converted", "conversion", "customer", "already", "signed",
    "rejected", "churned", "churn", "cancelled", "canceled", "refunded", "purchased", "enrolled",
    "deal", "status", "stage", "quality", "rating", "grade", "tag", "tags", "profile", "outcome", "result",
    "reason", "disposition", "last activity",
)
# A column alone ranks the outcome this well: almost certainly the outcome itself.
LEAKAGE_AUC = 0.95
LEAKAGE_CORRELATION = 0.95
# With outcome vocabulary or one-class filling, this much power alone is enough to exclude.
SUPPORTING_AUC = 0.70
SUPPORTING_CORRELATION = 0.50
# Below SUPPORTING_*, that evidence with at least this much power is warned (excluded with two signs).
WARN_EVIDENCE_AUC = 0.60
WARN_EVIDENCE_CORRELATION = 0.30
# Power alone worth a warning without any other evidence.
WARN_AUC = 0.85
WARN_CORRELATION = 0.80
# Filled for one class, empty for the other: the fill rates differ by at least this much.
ONE_CLASS_FILL_GAP = 0.5
# Outcome words count in values only if the rows carrying them are at least this share.
VALUE_WORD_MIN_SHARE = 0.01
# Distinct values whose words are read, most frequent first.
VALUE_WORD_MAX_VALUES = 200
# Numbers with gaps are read as this many quantile bins plus "missing".
NUMERIC_BINS = 20

TRUSTED_REASON = "built by the service from transactions on or before the cut-off: cannot record the outcome"

_WORD = re.compile(r"[a-z]+|[0-9]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def _words(text: str) -> list[str]:
    return _WORD.findall(_CAMEL.sub(" ", text).lower())


_PHRASES = tuple(tuple(_words(entry)) for entry in OUTCOME_VOCABULARY)


def outcome_words(text: str) -> list[str]:
    """The entries of OUTCOME_VOCABULARY found in a name or value (words in order)."""
    words = _words(str(text))
    found = []
    for entry, phrase in zip(OUTCOME_VOCABULARY, _PHRASES):
        position = 0
        for word in words:
            if position < len(phrase) and word == phrase[position]:
                position += 1
        if position == len(phrase):
            found.append(entry)
    return found


def leakage_evidence(
    features: pd.DataFrame,
    labels: pd.Series,
    *,
    model_type: str,
    schema: FeatureSchema | None = None,
    trusted: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Return the leakage evidence of every candidate column, with its verdict (EXCLUDE, WARN or None).

    Candidates are the columns `schema` (inferred when not given) keeps as features.
    Each item: column, kind, power (ROC-AUC alone for leads, |Spearman| for CLV),
    power_metric, name_words, value_words, value_word_share, fill_rates (per class),
    one_class_fill, post_outcome_name, verdict, reason (a sentence) and score (the
    power), excluded first, then warned, then by power.
    """
    classification = is_classification(model_type)
    trusted_set = set(trusted)
    labelled = labels.notna().to_numpy()
    target = labels[labelled].astype(float).reset_index(drop=True)
    frame = features[labelled].reset_index(drop=True)
    if len(target) > LEAKAGE_SAMPLE_ROWS:
        chosen = target.sample(LEAKAGE_SAMPLE_ROWS, random_state=0).index
        target, frame = target.loc[chosen].reset_index(drop=True), frame.loc[chosen].reset_index(drop=True)
    schema = schema or infer_schema(frame, drop_constant=False)
    kinds = {column.name: column.kind for column in schema.columns}
    usable = len(target) >= 20 and target.nunique() >= 2
    powers = _powers(frame, target, kinds, classification) if usable else {}
    groups = _outcome_groups(target, classification) if usable else None
    items = []
    for name in schema.names:
        column = frame[name]
        name_words = outcome_words(name)
        # Only categories record a process's states: "Customer Success Manager" is a title, not an outcome.
        value_words, value_share = _value_words(column) if kinds[name] == "categorical" else ([], 0.0)
        fill_rates = _fill_rates(column, groups) if groups is not None else None
        power = powers.get(name)
        item = {
            "column": str(name),
            "kind": kinds[name],
            "power": None if power is None else round(power, 4),
            "power_metric": "roc_auc" if classification else "spearman",
            "name_words": name_words,
            "value_words": value_words,
            "value_word_share": round(value_share, 4),
            "fill_rates": fill_rates,
            "one_class_fill": bool(fill_rates and max(fill_rates.values()) - min(fill_rates.values()) >= ONE_CLASS_FILL_GAP),
            "post_outcome_name": bool(POST_OUTCOME_NAME.search(str(name))),
        }
        item["verdict"], item["reason"] = judge(item, classification)
        if name in trusted_set:
            item["verdict"], item["reason"] = None, TRUSTED_REASON
        item["score"] = item["power"]
        items.append(item)
    order = {EXCLUDE: 0, WARN: 1, None: 2}
    return sorted(items, key=lambda item: (order[item["verdict"]], -(item["power"] or 0.0)))


def judge(item: dict[str, Any], classification: bool) -> tuple[str | None, str]:
    """The verdict on one column's evidence and the sentence that gives it."""
    power = item["power"]
    strong, supporting, weak_evidence, weak = (
        (LEAKAGE_AUC, SUPPORTING_AUC, WARN_EVIDENCE_AUC, WARN_AUC)
        if classification
        else (LEAKAGE_CORRELATION, SUPPORTING_CORRELATION, WARN_EVIDENCE_CORRELATION, WARN_CORRELATION)
    )
    metric = "ROC-AUC" if classification else "|Spearman|"
    alone = f"alone {metric} {power:.3f}" if power is not None else "no measurable power alone"
    signs = []
    if item["name_words"]:
        signs.append(f"outcome words in its name ({', '.join(item['name_words'])})")
    if item["value_words"]:
        signs.append(
            f"outcome words in its values ({', '.join(item['value_words'])}; "
            f"{item['value_word_share']:.0%} of rows)"
        )
    fill = item.get("fill_rates")
    if fill and item.get("one_class_fill"):
        shown = ", ".join(f"{group} {rate:.0%}" for group, rate in fill.items())
        signs.append(f"filled mostly for one outcome ({shown})")
    if item["post_outcome_name"]:
        return EXCLUDE, "known only after the outcome (e.g. call duration, close date or reason)"
    if power is not None and power > strong:
        return EXCLUDE, f"alone predicts the target almost perfectly ({alone} > {strong})"
    if signs and power is not None and power >= supporting:
        return EXCLUDE, f"{'; '.join(signs)}, and {alone} (>= {supporting})"
    # Two independent signs (outcome words in the name and in the values, say) need less power.
    if len(signs) >= 2 and power is not None and power >= weak_evidence:
        return EXCLUDE, f"{'; '.join(signs)}, and {alone} (>= {weak_evidence} with two signs)"
    if signs and power is not None and power >= weak_evidence:
        return WARN, f"{'; '.join(signs)}; {alone}"
    if power is not None and power >= weak:
        return WARN, f"strong alone ({alone} >= {weak}): check it is known before the outcome"
    return None, ""


def _outcome_groups(target: pd.Series, classification: bool) -> dict[str, np.ndarray] | None:
    """Row masks of the outcomes fill rates compare: the two classes, or zero vs positive value."""
    if classification:
        return {"converted": (target == 1).to_numpy(), "not converted": (target != 1).to_numpy()}
    zero = (target == 0).to_numpy()
    if 0.05 <= zero.mean() <= 0.95:
        return {"zero value": zero, "positive value": ~zero}
    above = (target > target.median()).to_numpy()
    return {"above median": above, "at or below median": ~above} if 0 < above.mean() < 1 else None


def _fill_rates(column: pd.Series, groups: dict[str, np.ndarray]) -> dict[str, float]:
    filled = column.notna().to_numpy(copy=True)
    if column.dtype == object:
        filled &= ~column.map(lambda value: isinstance(value, str) and not value.strip()).to_numpy(dtype=bool)
    return {group: round(float(filled[mask].mean()), 4) for group, mask in groups.items() if mask.any()}


def _statistic(described: pd.Series, key: str) -> float | None:
    value = described.get(key)
    return None if value is None or pd.isna(value) else round(float(value), 4)


def _value_words(column: pd.Series) -> tuple[list[str], float]:
    counts = column.dropna().astype(str).value_counts()
    if counts.empty:
        return [], 0.0
    found: dict[str, int] = {}
    for value, count in counts.head(VALUE_WORD_MAX_VALUES).items():
        for word in outcome_words(str(value)):
            found[word] = found.get(word, 0) + int(count)
    carrying = sum(
        int(count) for value, count in counts.head(VALUE_WORD_MAX_VALUES).items() if outcome_words(str(value))
    )
    share = carrying / len(column)
    if share < VALUE_WORD_MIN_SHARE:
        return [], 0.0
    return sorted(found, key=lambda word: -found[word]), share


def _powers(
    frame: pd.DataFrame, target: pd.Series, kinds: Mapping[str, str], classification: bool
) -> dict[Hashable, float | None]:
    """Each column's power alone; complete numeric columns in one vectorised rank pass."""
    numbers = {name: to_numeric(frame[name]) for name, kind in kinds.items() if kind == "numeric"}
    complete = [name for name, values in numbers.items() if values.notna().all() and values.nunique() > 1]
    powers: dict[Hashable, float | None] = {}  # by column name
    if complete:
        ranks = pd.DataFrame({name: numbers[name] for name in complete}).rank(method="average")
        if classification:
            auc = _rank_auc(ranks, (target == 1).to_numpy())
            powers |= {name: float(max(value, 1.0 - value)) for name, value in auc.items()}
        else:
            correlation = ranks.corrwith(target.rank(method="average"))
            powers |= {name: (None if pd.isna(value) else abs(float(value))) for name, value in correlation.items()}
    for name in kinds:
        if name in powers:
            continue
        codes = _codes(frame[name], numbers.get(name))
        powers[name] = _encoded_power(codes, target, classification)
    return powers


def _rank_auc(ranks: pd.DataFrame, positive: np.ndarray) -> pd.Series:
    """ROC-AUC of each column of average ranks (Mann-Whitney U), all columns at once."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _codes(column: pd.Series, numbers: pd.Series | None) -> pd.Series:
    """Text codes whose out-of-fold target rates measure the column: categories, or number bins."""
    if numbers is not None and numbers.notna().any():
        present = numbers.dropna()
        if present.nunique() > NUMERIC_BINS:
            binned = pd.qcut(numbers, NUMERIC_BINS, duplicates="drop", labels=False)
        else:
            binned = numbers
        return binned.astype(object).where(numbers.notna(), "<missing>").astype(str)
    return column.astype(str).where(column.notna(), "<missing>")


def _encoded_power(codes: pd.Series, target: pd.Series, classification: bool) -> float | None:
    """Power of a column read as codes, each half's code rates learned on the other half."""
    if codes.nunique() > 0.5 * len(codes):
        return None  # identifier-like: an in-sample rate per value would always look perfect
    halves = np.arange(len(codes)) % 2 == 0
    encoded = np.full(len(codes), np.nan)
    prior = float(target.mean())
    for fit_half in (halves, ~halves):
        rates = target[fit_half].groupby(codes[fit_half]).mean()
        encoded[~fit_half] = codes[~fit_half].map(rates).fillna(prior).to_numpy(dtype=float)
    values = pd.Series(encoded)
    if values.nunique() < 2:
        return None
    if classification:
        auc = float(_rank_auc(values.rank(method="average").to_frame(), (target == 1).to_numpy()).iloc[0])
        return max(auc, 1.0 - auc)
    correlation = values.rank().corr(target.rank())
    return None if pd.isna(correlation) else abs(float(correlation))
