"""What scoring returns: one typed result per request, each record's answer typed too.

`predictions_make` builds a `ScoringResult` once; the answer bodies of `/predict` and
`/predict/batch` are rendered from it by the response serializers in
predictions/serializers.py (the ones the OpenAPI schema documents), and each record's
`RecordOutput` is also what the prediction log stores. TypedDicts rather than classes:
a 10,000-row batch builds 10,000 of them, and a dict costs nothing to store as JSON.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from registry.models import ModelVersion


class ConfidenceDetail(TypedDict):
    value: float
    method: str  # class_probability / rules (leads); holdout_band_coverage / training_r2 / rules_evidence (CLV)


class Explanation(TypedDict):
    method: str  # linear_exact, shapley_exact, shapley_sampled or unavailable
    baseline: NotRequired[float]
    unit: NotRequired[str]
    detail: NotRequired[str | None]  # why there are no reasons


class RecordOutput(TypedDict):
    """One record's answer; leads carry the first pair of optional fields, CLV the second."""

    source: str  # "model" or "rules"
    confidence: float
    confidence_detail: ConfidenceDetail
    score: int | None
    tier: str | None
    warnings: list[str]
    conversion_probability: NotRequired[float]
    prediction_class: NotRequired[str]
    lifetime_value: NotRequired[float]
    value_category: NotRequired[str]
    reasons: NotRequired[list[dict[str, Any]]]
    explanation: NotRequired[Explanation]
    fallback_reason: NotRequired[str]  # the rules' outputs
    prediction_id: NotRequired[int]  # once stored: the public id (predictions.public_ids)


class ModelInfo(TypedDict):
    model_path: str | None
    algorithm: str
    training_date: str | None
    model_name: NotRequired[str]
    version: NotRequired[int]
    model_version_id: NotRequired[int]


class FeatureImportance(TypedDict):
    top_features: list[list[Any]]  # [name, weight] pairs, the original shape
    feature_count: int
    explanation_method: str


@dataclass
class ScoringResult:
    """What a request gets: per-record outputs plus the model facts shared by all of them."""

    model_type: str
    source: str
    outputs: list[RecordOutput]
    model_info: ModelInfo
    feature_importance: FeatureImportance
    model_version: ModelVersion | None
    fallback_reason: str | None = None
    prediction_ids: list[int] = field(default_factory=list)  # the table's own numbers, never shown
    # Each record's entity id ("" when it has none): given, else its id field (entity_id_of).
    entity_ids: list[str] = field(default_factory=list)
