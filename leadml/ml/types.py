"""Frozen dataclasses passed between the ML core and the Django layer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

LEAD_CONVERSION = "lead_conversion"
CUSTOMER_LIFETIME_VALUE = "customer_lifetime_value"
ModelType = Literal["lead_conversion", "customer_lifetime_value"]
MODEL_TYPES: tuple[str, ...] = (LEAD_CONVERSION, CUSTOMER_LIFETIME_VALUE)

ColumnKind = Literal["numeric", "categorical", "datetime", "email", "job_title"]


def is_classification(model_type: str) -> bool:
    return model_type == LEAD_CONVERSION


@dataclass(frozen=True)
class ColumnSpec:
    """One input column the model reads, as learned from the training data."""

    name: str
    kind: ColumnKind
    missing_share: float = 0.0
    minimum: float | None = None  # numeric columns: training range
    maximum: float | None = None
    categories: tuple[str, ...] = ()  # categorical columns: most frequent values seen

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "missing_share": self.missing_share,
            "min": self.minimum,
            "max": self.maximum,
            "categories": list(self.categories),
        }


@dataclass(frozen=True)
class DroppedColumn:
    name: str
    reason: str


@dataclass(frozen=True)
class FeatureSchema:
    """The columns a model reads and the ones it deliberately ignores."""

    columns: tuple[ColumnSpec, ...]
    dropped: tuple[DroppedColumn, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def as_dict(self) -> dict[str, Any]:
        return {
            "columns": [column.as_dict() for column in self.columns],
            "dropped": [{"name": d.name, "reason": d.reason} for d in self.dropped],
        }


@dataclass(frozen=True)
class TrainingConfig:
    """What `POST /train` may tune. Unknown preprocessing values are refused upstream."""

    features: tuple[str, ...] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    param_grid: dict[str, list[Any]] | None = None
    cv_folds: int = 5
    test_size: float = 0.2
    random_state: int = 42
    n_jobs: int = 1


@dataclass(frozen=True)
class CrossValidation:
    metric: str
    mean: float
    std: float
    folds: int


@dataclass(frozen=True)
class TrainResult:
    """Everything training learned; `bundle` is what gets persisted."""

    bundle: Any  # leadml.ml.bundle.ModelBundle
    algorithm: str
    best_params: dict[str, Any]
    cross_validation: CrossValidation
    metrics: dict[str, Any]
    feature_importance: tuple[tuple[str, float], ...]
    explanation_method: str
    report: dict[str, Any]
