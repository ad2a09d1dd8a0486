"""What leakage suspects are worth: a quick probe model with and without them.

`quality.leakage_evidence` judges each column from cheap evidence (power alone, outcome
vocabulary, one-class filling). Training then fits a small probe, histogram gradient
boosting with native categories on at most `PROBE_ROWS` training rows, `PROBE_FOLDS`-fold
CV, to show:

* the CV score with every candidate column and without the excluded suspects: what the
  leak was worth;
* each column's share of the probe's importance with every candidate column in
  (permutation importance: all the engineered columns of one input column shuffled
  together, `PERMUTATION_REPEATS` times);
* what dropping a column costs on CV (at most `PROBE_MAX_DROPS` columns, strongest
  first): for an excluded suspect, what it adds to the honest columns (so one perfect
  leak does not hide the others); for a kept column, what removing it from the kept
  ones loses.

A warned column that carries at least `DOMINANT_SHARE` of the probe's importance while
it has outcome vocabulary, one-class filling or strong power alone is excluded too: the
model would lean on little else. The probe runs only when some column has evidence to
weigh, and never on held-out rows. Features are engineered once for all subsets, so it
takes seconds, not a search's minutes.

`judge_leakage` is training's whole judgement (the evidence, the exclusions, the probe
when a column is suspect); `leakage_report` is its part of the training report.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score, train_test_split

from leadml.ml.evaluate import main_metric
from leadml.ml.features import FeatureEngineer
from leadml.ml.quality import EXCLUDE, WARN, WARN_AUC, WARN_CORRELATION, leakage_evidence
from leadml.ml.schema import infer_schema
from leadml.ml.types import FeatureOptions, FeatureSchema, is_classification

PROBE_ROWS = 5000
PROBE_FOLDS = 3
PROBE_MAX_DROPS = 8
PROBE_ITERATIONS = 60
DOMINANT_SHARE = 0.5
PERMUTATION_REPEATS = 3
# Native categorical splits take at most this many categories; rarer ones share one code.
MAX_CATEGORY_CODES = 254


@dataclass(frozen=True)
class LeakageVerdict:
    """What training does about leakage: every column's evidence, the columns it excludes, the probe."""

    evidence: list[dict[str, Any]]
    excluded: dict[str, str]  # column -> reason
    probe: LeakageProbe | None


@dataclass(frozen=True)
class LeakageProbe:
    metric: str
    cv_with_suspects: float | None
    cv_without_suspects: float | None
    importance: dict[str, float] = field(default_factory=dict)  # share of the probe's importance
    drop_cost: dict[str, float] = field(default_factory=dict)  # CV lost without the column (see module)
    upgraded: dict[str, str] = field(default_factory=dict)  # warned columns excluded after the probe
    rows: int = 0
    folds: int = PROBE_FOLDS
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": f"histogram gradient boosting, {PROBE_ITERATIONS} iterations, native categories",
            "metric": self.metric,
            "rows": self.rows,
            "folds": self.folds,
            "seconds": round(self.seconds, 3),
            "cv_with_suspects": self.cv_with_suspects,
            "cv_without_suspects": self.cv_without_suspects,
        }


def judge_leakage(
    features: pd.DataFrame,
    target: np.ndarray,
    *,
    model_type: str,
    keep: set[str],
    allowed: set[str],
    trusted: set[str],
    feature_options: FeatureOptions,
    random_state: int,
    progress: Callable[[str, int], None],
) -> LeakageVerdict:
    """Evidence for every candidate column of the training rows, then the probe when some column is suspect.

    `keep` are the columns the tenant chose, `allowed` the suspects kept on purpose
    (`allow_columns`), `trusted` the columns that cannot leak.
    """
    evidence = leakage_evidence(
        features, pd.Series(target, dtype=float), model_type=model_type,
        schema=infer_schema(features, keep=keep | allowed, drop_constant=False), trusted=trusted,
    )
    excluded = {item["column"]: item["reason"] for item in evidence if item["verdict"] == EXCLUDE}
    excluded = {name: reason for name, reason in excluded.items() if name not in allowed}
    probe: LeakageProbe | None = None
    if any(item["verdict"] in (EXCLUDE, WARN) for item in evidence):
        progress("leakage", 12)
        probe = probe_leakage(
            features, target, evidence, model_type=model_type, excluded=set(excluded), keep=allowed,
            feature_options=feature_options, random_state=random_state,
        )
        if probe is not None:
            excluded |= {name: reason for name, reason in probe.upgraded.items() if name not in allowed}
    return LeakageVerdict(evidence, excluded, probe)


