"""Frozen dataclasses passed between the ML core and the Django layer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

LEAD_CONVERSION = "lead_conversion"
CUSTOMER_LIFETIME_VALUE = "customer_lifetime_value"
ModelType = Literal["lead_conversion", "customer_lifetime_value"]
MODEL_TYPES: tuple[str, ...] = (LEAD_CONVERSION, CUSTOMER_LIFETIME_VALUE)

# "tags": a list field (leadml.ml.nested); its categories are the values it has indicators for.
ColumnKind = Literal["numeric", "categorical", "datetime", "email", "job_title", "tags"]


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
    skew: float | None = None  # numeric columns: sample skewness of the training values
    # Datetime columns: how the column's dates are written, inferred from all its values
    # (leadml.ml.dates.DATE_FORMATS), so prediction reads "05-12-2017" as training did.
    # None in versions pickled before formats existed: read value by value, as they were.
    date_format: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "missing_share": self.missing_share,
            "min": self.minimum,
            "max": self.maximum,
            "skew": self.skew,
            "categories": list(self.categories),
            "date_format": self.date_format,
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
    # What inference was unsure of or overrode: ambiguous dates, id-named columns kept,
    # heuristics an explicit `features` list overruled.
    warnings: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def as_dict(self) -> dict[str, Any]:
        return {
            "columns": [column.as_dict() for column in self.columns],
            "dropped": [{"name": d.name, "reason": d.reason} for d in self.dropped],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class FeatureOptions:
    """Which feature-engineering steps run; every one can be switched off in the config."""

    date_features: bool = True  # dates -> age in days, month, weekday
    email_features: bool = True  # e-mail -> free-mail flag and domain
    seniority: bool = True  # job title -> seniority level 0..5 (the title is kept as a category)
    log_transform: bool = True  # log1p of skewed non-negative numerics
    skew_threshold: float = 1.0
    interactions: tuple[tuple[str, str], ...] = ()  # products of chosen numeric pairs
    missing_values: tuple[str, ...] = ()  # placeholders read as missing ("Select", "unknown")
    btyd: bool = True  # customer tables built from transactions: add BG/NBD + Gamma-Gamma predictions
    # Set by the service from the transaction dataset (not by the tenant): the horizon
    # the BTYD predictions look ahead, equal to the target's.
    btyd_horizon_days: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "date_features": self.date_features,
            "email_features": self.email_features,
            "seniority": self.seniority,
            "log_transform": self.log_transform,
            "skew_threshold": self.skew_threshold,
            "interactions": [list(pair) for pair in self.interactions],
            "missing_values": list(self.missing_values),
            "btyd": self.btyd,
            "btyd_horizon_days": self.btyd_horizon_days,
        }

    def request_dict(self) -> dict[str, Any]:
        """The options as `training_config.feature_engineering` takes them (the horizon is the service's)."""
        options = self.as_dict()
        del options["btyd_horizon_days"]
        return options

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureOptions:
        """Rebuild options from `as_dict()` / `request_dict()` output (checked already: no validation here)."""
        values = dict(data)
        if "interactions" in values:
            values["interactions"] = tuple(tuple(pair) for pair in values["interactions"])
        if "missing_values" in values:
            values["missing_values"] = tuple(values["missing_values"])
        return cls(**values)


@dataclass(frozen=True)
class TrainingConfig:
    """What `POST /train` may tune. Unknown preprocessing values are refused upstream."""

    features: tuple[str, ...] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    feature_options: FeatureOptions = field(default_factory=FeatureOptions)
    allow_columns: tuple[str, ...] = ()  # leakage suspects the tenant keeps on purpose
    calibrate: bool = True  # lead models: calibrate probabilities on out-of-fold scores
    # The calibrations the choice by CV log-loss considers ("none", "sigmoid", "isotonic");
    # not a request option: tests narrow it to exercise one method.
    calibration_methods: tuple[str, ...] = ("none", "sigmoid", "isotonic")
    time_budget_s: float | None = None  # `auto`: stop trying further algorithms past this
    param_grid: dict[str, list[Any]] | None = None
    cv_folds: int = 5
    test_size: float = 0.2
    random_state: int = 42
    n_jobs: int = 1  # the worker's, never the request's: not in `as_dict`

    def as_dict(self) -> dict[str, Any]:
        """Every request option, defaults filled in: what a job stores, and valid input to POST /train again."""
        return {
            "features": list(self.features) if self.features is not None else None,
            "preprocessing": dict(self.preprocessing),
            "feature_engineering": self.feature_options.request_dict(),
            "allow_columns": list(self.allow_columns),
            "calibrate": self.calibrate,
            "time_budget_s": self.time_budget_s,
            "param_grid": self.param_grid,
            "cv_folds": self.cv_folds,
            "test_size": self.test_size,
            "random_state": self.random_state,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Rebuild a config from `as_dict()` output (checked already: no validation here)."""
        features = data.get("features")
        return cls(
            features=tuple(features) if features else None,
            preprocessing=dict(data.get("preprocessing") or {}),
            feature_options=FeatureOptions.from_dict(data.get("feature_engineering") or {}),
            allow_columns=tuple(data.get("allow_columns") or ()),
            calibrate=data.get("calibrate", True),
            time_budget_s=data.get("time_budget_s"),
            param_grid=data.get("param_grid"),
            cv_folds=data.get("cv_folds", 5),
            test_size=data.get("test_size", 0.2),
            random_state=data.get("random_state", 42),
        )


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
    # The held-out rows (raw features, encoded target, split positions): a challenger
    # and the active model are compared on these before promotion. Never persisted.
    holdout: tuple[Any, Any, Any] | None = None


@dataclass(frozen=True)
class ServingCheck:
    """Whether a version's compiled scorer (leadml.ml.compiled) reproduced its served output.

    Kept with the version (the compiled arrays never are); a version whose check failed,
    or was made under another scikit-learn, serves through scikit-learn (or is checked
    again on first use).
    """

    compiled: bool
    max_abs_difference: float | None
    rows: int
    reason: str
    sklearn_version: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "compiled": self.compiled,
            "max_abs_difference": self.max_abs_difference,
            "rows": self.rows,
            "reason": self.reason,
            "sklearn_version": self.sklearn_version,
        }
