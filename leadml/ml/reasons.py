"""Per-record reasons: how much each input field moved this record's score, and which way.

A contribution is a Shapley value of an input field against one baseline record, the
typical training record (`typical_record`: median numbers and dates, most frequent
categories, an address at the most frequent e-mail domain). The worth of a set of
fields is the output for the record that takes those fields from the scored record and
every other field from the baseline: the served output (the calibrated probability in
score points, 0-100, for leads, currency for CLV) for the enumerated and sampled
methods, the model's margin mapped to served units for the exact linear and tree ones.
Contributions are in served units either way, and for every method below,

    baseline + sum(contributions) = served output (probability × 100, or the value).

Fields equal to the baseline's add nothing, so they do not take part (Shapley's dummy
axiom: their contribution is exactly 0). Records and baseline are mixed in the
estimator's input space, column by column; a column made from several fields (an
interaction, the BTYD estimates) joins those fields into one reason, named "a + b".

- `linear_exact` (logistic regression, ridge): the model's margin (log-odds, or the
  value) is a sum over columns, so each field's margin contribution
  sum(coef × (x − baseline)) over its columns is its exact Shapley value; they are
  returned as `log_odds` for leads. The served output is an increasing function of the
  margin (sigmoid, calibration, the clip at zero), so the served-unit contributions are
  the margin contributions times Δserved / Δmargin: exact sum, same signs, same ranking.
- `tree_exact` (random forests, histogram gradient boosting): exact Shapley values of
  the model's margin (the boosting raw score: log-odds for leads, the value for CLV;
  the forest's averaged tree output: the class-1 probability for leads, the value for
  CLV) against the baseline, from the trees themselves in closed form
  (leadml.ml.treeshap), for every differing field at about the cost of one
  prediction. As for `linear_exact`, they are then turned into served units by one
  factor per record, Δserved / Δmargin (calibration and the clip at zero are
  increasing), so the sum is exact and signs and ranking are the margin's. The trees
  are read through the compiled scorer (leadml.ml.compiled) the version's parity check
  trusts; versions serving through sklearn, and walks that disagree with the model's
  own margin, use the methods below.
- `shapley_exact` (neural networks, and trees without `tree_exact`, up to
  `exact_max_fields` differing fields): every subset of the differing fields is
  scored and the Shapley formula applied to the served output.
- `shapley_sampled` (more differing fields): Shapley values estimated over random
  orders of the fields (Štrumbelj & Kononenko 2014), in antithetic pairs (an order and
  its reverse), seeded so a record gets the same reasons every time. Each order's
  marginal contributions add up to the served output minus the baseline exactly, so
  their average does too; only the split between fields is estimated.

It stays one module past 400 lines: the four methods share the baseline record, the
players and the conversion to served units, and a tenth of the module is this description.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge, TweedieRegressor

from leadml.ml.compiled import CompiledScorer, TreeEnsemble
from leadml.ml.explain import transformed_sources
from leadml.ml.dates import to_datetime
from leadml.ml.features import _as_text
from leadml.ml.nested import tag_set
from leadml.ml.parsing import to_numeric
from leadml.ml.treeshap import MAX_PLAYERS, TreeGame, tree_game
from leadml.ml.types import FeatureSchema
from leadml.ml.vocabulary import email_domain

if TYPE_CHECKING:
    from leadml.ml.bundle import ModelBundle

# Scored mixtures held in memory at once when explaining a large batch.
CHUNK_ROWS = 50_000
SCORE_POINTS = 100.0


@dataclass(frozen=True)
class Player:
    """One reason: the input field(s) whose estimator columns move together."""

    name: str
    fields: tuple[str, ...]
    columns: np.ndarray


@dataclass(frozen=True)
class Explanation:
    method: str
    baseline: float  # served output of the baseline record, in `unit`
    contributions: dict[str, float]  # player name -> signed contribution in `unit`
    log_odds: dict[str, float] | None = None  # linear lead models: exact margin contributions


def typical_record(schema: FeatureSchema, frame: pd.DataFrame) -> dict[str, Any]:
    """Return the baseline record: each column's median or most frequent value in `frame`."""
    record: dict[str, Any] = {}
    for column in schema.columns:
        values = frame[column.name] if column.name in frame.columns else pd.Series(dtype=object)
        if column.kind == "numeric":
            numbers = to_numeric(values).dropna()
            record[column.name] = float(numbers.median()) if len(numbers) else None
        elif column.kind == "datetime":
            dates = to_datetime(values, getattr(column, "date_format", None)).dropna()
            record[column.name] = dates.sort_values().iloc[len(dates) // 2].date().isoformat() if len(dates) else None
        elif column.kind == "email":
            domains = values.map(email_domain).dropna()
            record[column.name] = f"typical@{domains.mode().iloc[0]}" if len(domains) else None
        elif column.kind == "tags":
            # The tags more than half of the training records carry.
            sets = [tags for tags in values.map(tag_set) if tags is not None]
            record[column.name] = (
                [tag for tag in column.categories if 2 * sum(tag in tags for tags in sets) > len(sets)] if sets else None
            )
        else:
            texts = values.map(_as_text).dropna()
            record[column.name] = texts.mode().iloc[0] if len(texts) else None
    return record


class Explainer:
    """Explains a bundle's predictions; built once per loaded bundle (`explainer_for`)."""

    def __init__(self, bundle: ModelBundle, *, exact_max_fields: int = 8, exact_trees: bool = True) -> None:
        """`exact_trees=False` explains tree models by scoring mixtures, as before `tree_exact`."""
        if bundle.baseline_record is None:
            raise ValueError("this model version was trained before per-record reasons; retrain it")
        self.bundle = bundle
        self.exact_max_fields = exact_max_fields
        self.players = _players(transformed_sources(bundle.pipeline))
        # Estimator column -> index of the player it belongs to.
        self._column_players = np.zeros(sum(len(player.columns) for player in self.players), dtype=np.int64)
        for index, player in enumerate(self.players):
            self._column_players[player.columns] = index
        engineer = bundle.pipeline.named_steps["features"]
        # Dates enter as ages at scoring time, so the baseline ages with the records it explains.
        self._ages = engineer._options.date_features and any(c.kind == "datetime" for c in bundle.schema.columns)
        self._fixed_baseline_input: np.ndarray | None = None
        # The baseline checked once: validation does not depend on the clock, the ages do.
        self._baseline_prepared = bundle.prepare([bundle.baseline_record or {}])
        # (columns × players) 0/1: which player owns each estimator column.
        self._owners = np.zeros((len(self._column_players), len(self.players)))
        self._owners[np.arange(len(self._column_players)), self._column_players] = 1.0
        if not self._ages:
            self._fixed_baseline_input = self._baseline_input()
        estimator = bundle.pipeline.steps[-1][1]
        # A Tweedie GLM's log-link margin is linear too, and its value exp(margin) increasing.
        self._coefficients = (
            np.ravel(estimator.coef_) if isinstance(estimator, (LogisticRegression, Ridge, TweedieRegressor)) else None
        )
        self._trees: CompiledScorer | None = None
        self._tree_game: tuple[bytes, TreeGame | None] | None = None  # keyed by the baseline input
        if exact_trees and self._coefficients is None and 0 < len(self.players) <= MAX_PLAYERS:
            scorer = bundle.compiled_scorer()
            if scorer is not None and isinstance(scorer.model, TreeEnsemble):
                self._trees = scorer
        self._log_link = isinstance(estimator, TweedieRegressor)

    def _baseline_input(self) -> np.ndarray:
        if self._fixed_baseline_input is not None:
            return self._fixed_baseline_input
        return self.bundle.model_input(self._baseline_prepared)[0]

    @property
    def _scale(self) -> float:
        return SCORE_POINTS if self.bundle.classification else 1.0

    @property
    def unit(self) -> str:
        return "score points" if self.bundle.classification else "currency"

    def score_and_explain(
        self, inputs: np.ndarray, *, max_rows_per_record: int = 256, seed: int = 0
    ) -> tuple[np.ndarray, list[Explanation]]:
        """Return the served outputs (as `predict_matrix` does) and each record's explanation.

        The baseline, the records and the mixtures their explanations need are scored in
        one call.
        """
        base_input = self._baseline_input()
        differing = self._differing(inputs, base_input)
        if self._coefficients is not None:
            scored = self.bundle.predict_matrix(np.vstack([base_input[None, :], inputs]))
            base_value, served = float(scored[0]) * self._scale, scored[1:]
            explanations = [
                self._linear(row - base_input, flags, value, base_value)
                for row, flags, value in zip(inputs, differing, served * self._scale)
            ]
            return served, explanations
        if self._trees is not None:
            exact = self._tree_exact(self._trees, inputs, base_input, differing)
            if exact is not None:
                return exact
        plans = [self._plan(flags, max_rows_per_record, seed) for flags in differing]
        base_value, served_scaled, values = self._score_mixtures(inputs, plans, base_input)
        explanations = [
            self._shapley(plan, mixture_values, value, base_value)
            for plan, mixture_values, value in zip(plans, values, served_scaled)
        ]
        return served_scaled / self._scale, explanations

    def _differing(self, inputs: np.ndarray, base_input: np.ndarray) -> np.ndarray:
        """(records × players): whether a player's columns differ from the baseline's."""
        if not self.players:
            return np.zeros((len(inputs), 0), dtype=bool)
        # np.isclose(inputs, base, rtol=1e-9, atol=1e-12), spelled out: a tenth of its cost on one row.
        base = base_input[None, :]
        with np.errstate(invalid="ignore"):
            close = ((np.abs(inputs - base) <= 1e-12 + 1e-9 * np.abs(base)) & np.isfinite(base)) | (inputs == base)
        # A player differs when any of its columns does.
        return (~close).astype(float) @ self._owners > 0.0

    def _linear(self, delta: np.ndarray, differing: np.ndarray, served: float, base_value: float) -> Explanation:
        assert self._coefficients is not None
        margins = {
            player.name: float(np.dot(self._coefficients[player.columns], delta[player.columns]))
            for player, differs in zip(self.players, differing)
            if differs
        }
        total_margin = sum(margins.values())
        served_change = served - base_value
        if abs(total_margin) > 1e-9:
            factor = served_change / total_margin
        else:  # contributions cancel out: use the link's local slope
            p = served / SCORE_POINTS
            factor = p * (1.0 - p) * SCORE_POINTS if self.bundle.classification else (served if self._log_link else 1.0)
        return Explanation(
            method="linear_exact",
            baseline=base_value,
            contributions={name: float(margin * factor) for name, margin in margins.items()},
            log_odds=margins if self.bundle.classification else None,
        )

    def _tree_exact(
        self, scorer: CompiledScorer, inputs: np.ndarray, base_input: np.ndarray, differing: np.ndarray
    ) -> tuple[np.ndarray, list[Explanation]] | None:
        """Explain by the trees' exact Shapley values; None when the walk cannot be trusted."""
        if not isinstance(scorer.model, TreeEnsemble):
            return None
        margins = scorer.margin(np.vstack([base_input[None, :], inputs]))
        if margins is None:  # inputs the model refuses: the scoring path raises sklearn's error
            return None
        served = scorer.served(margins)
        # A field equal to the baseline's within _differing's tolerance takes the
        # baseline's exact values, so it is a dummy player of the game: exactly 0.
        snapped = np.where(differing[:, self._column_players], inputs, base_input[None, :])
        game = self._game(scorer.model, base_input)
        shapley = None if game is None else game.shapley(snapped)
        if shapley is None:
            return None
        tolerance = 1e-9 * max(1.0, float(np.max(np.abs(margins))))
        if np.any(np.abs(shapley.reference_margins - margins[0]) > tolerance) or np.any(
            np.abs(shapley.record_margins - margins[1:]) > tolerance
        ):
            # The walk must find the model's own margins. Short of a bug, it does not only
            # when a field within the tolerance of the baseline's value crossed a split.
            return None
        base_value = float(served[0]) * self._scale
        explanations = []
        for row, (flags, values) in enumerate(zip(differing, shapley.values)):
            served_change = float(served[row + 1]) * self._scale - base_value
            total_margin = float(values[flags].sum())
            if abs(total_margin) > 1e-12 * max(1.0, abs(float(margins[row + 1]))):
                factor = served_change / total_margin
            else:  # contributions cancel out: the served output's local slope
                factor = scorer.slope(float(margins[row + 1])) * self._scale
            contributions = {
                player.name: float(values[index] * factor)
                for index, player in enumerate(self.players)
                if flags[index]
            }
            explanations.append(Explanation(method="tree_exact", baseline=base_value, contributions=contributions))
        return served[1:], explanations

    def _game(self, ensemble: TreeEnsemble, base_input: np.ndarray) -> TreeGame | None:
        key = base_input.tobytes()
        cached = self._tree_game
        if cached is None or cached[0] != key:  # a new baseline when dates age it
            cached = (key, tree_game(ensemble, base_input, self._column_players, len(self.players)))
            self._tree_game = cached
        return cached[1]

    def _plan(self, differing: np.ndarray, max_rows: int, seed: int) -> _Plan:
        players = [player for player, differs in zip(self.players, differing) if differs]
        count = len(players)
        if count <= 1:
            return _Plan(players, "shapley_exact", np.zeros((0, count), dtype=bool), [])
        if count <= self.exact_max_fields and 2**count <= max(max_rows, 4):
            masks = ((np.arange(2**count)[:, None] >> np.arange(count)) & 1).astype(bool)
            return _Plan(players, "shapley_exact", masks, [])
        pairs = max(1, max_rows // (2 * (count - 1)))
        rng = np.random.default_rng(seed)
        orders: list[np.ndarray] = []
        for _ in range(pairs):
            order = rng.permutation(count)
            orders += [order, order[::-1]]
        # Row t of an order holds its first t+1 fields (t < count - 1); the empty and the
        # full set are the baseline and the record themselves.
        masks = np.zeros((len(orders) * (count - 1), count), dtype=bool)
        for index, order in enumerate(orders):
            for step in range(count - 1):
                masks[index * (count - 1) + step, order[: step + 1]] = True
        return _Plan(players, "shapley_sampled", masks, orders)

    def _score_mixtures(
        self, inputs: np.ndarray, plans: list[_Plan], base_input: np.ndarray
    ) -> tuple[float, np.ndarray, list[np.ndarray]]:
        """Score the baseline, the records and every plan's mixtures, CHUNK_ROWS at a time.

        Returns, in `unit`, the baseline's output, the records' outputs and one array of
        mixture outputs per plan.
        """
        served: list[float] = []
        results: list[np.ndarray] = []
        pending: list[np.ndarray] = [base_input[None, :]]  # a block of its own, no mixtures
        pending_rows = 1

        def flush() -> None:
            nonlocal pending, pending_rows
            if not pending:
                return
            scored = self.bundle.predict_matrix(np.vstack(pending)) * self._scale
            offset = 0
            for block in pending:  # each block: the record, then its mixtures
                served.append(float(scored[offset]))
                results.append(scored[offset + 1 : offset + len(block)])
                offset += len(block)
            pending, pending_rows = [], 0

        for row, plan in zip(inputs, plans):
            block = np.repeat(base_input[None, :], len(plan.masks) + 1, axis=0)
            block[0] = row
            for position, player in enumerate(plan.players):
                chosen = np.concatenate(([False], plan.masks[:, position]))
                block[np.ix_(chosen, player.columns)] = row[player.columns]
            pending.append(block)
            pending_rows += len(block)
            if pending_rows >= CHUNK_ROWS:
                flush()
        flush()
        return served[0], np.asarray(served[1:]), results[1:]

    def _shapley(self, plan: _Plan, values: np.ndarray, served: float, base: float) -> Explanation:
        count = len(plan.players)
        if count == 0:
            return Explanation(plan.method, base, {})
        if count == 1:
            return Explanation(plan.method, base, {plan.players[0].name: served - base})
        phi = np.zeros(count)
        if plan.method == "shapley_exact":
            # Subsets are numbered by their bits; the last one is the record itself.
            values = values.copy()
            values[0], values[-1] = base, served
            subsets = np.arange(2**count)
            sizes = np.array([bin(subset).count("1") for subset in subsets])
            weights = np.array(
                [math.factorial(s) * math.factorial(count - s - 1) / math.factorial(count) for s in range(count)]
            )
            for position in range(count):
                without = subsets[(subsets >> position) & 1 == 0]
                phi[position] = float(
                    np.sum(weights[sizes[without]] * (values[without | (1 << position)] - values[without]))
                )
        else:
            steps = count - 1
            for index, order in enumerate(plan.orders):
                path = np.concatenate(([base], values[index * steps : (index + 1) * steps], [served]))
                phi[order] += np.diff(path)
            phi /= len(plan.orders)
        return Explanation(plan.method, base, {player.name: float(phi[i]) for i, player in enumerate(plan.players)})


@dataclass
class _Plan:
    players: list[Player]
    method: str
    masks: np.ndarray  # one row per mixture to score: which players come from the record
    orders: list[np.ndarray]


def _players(sources: Sequence[tuple[str, ...]]) -> list[Player]:
    """Group estimator columns into reasons: fields that share a column become one."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    for fields in sources:
        for other in fields[1:]:
            parent[root(other)] = root(fields[0])
    groups: dict[str, list[int]] = {}
    members: dict[str, list[str]] = {}
    for index, fields in enumerate(sources):
        key = root(fields[0])
        groups.setdefault(key, []).append(index)
        for name in fields:
            if name not in members.setdefault(key, []):
                members[key].append(name)
    return [
        Player(name=" + ".join(members[key]), fields=tuple(members[key]), columns=np.asarray(columns))
        for key, columns in groups.items()
    ]


def explainer_for(bundle: ModelBundle) -> Explainer | None:
    """Return the bundle's explainer (built on first use), or None for versions without a baseline."""
    if "_cached_explainer" not in bundle.__dict__:
        bundle.__dict__["_cached_explainer"] = Explainer(bundle) if bundle.baseline_record is not None else None
    return bundle.__dict__["_cached_explainer"]


def reasons_of(
    explanation: Explanation, explainer: Explainer, record: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Turn an explanation into the `reasons` list: largest effect first, with sentences."""
    baseline_record = explainer.bundle.baseline_record or {}
    classification = explainer.bundle.classification
    typical = "lead" if classification else "customer"
    reasons = []
    for player in explainer.players:
        if player.name not in explanation.contributions:
            continue
        contribution = explanation.contributions[player.name]
        value = _value_of(record, player.fields)
        baseline_value = _value_of(baseline_record, player.fields)
        verb = "raises" if contribution >= 0 else "lowers"
        amount = f"{abs(contribution):.1f} points" if classification else f"{abs(contribution):,.2f}"
        what = "the score" if classification else "the expected lifetime value"
        reason: dict[str, Any] = {
            "feature": player.name,
            "value": value,
            "baseline_value": baseline_value,
            "contribution": round(contribution, 4),
            "description": f"{player.name} = {value!r} {verb} {what} by {amount} (typical {typical}: {baseline_value!r})",
        }
        if explanation.log_odds is not None:
            reason["log_odds"] = round(explanation.log_odds[player.name], 6)
        reasons.append(reason)
    reasons.sort(key=lambda reason: -abs(reason["contribution"]))
    return reasons


def _value_of(record: Mapping[str, Any], fields: tuple[str, ...]) -> Any:
    if len(fields) == 1:
        return record.get(fields[0])
    return {name: record.get(name) for name in fields}