def leakage_report(verdict: LeakageVerdict, allowed: set[str], importance: list[tuple[str, float]]) -> dict[str, Any]:
    """Every candidate column's evidence, what was excluded, and what the suspects were worth on CV."""
    excluded, probe = verdict.excluded, verdict.probe
    served = dict(importance)
    items = []
    for item in verdict.evidence:
        name = item["column"]
        row = dict(item)
        row["excluded"] = name in excluded
        row["allowed"] = name in allowed and item["verdict"] == EXCLUDE
        row["model_importance_share"] = served.get(name)
        row["probe_importance_share"] = probe.importance.get(name) if probe else None
        row["drop_cost"] = probe.drop_cost.get(name) if probe else None
        if probe and name in probe.upgraded:
            row["verdict"], row["reason"] = EXCLUDE, probe.upgraded[name]
        items.append(row)
    with_suspects = probe.cv_with_suspects if probe else None
    without = probe.cv_without_suspects if probe else None
    return {
        "excluded": list(excluded),
        "warned": [item["column"] for item in items if item["verdict"] == WARN and not item["excluded"]],
        "allowed": [item["column"] for item in items if item["allowed"]],
        "cv_with_suspects": with_suspects,
        "cv_without_suspects": without,
        "leak_worth": None if with_suspects is None or without is None else round(with_suspects - without, 6),
        "probe": probe.as_dict() if probe else None,
        "evidence": items,
    }


def probe_leakage(
    features: pd.DataFrame,
    target: np.ndarray,
    evidence: list[dict[str, Any]],
    *,
    model_type: str,
    excluded: set[str],
    keep: set[str],
    feature_options: FeatureOptions,
    random_state: int,
) -> LeakageProbe | None:
    """Fit the probe on training rows; None when no column has evidence to weigh."""
    flagged = [item for item in evidence if item["verdict"] in (EXCLUDE, WARN) and item["column"] in features.columns]
    if not flagged:
        return None
    started = time.perf_counter()
    classification = is_classification(model_type)
    sample, sample_y = _sample(features, target, classification, random_state)
    if classification and int(np.bincount(sample_y.astype(int)).min()) < PROBE_FOLDS:
        return None
    schema = infer_schema(sample, keep=keep | {item["column"] for item in flagged})
    if not schema.columns:
        return None
    probe = _Probe(schema, sample, sample_y, classification, replace(feature_options, btyd=False), random_state)
    cv_with = probe.cv(probe.names)
    shares = probe.importance_shares()
    upgraded = _upgraded(flagged, shares, classification)
    final = (excluded | set(upgraded)) - keep
    honest = [name for name in probe.names if name not in final]
    cv_without = probe.cv(honest) if final else cv_with
    return LeakageProbe(
        metric=probe.metric,
        cv_with_suspects=cv_with,
        cv_without_suspects=cv_without,
        importance={name: round(share, 6) for name, share in shares.items()},
        drop_cost=_drop_costs(probe, flagged, final, honest, cv_without),
        upgraded=upgraded,
        rows=len(sample_y),
        seconds=time.perf_counter() - started,
    )


class _Probe:
    """The probe's rows engineered once, and CV scores of the probe model on any subset of input columns."""

    def __init__(
        self,
        schema: FeatureSchema,
        sample: pd.DataFrame,
        target: np.ndarray,
        classification: bool,
        options: FeatureOptions,
        random_state: int,
    ) -> None:
        self.matrix, self.categorical, self.blocks = _engineered(schema, sample, options)
        self.names = [name for name in schema.names if self.blocks.get(name)]
        self.target = target
        self.classification = classification
        self.metric = main_metric(classification)
        self.random_state = random_state
        self.folds = (
            StratifiedKFold(PROBE_FOLDS, shuffle=True, random_state=random_state)
            if classification
            else KFold(PROBE_FOLDS, shuffle=True, random_state=random_state)
        )

    def model(self, columns: list[int]) -> Any:
        maker = HistGradientBoostingClassifier if self.classification else HistGradientBoostingRegressor
        return maker(
            max_iter=PROBE_ITERATIONS, early_stopping=False, random_state=self.random_state,
            categorical_features=self.categorical[columns] if self.categorical[columns].any() else None,
        )

    def indices(self, subset: list[str]) -> list[int]:
        return [index for name in subset for index in self.blocks[name]]

    def cv(self, subset: list[str]) -> float | None:
        columns = self.indices(subset)
        if not columns:
            return None
        scores = cross_val_score(
            self.model(columns), self.matrix[:, columns], self.target, scoring=self.metric, cv=self.folds
        )
        return round(float(np.mean(scores)), 6)

    def importance_shares(self) -> dict[str, float]:
        model = self.model(self.indices(self.names))
        return _importance_shares(
            model, self.matrix, self.target, self.names, self.blocks, self.metric, self.random_state
        )


