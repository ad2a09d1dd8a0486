"""Errors the ML core raises; the Django layer maps them to 4xx answers."""
from __future__ import annotations


class MLError(Exception):
    """Base of every error the ML core raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class DataError(MLError):
    """Training data that cannot train a model (no target, one class, too few rows)."""


class RecordsError(DataError):
    """Several records that cannot be read, each named: `problems` is ((field, message), ...).

    `field` and `message` (the MLError ones) summarise; the Django layer turns every
    problem into its own entry of a 400's `details`.
    """

    def __init__(self, message: str, *, field: str | None = None, problems: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message, field=field)
        self.problems = problems


class ConfigError(MLError):
    """A training or preprocessing option that does not exist or does not fit."""


class InputError(MLError):
    """A record sent for prediction that does not match the model's feature schema."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None) -> None:
        super().__init__(message, field=field)
        self.row = row


class ArtifactIntegrityError(MLError):
    """A model artifact whose bytes do not match the checksum recorded when it was written."""
