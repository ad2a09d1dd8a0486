"""Exact interventional Shapley values of a tree ensemble against one reference record.

The game: players are groups of input columns (leadml.ml.reasons' `Player`s); the worth
of a set S of players is the ensemble's margin (leadml.ml.compiled: log-odds or value
for boosting, the averaged tree output for a forest) at the hybrid record z_S that takes
the columns of S from the record x and every other column from the reference r.

With a single reference the game has a closed form per leaf. Walk a leaf's path: at each
split, the column belongs to some player p, and x or r (or both, or neither) satisfy
the split. A hybrid z_S reaches the leaf iff, for every player p on the path, the
record whose values z_S takes for p satisfies all of p's splits there. So with

    A = players whose splits on the path are satisfied by x only,
    B = players whose splits on the path are satisfied by r only,

(a player satisfied by neither makes the leaf unreachable; one satisfied by both does
not matter) the leaf is reached exactly when S ⊇ A and S ∩ B = ∅. That indicator game
has the Shapley values, for a leaf of value v,

    i ∈ A:  v · (|A| − 1)! |B|! / (|A| + |B|)!
    j ∈ B: −v · |A|! (|B| − 1)! / (|A| + |B|)!

and every other player gets 0. The ensemble's values are the sums over leaves and trees
(Shapley values are linear in the game), so they add up to margin(x) − margin(r)
exactly, and a player whose columns are equal in x and r gets exactly 0.

`TreeGame.shapley` never lists all leaves. It walks every tree from the root for all
records at once, level by level, keeping one entry per (record, node, A, B) that some
hybrid reaches: where x and r go the same way there is one child, where they part
there are two (x's side adds p to A unless p is in B, r's side adds p to B unless p is
in A), so the walk visits only the leaves some hybrid reaches: 14 to 18 per tree for a
demo lead against the typical lead, of the forest's 440. The cost is one level-by-level
pass per call: 1.1-2.4 ms for one record on the demo models (150 full-depth trees, or
200 boosted trees of 31 leaves), less than sklearn takes for the prediction alone. Where
leadml.ml.native's C library is built, the same walk runs depth-first in C instead (about
0.05 ms for one record on the 200 boosted trees); this numpy walk is its fallback and
its test oracle. The
splits are read exactly as sklearn reads them (float32 inputs for forests, the missing
value side), through the same `TreeEnsemble` arrays the compiled scorer predicts with.
`tree_game` reads the reference's side of every split once; explainers keep the game
while their baseline stays the same.

A and B are bit masks in an int64, so up to `MAX_PLAYERS` players; callers with more use
another method.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from leadml.ml import native
from leadml.ml.compiled import TreeEnsemble

MAX_PLAYERS = 63
# Records walked together: the frontier holds a few entries per tree and record.
CHUNK_RECORDS = 256
# Entries that reached a leaf are set aside every this many levels (leaves point to
# themselves, so they may wait): fewer numpy calls for one record, less work for many.
SET_ASIDE_LEVELS = 3


@dataclass(frozen=True)
class TreeShapley:
    """Shapley values in margin units and the margins the walk itself found."""

    values: np.ndarray  # (records × players)
    record_margins: np.ndarray  # (records,) margin(x): the leaves with B empty
    reference_margins: np.ndarray  # (records,) margin(r): the leaves with A empty, per record


@dataclass(frozen=True, eq=False)
class TreeGame:
    """The game against one reference: what every record's walk shares, computed once."""

    ensemble: TreeEnsemble
    reference: np.ndarray  # as the trees compare it (float32 for forests)
    reference_right: np.ndarray  # bool per node: the reference goes right (never at leaves)
    node_bits: np.ndarray  # int64 per node: the bit of the player owning its split column
    n_players: int
    weights_a: np.ndarray  # [|A|, |B|] -> (|A|−1)!|B|!/(|A|+|B|)!
    weights_b: np.ndarray  # [|A|, |B|] -> |A|!(|B|−1)!/(|A|+|B|)!

    def shapley(self, records: np.ndarray) -> TreeShapley | None:
        """Return each record's exact Shapley values, or None for inputs the model refuses."""
        values = self.ensemble.comparable(np.ascontiguousarray(records, dtype=float))
        if values is None:
            return None
        walked = native.shapley(
            self.ensemble, values, reference_right=self.reference_right, node_bits=self.node_bits,
            n_players=self.n_players, weights_a=self.weights_a, weights_b=self.weights_b,
        )
        if walked is not None:
            return TreeShapley(*walked)
        parts = [self._walk(values[start : start + CHUNK_RECORDS]) for start in range(0, len(values), CHUNK_RECORDS)]
        if not parts:
            empty = np.zeros(0)
            return TreeShapley(np.zeros((0, self.n_players)), empty, empty)
        return TreeShapley(
            values=np.vstack([part.values for part in parts]),
            record_margins=np.concatenate([part.record_margins for part in parts]),
            reference_margins=np.concatenate([part.reference_margins for part in parts]),
        )

    def _walk(self, values: np.ndarray) -> TreeShapley:
        ensemble = self.ensemble
        rows, width = values.shape
        flat = values.ravel()
        has_missing = bool(np.isnan(flat).any())
        children = ensemble.children.ravel()  # node n's children at 2n (left) and 2n + 1
        # The frontier: one entry per (record, node, A, B) that some hybrid reaches. A
        # record is carried as its offset in `flat`; A and B as bit masks.
        node = np.tile(ensemble.roots, rows)
        offset = np.repeat(np.arange(rows, dtype=np.int64) * width, ensemble.n_trees)
        only_x = np.zeros(len(node), dtype=np.int64)
        only_r = np.zeros(len(node), dtype=np.int64)
        reached: list[tuple[np.ndarray, ...]] = []
        level = 0
        while len(node):
            if level % SET_ASIDE_LEVELS == 0:
                at_leaf = ensemble.is_leaf[node]
                if at_leaf.any():
                    reached.append((node[at_leaf], offset[at_leaf], only_x[at_leaf], only_r[at_leaf]))
                    inside = ~at_leaf
                    node, offset, only_x, only_r = node[inside], offset[inside], only_x[inside], only_r[inside]
                    if not len(node):
                        break
            level += 1
            x_value = flat[offset + ensemble.feature[node]]
            if has_missing:
                x_right = ~(x_value <= ensemble.threshold[node]) & ~(np.isnan(x_value) & ensemble.missing_left[node])
            else:
                x_right = x_value > ensemble.threshold[node]
            r_right = self.reference_right[node]
            parted = x_right != r_right  # never at a leaf: both stay
            twice = 2 * node
            x_child = children[twice + x_right]
            if not parted.any():
                node = x_child
                continue
            bit = self.node_bits[node]
            # r's side of a parting: p joins B, unless p is in A (no hybrid gets there).
            r_side = np.flatnonzero(parted & ((only_x & bit) == 0))
            r_child = children[twice[r_side] + r_right[r_side]]
            # x's side: p joins A, unless p is in B.
            x_only_x = only_x | (bit * parted)
            x_offset, x_only_r = offset, only_r
            blocked = parted & ((only_r & bit) != 0)
            if blocked.any():
                kept = ~blocked
                x_child, x_offset, x_only_x, x_only_r = x_child[kept], offset[kept], x_only_x[kept], only_r[kept]
            node = np.concatenate([x_child, r_child])
            only_x = np.concatenate([x_only_x, only_x[r_side]])
            only_r = np.concatenate([x_only_r, only_r[r_side] | bit[r_side]])
            offset = np.concatenate([x_offset, offset[r_side]])
        if len(node):
            reached.append((node, offset, only_x, only_r))
        return self._leaf_sums(rows, width, reached)

    def _leaf_sums(self, rows: int, width: int, reached: list[tuple[np.ndarray, ...]]) -> TreeShapley:
        ensemble = self.ensemble
        node, offset, only_x, only_r = (np.concatenate(column) for column in zip(*reached))
        record = offset // width
        value = ensemble.value[node]
        if ensemble.averaged:
            value = value / ensemble.n_trees
        size_a = np.bitwise_count(only_x).astype(np.intp)
        size_b = np.bitwise_count(only_r).astype(np.intp)
        gain = value * self.weights_a[size_a, size_b]  # each player of A gets this
        loss = value * self.weights_b[size_a, size_b]  # each player of B loses this
        shapley = np.empty((rows, self.n_players))
        for player in range(self.n_players):
            weights = np.where((only_x >> player) & 1, gain, 0.0) - np.where((only_r >> player) & 1, loss, 0.0)
            shapley[:, player] = np.bincount(record, weights=weights, minlength=rows)
        # S = every player reaches the leaves with B empty; S = nobody those with A empty.
        offset_value = 0.0 if ensemble.averaged else ensemble.offset
        record_margins = np.bincount(record, weights=np.where(size_b == 0, value, 0.0), minlength=rows)
        reference_margins = np.bincount(record, weights=np.where(size_a == 0, value, 0.0), minlength=rows)
        return TreeShapley(shapley, record_margins + offset_value, reference_margins + offset_value)


