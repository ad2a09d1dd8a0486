"""Serializer pieces shared by every app's API."""
from rest_framework import serializers

from leadml.ml.types import MODEL_TYPES


class UserIdField(serializers.CharField):
    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)


class ModelTypeField(serializers.ChoiceField):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(choices=MODEL_TYPES, **kwargs)
