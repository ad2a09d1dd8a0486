"""How much to trust one prediction: the `confidence` field of every answer (0..1).

Lead conversion keeps the original service's formula, which the CRM's dashboards read:

    confidence = (min(2·|p − 0.5|, 1) + max(p, 1 − p)) / 2

(the mean of "distance from a coin flip" and "probability of the predicted class").
Next to it, `class_probability` is the better-founded figure for a calibrated model:
max(p, 1 − p) is the probability that the predicted class (converts or not) is right.

Lifetime value has no class probability, so its confidence is measured on the rows
training held out: of the held-out customers whose prediction fell in the same band
(tenths of the held-out predictions), the share whose actual value came within the
tolerance of the prediction, max(25 % of the prediction, 10 % of the mean actual value).
A customer predicted in a band where the model was usually right gets a high
confidence; one in a band where actual values scatter widely (the whales) a low one.
The shares are smoothed towards one half ((hits + 1) / (rows + 2)), so a thin band
cannot claim certainty.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RELATIVE_TOLERANCE = 0.25
ABSOLUTE_TOLERANCE_SHARE = 0.10
BANDS = 10


def lead_confidence(probability: float) -> float:
    """The original service's confidence of a conversion probability."""
    return (min(2.0 * abs(probability - 0.5), 1.0) + max(probability, 1.0 - probability)) / 2.0


def class_probability(probability: float) -> float:
    """The probability that the predicted class is right, for a calibrated probability."""
    return max(probability, 1.0 - probability)


@dataclass(frozen=True)
class ValueConfidence:
    """Per band of predicted value, the held-out share predicted within tolerance."""

    upper_edges: tuple[float, ...]  # a value belongs to the first band whose edge is >= it
    shares: tuple[float, ...]
    absolute_tolerance: float
    relative_tolerance: float = RELATIVE_TOLERANCE

    def of(self, values: np.ndarray) -> np.ndarray:
        """Return each value's confidence (0..1)."""
        values = np.asarray(values, dtype=float)
        bands = np.minimum(np.searchsorted(np.asarray(self.upper_edges), values, side="left"), len(self.shares) - 1)
        return np.asarray(self.shares)[bands]

    def as_dict(self) -> dict[str, object]:
        return {
            "method": "holdout_band_coverage",
            "relative_tolerance": self.relative_tolerance,
            "absolute_tolerance": round(self.absolute_tolerance, 6),
            "bands": [
                {"up_to": round(edge, 6) if np.isfinite(edge) else None, "confidence": round(share, 6)}
                for edge, share in zip(self.upper_edges, self.shares)
            ],
        }


def value_confidence_fit(predicted: np.ndarray, actual: np.ndarray, *, bands: int = BANDS) -> ValueConfidence:
    """Measure, on held-out rows, how often predictions in each band came within tolerance."""
    predicted = np.asarray(predicted, dtype=float)
    actual = np.asarray(actual, dtype=float)
    absolute = ABSOLUTE_TOLERANCE_SHARE * float(np.mean(np.abs(actual))) if len(actual) else 0.0
    if not len(predicted):
        return ValueConfidence(upper_edges=(float("inf"),), shares=(0.5,), absolute_tolerance=absolute)
    hits = np.abs(actual - predicted) <= np.maximum(RELATIVE_TOLERANCE * np.abs(predicted), absolute)
    # Band edges at the held-out predictions' quantiles; ties (many zero predictions) merge bands.
    edges = np.unique(np.quantile(predicted, np.linspace(0, 1, bands + 1)[1:]))
    edges[-1] = np.inf
    assigned = np.searchsorted(edges, predicted, side="left")
    shares = []
    for band in range(len(edges)):
        members = assigned == band
        shares.append((float(hits[members].sum()) + 1.0) / (float(members.sum()) + 2.0))
    return ValueConfidence(
        upper_edges=tuple(float(edge) for edge in edges), shares=tuple(shares), absolute_tolerance=absolute
    )
