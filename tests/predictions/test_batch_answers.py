"""A batch's answers, computed for every record at once, equal the one-value functions' figures. No database."""
from __future__ import annotations

import bisect

import numpy as np
import pytest
from django.test import override_settings

from leadml.api.errors import ApplicationError
from leadml.ml.confidence import class_probability, lead_confidence
from leadml.api.records import records_check
import leadml.api.records
from predictions.services import (
    _lead_outputs,
    _value_outputs,
    prediction_class,
    prediction_classes,
    tier_for_percentile,
    tiers_for_percentiles,
    value_categories,
    value_category,
)

QUANTILES = sorted(np.random.default_rng(0).random(101).tolist())
# Rounding edges (x.xxxxxx5), class and tier boundaries, the extremes.
EDGES = [0.0, 1.0, 0.4, 0.7, 0.5, 0.1234565, 0.0000005, 0.9999995, 0.4000001, 0.6999999, 0.005, 0.015, 0.125]


def percentile(value: float) -> float:
    return 100.0 * bisect.bisect_right(QUANTILES, value) / len(QUANTILES)


def percentiles(values: np.ndarray) -> np.ndarray:
    return np.array([percentile(value) for value in values.tolist()])


def test_lead_answers_equal_the_one_value_functions() -> None:
    probabilities = np.concatenate([np.random.default_rng(1).random(5000), EDGES, QUANTILES])
    warnings = [[f"w{index}"] for index in range(len(probabilities))]

    outputs = _lead_outputs(probabilities, percentiles(probabilities), warnings)

    for probability, output, record_warnings in zip(probabilities.tolist(), outputs, warnings):
        assert output == {
            "warnings": record_warnings,
            "source": "model",
            "conversion_probability": round(probability, 6),
            "confidence": round(lead_confidence(probability), 6),
            "confidence_detail": {"value": round(class_probability(probability), 6), "method": "class_probability"},
            "prediction_class": prediction_class(probability),
            "score": int(round(probability * 100)),
            "tier": tier_for_percentile(percentile(probability)),
        }
        assert list(output) == ["warnings", "source", "conversion_probability", "confidence", "confidence_detail",
                                "prediction_class", "score", "tier"]


def test_value_answers_equal_the_one_value_functions() -> None:
    values = np.concatenate([np.random.default_rng(2).lognormal(6, 2, 3000), [0.0, 100.0, 1000.0, 10000.0, 100.005]])
    scaled = values / values.max()
    confidences = np.random.default_rng(3).random(len(values))

    outputs = _value_outputs(values, percentiles(scaled), [[] for _ in values], ("holdout_band_coverage", confidences))

    for value, share, confidence, output in zip(values.tolist(), scaled.tolist(), confidences.tolist(), outputs):
        assert output == {
            "warnings": [],
            "source": "model",
            "lifetime_value": round(value, 2),
            "confidence": round(confidence, 6),
            "confidence_detail": {"value": round(confidence, 6), "method": "holdout_band_coverage"},
            "value_category": value_category(value),
            "score": int(round(percentile(share))),
            "tier": tier_for_percentile(percentile(share)),
        }


def _walked(records: list, monkeypatch: pytest.MonkeyPatch) -> ApplicationError | None:
    """What `records_check` says when it walks every record (no screen)."""
    with monkeypatch.context() as patched:
        patched.setattr(leadml.api.records, "_records_pass_screen", lambda records: False)
        try:
            records_check(records, field="data")
        except ApplicationError as error:
            return error
    return None


def _screened(records: list) -> ApplicationError | None:
    try:
        records_check(records, field="data")
    except ApplicationError as error:
        return error
    return None


def crm_records(count: int) -> list[dict]:
    return [
        {"id": f"lead-{index}", "email": f"user{index}@acme.com", "lead_score": index % 100, "size": 10.5,
         "vip": index % 2 == 0, "note": None, "tags": ["a", "b"], "custom_fields": {"plan": "pro", "seats": [1, 2]}}
        for index in range(count)
    ]


@override_settings(LEADML_MAX_VALUE_CHARS=50)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "jane\x00@acme.com"),
        ("tags", ["ok", "bad\x00"]),
        ("custom_fields", {"pl\x00an": "pro"}),
        ("custom_fields", {"a": {"b": {"c": {"d": {"e": 1}}}}}),
        ("lead_score", 10**400),
        ("note", "x" * 51),
        ("size", (1, 2)),  # not refused, but not screened either: walked, to the next problem
    ],
)
@pytest.mark.parametrize("same_fields", [True, False])
def test_a_batch_refused_by_the_screen_gets_the_walks_error(
    field: str, value: object, same_fields: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = crm_records(7500)
    if not same_fields:
        records[5]["extra"] = 1
    records[7371][field] = value
    records[7400]["email"] = "second\x00problem"

    walked, screened = _walked(records, monkeypatch), _screened(records)

    assert walked is not None and screened is not None
    assert (screened.message, screened.details) == (walked.message, walked.details)
    named = "data[7400].email" if field == "size" else f"data[7371].{field}"
    assert any(key.startswith(named) for key in screened.details)


def test_a_nul_in_a_field_name_is_named_as_the_walk_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    records = crm_records(500)
    records[321]["bad\x00key"] = 1

    assert (_screened(records).details, _screened(records).message) == (
        _walked(records, monkeypatch).details, _walked(records, monkeypatch).message)


def test_a_clean_batch_passes_the_screen() -> None:
    assert leadml.api.records._records_pass_screen(crm_records(1000))
    assert _screened(crm_records(1000)) is None


def test_a_few_values_get_the_figures_many_do() -> None:
    """Below 16 values the answers come from the one-value functions, above from np.select: the same."""
    many = np.array(EDGES * 3 + [150.0, 1000.0, 1000.5, 10000.0, 10001.0, 99.0, 90.0, 69.99])
    assert len(many) >= 16
    for index, value in enumerate(many.tolist()):
        one = np.array([value])
        assert prediction_classes(one) == [prediction_classes(many)[index]]
        assert value_categories(one) == [value_categories(many)[index]]
        assert tiers_for_percentiles(one * 100) == [tiers_for_percentiles(many * 100)[index]]
