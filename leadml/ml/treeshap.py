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

`tree_shapley` never lists all leaves. It walks every tree from the root for all
records at once, level by level, keeping one entry per (record, node, A, B) that some
hybrid reaches: where x and r go the same way there is one child, where they part
there are two (x's side adds p to A unless p is in B, r's side adds p to B unless p is
in A), so the walk visits only the leaves some hybrid reaches, a few per tree. The cost
is about one traversal of the ensemble per record: the price of a prediction. The
splits are read exactly as sklearn reads them (float32 inputs for forests, the missing
value side), through the same `TreeEnsemble` arrays the compiled scorer predicts with.

A and B are bit masks in an int64, so up to `MAX_PLAYERS` players; callers with more use
another method.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from leadml.ml.compiled import TreeEnsemble

MAX_PLAYERS = 63
# Records walked together: the frontier holds a few entries per tree and record.
CHUNK_RECORDS = 256


@dataclass(frozen=True)
class TreeShapley:
    """Shapley values in margin units and the margins the walk itself found."""

    values: np.ndarray  # (records × players)
    record_margins: np.ndarray  # (records,) margin(x): the leaves with B empty
    reference_margins: np.ndarray  # (records,) margin(r): the leaves with A empty, per record


def tree_shapley(
    ensemble: TreeEnsemble, records: np.ndarray, reference: np.ndarray, column_players: np.ndarray, n_players: int
) -> TreeShapley | None:
    """Return each record's exact Shapley values against `reference`, or None when not computable.

    `column_players[c]` is the player owning input column c. None when there are more
    than MAX_PLAYERS players, or inputs the ensemble's sklearn model would refuse.
    """
    if n_players > MAX_PLAYERS or len(column_players) != ensemble.n_features:
        return None
    values = ensemble.comparable(np.ascontiguousarray(records, dtype=float))
    base = ensemble.comparable(np.ascontiguousarray(np.reshape(reference, (1, -1)), dtype=float))
    if values is None or base is None:
        return None
    player_bits = np.left_shift(np.int64(1), np.asarray(column_players, dtype=np.int64))
    weights_a, weights_b = _weights(n_players)
    parts = [
        _chunk(ensemble, values[start : start + CHUNK_RECORDS], base[0], player_bits, weights_a, weights_b, n_players)
        for start in range(0, len(values), CHUNK_RECORDS)
    ]
    if not parts:
        empty = np.zeros(0)
        return TreeShapley(np.zeros((0, n_players)), empty, empty)
    return TreeShapley(
        values=np.vstack([part[0] for part in parts]),
        record_margins=np.concatenate([part[1] for part in parts]),
        reference_margins=np.concatenate([part[2] for part in parts]),
    )


def _chunk(
    ensemble: TreeEnsemble,
    values: np.ndarray,
    reference: np.ndarray,
    player_bits: np.ndarray,
    weights_a: np.ndarray,
    weights_b: np.ndarray,
    n_players: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, width = values.shape
    flat = values.ravel()
    has_missing = bool(np.isnan(flat).any() or np.isnan(reference).any())
    children = ensemble.children.ravel()
    # The frontier: one entry per (record, node, A, B) reached by some hybrid.
    node = np.tile(ensemble.roots, rows)
    record = np.repeat(np.arange(rows, dtype=np.int64), ensemble.n_trees)
    only_x = np.zeros(len(node), dtype=np.int64)  # A, as bits
    only_r = np.zeros(len(node), dtype=np.int64)  # B, as bits
    leaf_record, leaf_node, leaf_a, leaf_b = [], [], [], []
    while len(node):
        at_leaf = ensemble.is_leaf[node]
        if at_leaf.any():
            leaf_record.append(record[at_leaf])
            leaf_node.append(node[at_leaf])
            leaf_a.append(only_x[at_leaf])
            leaf_b.append(only_r[at_leaf])
            inside = ~at_leaf
            node, record, only_x, only_r = node[inside], record[inside], only_x[inside], only_r[inside]
            if not len(node):
                break
        feature = ensemble.feature[node]
        threshold = ensemble.threshold[node]
        x_value = flat[record * width + feature]
        r_value = reference[feature]
        x_right = ~(x_value <= threshold)  # NaN goes right here, fixed below
        r_right = ~(r_value <= threshold)
        if has_missing:
            missing_left = ensemble.missing_left[node]
            x_right &= ~(np.isnan(x_value) & missing_left)
            r_right &= ~(np.isnan(r_value) & missing_left)
        bit = player_bits[feature]
        parted = x_right != r_right
        # x's side: every entry where both agree, and where they part unless p is in B.
        x_side = ~parted | ((only_r & bit) == 0)
        r_side = parted & ((only_x & bit) == 0)
        x_child = children[2 * node + x_right]
        r_child = children[2 * node + r_right]
        node = np.concatenate([x_child[x_side], r_child[r_side]])
        record_next = np.concatenate([record[x_side], record[r_side]])
        only_x = np.concatenate([(only_x | np.where(parted, bit, 0))[x_side], only_x[r_side]])
        only_r = np.concatenate([only_r[x_side], (only_r | bit)[r_side]])
        record = record_next
    return _leaf_sums(ensemble, rows, n_players, leaf_record, leaf_node, leaf_a, leaf_b, weights_a, weights_b)


def _leaf_sums(
    ensemble: TreeEnsemble,
    rows: int,
    n_players: int,
    leaf_record: list[np.ndarray],
    leaf_node: list[np.ndarray],
    leaf_a: list[np.ndarray],
    leaf_b: list[np.ndarray],
    weights_a: np.ndarray,
    weights_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    record = np.concatenate(leaf_record)
    only_x = np.concatenate(leaf_a)
    only_r = np.concatenate(leaf_b)
    value = ensemble.value[np.concatenate(leaf_node)]
    if ensemble.averaged:
        value = value / ensemble.n_trees
    size_a = np.bitwise_count(only_x).astype(np.int64)
    size_b = np.bitwise_count(only_r).astype(np.int64)
    gain = value * weights_a[size_a, size_b]  # each player of A gets this
    loss = value * weights_b[size_a, size_b]  # each player of B loses this
    shifts = np.arange(n_players, dtype=np.int64)
    in_a = ((only_x[:, None] >> shifts) & 1).astype(float)
    in_b = ((only_r[:, None] >> shifts) & 1).astype(float)
    per_leaf = in_a * gain[:, None] - in_b * loss[:, None]
    shapley = np.zeros((rows, n_players))
    np.add.at(shapley, record, per_leaf)
    # S = every player reaches the leaves with B empty; S = nobody those with A empty.
    offset = 0.0 if ensemble.averaged else ensemble.offset
    record_margins = np.bincount(record, weights=np.where(size_b == 0, value, 0.0), minlength=rows) + offset
    reference_margins = np.bincount(record, weights=np.where(size_a == 0, value, 0.0), minlength=rows) + offset
    return shapley, record_margins, reference_margins


def _weights(n_players: int) -> tuple[np.ndarray, np.ndarray]:
    """Tables [|A|, |B|] of (|A|−1)!|B|!/(|A|+|B|)! and |A|!(|B|−1)!/(|A|+|B|)! (0 where undefined)."""
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
    return weights_a, weights_b
