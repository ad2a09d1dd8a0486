"""Serializer pieces shared by every app's API."""
from typing import Any

from rest_framework import serializers

from leadml.api.errors import ApplicationError
from leadml.ml.types import MODEL_TYPES


class UserIdField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)


class ModelTypeField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=MODEL_TYPES, **kwargs)


def model_type_path_check(model_type: str) -> None:
    """A `{model_type}` path segment must name a model type (400, like the body field)."""
    if model_type not in MODEL_TYPES:
        raise ApplicationError(
            f"model_type must be one of {', '.join(MODEL_TYPES)}", details={"model_type": ["unknown model type"]}
        )
