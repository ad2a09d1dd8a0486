"""The `confidence` of an answer: the original lead formula, held-out coverage for lifetime value."""
from __future__ import annotations

import numpy as np
import pytest

from leadml.ml.confidence import class_probability, lead_confidence, value_confidence_fit


@pytest.mark.parametrize(
    ("probability", "expected"),
    [(0.5, 0.25), (0.9, (0.8 + 0.9) / 2), (0.1, (0.8 + 0.9) / 2), (1.0, 1.0), (0.0, 1.0), (0.7, (0.4 + 0.7) / 2)],
)
def test_lead_confidence_is_the_original_formula(probability: float, expected: float) -> None:
    assert lead_confidence(probability) == pytest.approx(expected)
    assert class_probability(probability) == pytest.approx(max(probability, 1 - probability))


def test_value_confidence_is_high_where_held_out_predictions_were_close() -> None:
    rng = np.random.default_rng(0)
    predicted = rng.uniform(0, 1000, 4000)
    # Small values are predicted well, large ones badly (a heavy tail of surprises).
    noise = np.where(predicted < 500, rng.normal(0, 20, 4000), rng.normal(0, 800, 4000))
    actual = np.clip(predicted + noise, 0, None)
    fitted = value_confidence_fit(predicted, actual)
    low, high = fitted.of(np.array([100.0, 900.0]))
    assert low > 0.8 and high < 0.4
    # Every value gets a confidence in (0, 1), including values beyond the held-out range.
    values = fitted.of(np.array([-5.0, 0.0, 1e9]))
    assert ((values > 0) & (values < 1)).all()
    described = fitted.as_dict()
    assert described["method"] == "holdout_band_coverage" and described["bands"][-1]["up_to"] is None


def test_value_confidence_survives_ties_and_empty_data() -> None:
    zeros = value_confidence_fit(np.zeros(100), np.zeros(100))
    assert zeros.of(np.array([0.0]))[0] == pytest.approx(101 / 102)
    empty = value_confidence_fit(np.array([]), np.array([]))
    assert empty.of(np.array([3.0]))[0] == 0.5