def tree_game(
    ensemble: TreeEnsemble, reference: np.ndarray, column_players: np.ndarray, n_players: int
) -> TreeGame | None:
    """Return the game against `reference`, or None when it cannot be played.

    `column_players[c]` is the player owning input column c. None when there are more
    than MAX_PLAYERS players, or a reference the ensemble's sklearn model would refuse.
    """
    if n_players > MAX_PLAYERS or len(column_players) != ensemble.n_features:
        return None
    base = ensemble.comparable(np.ascontiguousarray(np.reshape(reference, (1, -1)), dtype=float))
    if base is None:
        return None
    value = base[0][ensemble.feature]
    reference_right = ~(value <= ensemble.threshold) & ~(np.isnan(value) & ensemble.missing_left)
    players = np.asarray(column_players, dtype=np.int64)[ensemble.feature]
    weights_a, weights_b = _weights(n_players)
    return TreeGame(
        ensemble=ensemble,
        reference=base[0],
        reference_right=reference_right,
        node_bits=np.left_shift(np.int64(1), players),
        n_players=n_players,
        weights_a=weights_a,
        weights_b=weights_b,
    )


def tree_shapley(
    ensemble: TreeEnsemble, records: np.ndarray, reference: np.ndarray, column_players: np.ndarray, n_players: int
) -> TreeShapley | None:
    """Return each record's exact Shapley values against `reference`, or None when not computable."""
    game = tree_game(ensemble, reference, column_players, n_players)
    return None if game is None else game.shapley(records)


@lru_cache(maxsize=MAX_PLAYERS + 1)
def _weights(n_players: int) -> tuple[np.ndarray, np.ndarray]:
    """Tables [|A|, |B|] of (|A|−1)!|B|!/(|A|+|B|)! and |A|!(|B|−1)!/(|A|+|B|)! (0 where undefined).

    Kept per player count (read-only): a game is built again whenever dates age the baseline.
    """
    size = n_players + 1
    weights_a = np.zeros((size, size))
    weights_b = np.zeros((size, size))
    for a in range(size):
        for b in range(size - a):
            total = math.factorial(a + b)
            if a:
                weights_a[a, b] = math.factorial(a - 1) * math.factorial(b) / total
            if b:
                weights_b[a, b] = math.factorial(a) * math.factorial(b - 1) / total
    weights_a.setflags(write=False)
    weights_b.setflags(write=False)
    return weights_a, weights_b
