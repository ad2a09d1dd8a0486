"""Turn a tenant's target column into model labels (0/1 for leads, numbers for CLV)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from leadml.ml.errors import DataError
from leadml.ml.parsing import to_numeric
from leadml.ml.types import is_classification

# Values that mean "converted" when the tenant gives no `positive_values`.
KNOWN_POSITIVE = {"1", "1.0", "true", "yes", "y", "won", "win", "customer", "converted", "closed_won", "closed won"}
KNOWN_NEGATIVE = {"0", "0.0", "false", "no", "n", "lost", "lose", "not_converted", "closed_lost", "closed lost"}


def normalise_label_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text.lower() if text else None


def encode_target(
    values: pd.Series, *, model_type: str, positive_values: Sequence[Any] | None = None
) -> pd.Series:
    """Return labels aligned with `values`: 0/1 (leads) or floats (CLV); NaN where unknown.

    Raises DataError when the column cannot be read as the model type's target.
    """
    if not is_classification(model_type):
        numbers = to_numeric(values)
        present = values.map(normalise_label_text).notna()
        bad = present & numbers.isna()
        if bad.any():
            example = values[bad].iloc[0]
            raise DataError(
                f"target values must be numbers for customer_lifetime_value; {int(bad.sum())} are not "
                f"(e.g. {example!r})",
                field="target",
            )
        return numbers

    texts = values.map(normalise_label_text)
    if positive_values:
        positives = {normalise_label_text(value) for value in positive_values}
        return texts.map(lambda text: np.nan if not isinstance(text, str) else float(text in positives))

    distinct = set(texts.dropna().unique())
    unknown = distinct - KNOWN_POSITIVE - KNOWN_NEGATIVE
    if unknown:
        shown = ", ".join(sorted(repr(value) for value in distinct)[:10])
        raise DataError(
            f"cannot tell which target values mean 'converted' (values: {shown}); "
            "send positive_values, e.g. [\"customer\", \"won\"]",
            field="positive_values",
        )
    return texts.map(lambda text: np.nan if not isinstance(text, str) else float(text in KNOWN_POSITIVE))


def check_trainable(
    labels: pd.Series, *, model_type: str, min_rows: int, min_rows_per_class: int
) -> None:
    """Raise DataError when the labelled rows cannot train a model of this type."""
    labelled = labels.dropna()
    if len(labelled) < min_rows:
        raise DataError(
            f"at least {min_rows} rows with a target value are needed to train; got {len(labelled)}",
            field="rows",
        )
    if is_classification(model_type):
        counts = labelled.value_counts()
        if len(counts) < 2:
            only = "converted" if labelled.iloc[0] == 1 else "not converted"
            raise DataError(
                f"the target has a single class (every labelled row is {only}); both outcomes are needed",
                field="target",
            )
        smallest = int(counts.min())
        if smallest < min_rows_per_class:
            raise DataError(
                f"each class needs at least {min_rows_per_class} rows; the smaller class has {smallest}",
                field="target",
            )
    elif labelled.nunique() < 2:
        raise DataError("the target is constant; a lifetime-value model needs varying values", field="target")
