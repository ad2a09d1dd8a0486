"""Serializer pieces shared by every app's API."""
import threading
from typing import Any

from django.utils.functional import cached_property
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

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


class FieldsBuiltOnceSerializer(serializers.Serializer):
    """For request serializers on the scoring path: their fields are built once per thread.

    DRF deep-copies every declared field for each serializer instance (so that an instance
    may change its own fields): a third of what validating a `/predict` body cost. These
    serializers never change their fields, and a thread validates one request at a time,
    so each thread keeps one bound copy per serializer class and points it at the
    serializer in use (`parent`, hence `root`, `context` and `partial`, are the current ones).
    """

    _kept = threading.local()

    @cached_property
    def fields(self) -> BindingDict:
        kept: dict[type, BindingDict] = self._kept.__dict__.setdefault("fields", {})
        fields = kept.get(type(self))
        if fields is None:
            fields = BindingDict(self)
            for name, field in self.get_fields().items():
                fields[name] = field  # binds a fresh copy, as DRF does
            kept[type(self)] = fields
        else:
            fields.serializer = self
            for field in fields.values():
                field.parent = self
        return fields