def _upgraded(flagged: list[dict[str, Any]], shares: dict[str, float], classification: bool) -> dict[str, str]:
    """Warned columns the probe leans on (DOMINANT_SHARE) that also show a sign of leaking: column -> reason."""
    strong_alone = WARN_AUC if classification else WARN_CORRELATION
    upgraded: dict[str, str] = {}
    for item in flagged:
        name = item["column"]
        share = shares.get(name, 0.0)
        signs = item["name_words"] or item["value_words"] or item["one_class_fill"]
        if item["verdict"] == WARN and share >= DOMINANT_SHARE and (signs or (item["power"] or 0) >= strong_alone):
            upgraded[name] = (
                f"{item['reason']}; and it carries {share:.0%} of a probe model's importance (>= {DOMINANT_SHARE:.0%})"
            )
    return upgraded


def _drop_costs(
    probe: _Probe, flagged: list[dict[str, Any]], final: set[str], honest: list[str], cv_without: float | None
) -> dict[str, float]:
    """What dropping each of the strongest flagged columns costs on CV (see the module's docstring)."""
    costs: dict[str, float] = {}
    for item in sorted(flagged, key=lambda item: -(item["power"] or 0.0))[:PROBE_MAX_DROPS]:
        name = item["column"]
        if name not in probe.names or cv_without is None:
            continue
        if name in final:
            score = probe.cv([*honest, name])
            cost = None if score is None else score - cv_without
        else:
            score = probe.cv([column for column in honest if column != name])
            cost = None if score is None else cv_without - score
        if cost is not None:
            costs[name] = round(cost, 6)
    return costs


def _engineered(
    schema: FeatureSchema, sample: pd.DataFrame, options: FeatureOptions
) -> tuple[np.ndarray, np.ndarray, dict[str, list[int]]]:
    """(matrix, categorical mask, input column -> its matrix columns) of the probe's rows.

    Categories become codes of their most frequent values (missing stays NaN): a probe
    needs no one-hot width, and boosting splits on categories natively.
    """
    engineer = FeatureEngineer(schema, options).fit(sample)
    frame = engineer.transform(sample)
    columns: list[np.ndarray] = []
    categorical: list[bool] = []
    blocks: dict[str, list[int]] = {}
    for position, name in enumerate(frame.columns):
        values = frame[name]
        if name in engineer.categorical_columns_:
            counts = values.dropna().value_counts()
            codes = {value: code for code, value in enumerate(counts.index[:MAX_CATEGORY_CODES])}
            other = float(min(len(codes), MAX_CATEGORY_CODES))
            encoded = values.map(
                lambda value, codes=codes, other=other: np.nan if pd.isna(value) else codes.get(value, other)
            ).astype(float)
            columns.append(encoded.to_numpy())
            categorical.append(True)
        else:
            columns.append(values.to_numpy(dtype=float))
            categorical.append(False)
        for source in engineer.sources_of_[name]:
            blocks.setdefault(source, []).append(position)
    matrix = np.column_stack(columns) if columns else np.zeros((len(sample), 0))
    return matrix, np.asarray(categorical, dtype=bool), blocks


def _importance_shares(
    model: Any,
    matrix: np.ndarray,
    target: np.ndarray,
    names: list[str],
    blocks: dict[str, list[int]],
    metric: str,
    random_state: int,
) -> dict[str, float]:
    """Each input column's share of the probe's permutation importance (negative counts as 0)."""
    columns = [index for name in names for index in blocks[name]]
    position = {index: place for place, index in enumerate(columns)}
    data = matrix[:, columns]
    fitted = model.fit(data, target)
    scorer = get_scorer(metric)
    base = scorer(fitted, data, target)
    rng = np.random.default_rng(random_state)
    weights = {}
    for name in names:
        drops = []
        for _ in range(PERMUTATION_REPEATS):
            shuffled = data.copy()
            order = rng.permutation(len(target))
            for index in blocks[name]:
                shuffled[:, position[index]] = data[order, position[index]]
            drops.append(base - scorer(fitted, shuffled, target))
        weights[name] = max(float(np.mean(drops)), 0.0)
    total = sum(weights.values())
    return {name: (weight / total if total > 0 else 0.0) for name, weight in weights.items()}


def _sample(
    features: pd.DataFrame, target: np.ndarray, classification: bool, random_state: int
) -> tuple[pd.DataFrame, np.ndarray]:
    if len(target) <= PROBE_ROWS:
        return features.reset_index(drop=True), target
    sample, _, sample_y, _ = train_test_split(
        features, target, train_size=PROBE_ROWS, random_state=random_state,
        stratify=target if classification else None,
    )
    return sample.reset_index(drop=True), sample_y
