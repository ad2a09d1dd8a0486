"""A training request's config: checked once, stored in one canonical form, rebuilt at run time.

Every way in (POST /train, a retrain, `demo_setup`, the bench, `evaluate`) hands the JSON
object to `job_config_parse`, which refuses anything unknown or out of range with a 400
naming the field. The job row keeps `JobConfig.as_dict()`: every option with its default
filled in, itself valid input to `job_config_parse` (a retrain parses a version's stored
config again, old versions' partial ones included). The worker rebuilds the config with
`JobConfig.from_dict`, without checking again.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from leadml.api.errors import ApplicationError, error_details_flatten
from leadml.ml.errors import ConfigError
from leadml.ml.features import resolve_feature_options
from leadml.ml.pipeline import resolve_preprocessing
from leadml.ml.types import TrainingConfig


@extend_schema_serializer(component_name="TrainingConfig")
class TrainingConfigSerializer(serializers.Serializer):
    """`training_config` of POST /train; null on an optional option means "not set"."""

    dataset_id = serializers.UUIDField(required=False, allow_null=True)
    # The option shares its name with DRF's Field.source attribute, which mypy sees as overridden.
    source = serializers.CharField(  # type: ignore[assignment]
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=100,
        help_text="the name (or id) of a data source the operator configured: train on the rows it holds for "
        "this user_id, read at training time. Never a URL or SQL. Default: the one source of this model_type "
        "when the user_id uploaded no training data",
    )
    # An empty list means "no restriction", as in the original service.
    features = serializers.ListField(child=serializers.CharField(), required=False, allow_empty=True, allow_null=True)
    preprocessing = serializers.DictField(required=False)
    param_grid = serializers.DictField(required=False, allow_null=True)
    cv_folds = serializers.IntegerField(required=False, min_value=2, max_value=20)
    test_size = serializers.FloatField(required=False, min_value=0.05, max_value=0.5)
    random_state = serializers.IntegerField(required=False, min_value=0, max_value=2**32 - 1)  # a numpy seed
    feature_engineering = serializers.DictField(required=False)
    missing_values = serializers.ListField(
        child=serializers.JSONField(), required=False, help_text="as feature_engineering.missing_values"
    )
    allow_columns = serializers.ListField(child=serializers.CharField(), required=False)
    calibrate = serializers.BooleanField(required=False)
    time_budget_s = serializers.FloatField(required=False, allow_null=True, min_value=1, max_value=86400)
    min_improvement = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            allowed = ", ".join(self.fields)
            raise serializers.ValidationError(
                {name: [f"unknown training_config option; allowed: {allowed}"] for name in unknown}
            )
        return attrs


@dataclass(frozen=True)
class JobConfig:
    """What a job trains with: the ML core's config and where its rows come from."""

    training: TrainingConfig = field(default_factory=TrainingConfig)
    dataset_id: str | None = None
    source: str | None = None  # a data source's name or id; the checked request holds its name
    min_improvement: float | None = None  # promotion margin (None: the registry's default)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "source": self.source,
            "min_improvement": self.min_improvement,
            **self.training.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobConfig:
        return cls(
            training=TrainingConfig.from_dict(data),
            dataset_id=data.get("dataset_id"),
            source=data.get("source"),
            min_improvement=data.get("min_improvement"),
        )

    def with_source(self, name: str) -> JobConfig:
        return replace(self, source=name)


def job_config_parse(raw: Any) -> JobConfig:
    """Check `training_config` and return it typed (400 naming the field on anything wrong)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ApplicationError("training_config must be an object", details={"training_config": ["not an object"]})
    serializer = TrainingConfigSerializer(data=raw)
    if not serializer.is_valid():
        details = error_details_flatten(serializer.errors, "training_config")
        name, messages = next(iter(details.items()))
        raise ApplicationError(f"{name}: {messages[0]}", details=details)
    data = serializer.validated_data
    try:
        preprocessing = resolve_preprocessing(data.get("preprocessing"))
        engineering = dict(data.get("feature_engineering") or {})
        if "missing_values" in data:  # also accepted at the top level of training_config
            engineering.setdefault("missing_values", data["missing_values"])
        feature_options = resolve_feature_options(engineering)
    except ConfigError as error:
        raise ApplicationError(error.message, details={error.field or "training_config": [error.message]}) from error
    # Checked now: the rest is rebuilt as a stored config is (one reading of every key).
    training = TrainingConfig.from_dict(
        {**data, "preprocessing": preprocessing, "feature_engineering": feature_options.request_dict()}
    )
    dataset_id = data.get("dataset_id")
    return JobConfig(
        training=training,
        dataset_id=str(dataset_id) if dataset_id else None,
        source=data.get("source") or None,
        min_improvement=data.get("min_improvement"),
    )
