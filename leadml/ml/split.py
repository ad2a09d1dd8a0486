"""A held-out split that stays put as a tenant's data grows.

Each row gets a position in [0, 1) from a hash of its identity: its id when the data has
an identifier column (`id`, `lead_id`, `customer_id`, ... whose values are nearly unique),
its values otherwise. Rows whose position is below `test_size` are held out. Retraining on more rows of the same
data holds out the same old rows, so a new version and the active one can be compared
on rows neither trained on (the active model's own held-out rows below its threshold).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadml.ml.parsing import to_numeric
from leadml.ml.schema import IDENTIFIER_NAME, is_identifier_like

# No id value may hold more than this share of the rows (or two rows, on small data).
# Rows sharing an id go to the same side, so a "landing_page_id" with a few hundred
# repeated values would hold out whole pages: a share of rows far from `test_size`
# (10 % instead of 20 % on one upload) and test pages never seen in training.
IDENTITY_MAX_GROUP_SHARE = 0.01


@dataclass(frozen=True)
class HoldoutSplit:
    train: np.ndarray  # row positions (iloc) of the training rows
    test: np.ndarray
    positions: np.ndarray  # every row's hash position in [0, 1)
    # Rows with a position below this are held out; None when small classes forced a
    # rank-based split (then which rows a model trained on is not a threshold).
    threshold: float | None
    # What the positions hash: "id:<column>" or "values" (two splits compare only if equal).
    key: str


def identity_column(frame: pd.DataFrame) -> str | None:
    """The id column the split hashes: the first identifier-named column with no gaps whose values hardly repeat.

    Ids need not be unique: rows sharing an id (the same lead uploaded twice) land on the
    same side of the split, so a copy cannot leak from training into the held-out rows.
    But a column whose values repeat a lot is a category, not an identity: hashing it
    would move whole groups of rows at once.
    """
    if frame.empty:
        return None
    largest_group = max(2, int(IDENTITY_MAX_GROUP_SHARE * len(frame)))
    for name in frame.columns:
        if not IDENTIFIER_NAME.search(str(name).lower()) or not frame[name].notna().all():
            continue
        counts = _normalised_text(frame[name]).value_counts()
        if is_identifier_like(len(counts), len(frame)) and int(counts.max()) <= largest_group:
            return str(name)
    return None


def _normalised_text(column: pd.Series) -> pd.Series:
    """Text that does not change when a column's dtype does (1 vs 1.0, None vs NaN)."""
    numbers = to_numeric(column)
    text = column.astype(str).where(column.notna(), "")
    return text.where(numbers.isna(), numbers.map(repr))


def row_positions(frame: pd.DataFrame, salt: int = 0) -> np.ndarray:
    """Return each row's stable position in [0, 1); another `salt` draws another split."""
    identity = identity_column(frame)
    columns = [identity] if identity else sorted(frame.columns, key=str)
    normalised = pd.DataFrame({str(name): _normalised_text(frame[name]) for name in columns})
    hash_key = f"leadml{salt:010d}"[-16:]
    hashed = pd.util.hash_pandas_object(normalised, index=False, hash_key=hash_key).to_numpy(dtype=np.uint64)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def holdout_split(
    frame: pd.DataFrame, target: np.ndarray, *, test_size: float, classification: bool, salt: int = 0
) -> HoldoutSplit:
    """Hold out rows whose position is below `test_size` (per class: stratified on average).

    When a class would end up with no held-out row or fewer than two training rows (tiny
    data), that class takes its `test_size` share of lowest positions instead.
    """
    positions = row_positions(frame, salt)
    held = positions < test_size
    threshold: float | None = test_size
    groups = [target == value for value in np.unique(target)] if classification else [np.ones(len(target), bool)]
    for members in groups:
        count = int(members.sum())
        held_count = int((held & members).sum())
        if held_count == 0 or count - held_count < 2:
            wanted = min(max(1, int(round(count * test_size))), count - 2) if count > 2 else 0
            order = np.flatnonzero(members)[np.argsort(positions[members], kind="stable")]
            held[members] = False
            held[order[:wanted]] = True
            threshold = None
    identity = identity_column(frame)
    return HoldoutSplit(
        train=np.flatnonzero(~held),
        test=np.flatnonzero(held),
        positions=positions,
        threshold=threshold,
        key=f"id:{identity}:salt{salt}" if identity else f"values:salt{salt}",
    )
