"""The persisted unit of a model version: fitted pipeline plus what prediction needs.

`ModelBundle.prepare` validates raw records against the feature schema (wrong types are
refused, unknown and missing fields and out-of-range values become warnings) and
`ModelBundle.predict` scores them. `ModelBundle.model_input` and
`ModelBundle.predict_matrix` split scoring in two (records to the estimator's input
matrix, matrix to the served value), so a few records skip pandas (leadml.ml.fastpath)
and explanations (leadml.ml.reasons) can score mixtures of a record and a baseline.

`predict_matrix` scores small inputs with the estimator compiled to numpy
(leadml.ml.compiled) once the version's parity check (`serving`, made at training)
says it reproduces the pipeline; versions trained before that check are verified on
their reference sample on first use, and serve through scikit-learn when they fail it
or have none.
"""
from __future__ import annotations

import copy
import threading
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble._forest import BaseForest
from sklearn.pipeline import Pipeline
from sklearn.tree import BaseDecisionTree

from leadml.ml.compiled import LAZY_CHECK_ROWS, CompiledScorer, NotCompilable, compile_scorer, refused, verify_scorer
from leadml.ml.confidence import ValueConfidence
from leadml.ml.errors import InputError
from leadml.ml.explain import transformed_sources
from leadml.ml.fastpath import COMPILED_MAX_ROWS, CompiledPipeline, compile_pipeline
from leadml.ml.types import FeatureSchema, ServingCheck, is_classification
from leadml.ml.validation import (  # noqa: F401  (RECORD_WARNING_FIELD: imported from here by callers)
    EACH_MAX_ROWS,
    RECORD_WARNING_FIELD,
    PreparedRecords,
    placeholder_texts,
    prepare_by_column,
    prepare_each,
)

# Training records kept with each version, the reference of drift checks (leadml.ml.drift):
# enough for distance measures to be steady on large datasets, small next to the model.
REFERENCE_SAMPLE_ROWS = 5000
# Builds (and, for old versions, verifies) one compiled scorer at a time per process.
_SCORER_LOCK = threading.Lock()


@dataclass
class ModelBundle:
    model_type: str
    algorithm: str
    pipeline: Pipeline
    schema: FeatureSchema
    trained_at: str
    # Lead models: the calibrated wrapper whose probabilities are served; `pipeline` is
    # the fitted pipeline inside it (what explanations read).
    calibrator: Any = None
    feature_importance: list[tuple[str, float]] = field(default_factory=list)
    explanation_method: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    # Percentiles 0..100 of held-out predictions: a score's rank among trained-on customers.
    score_quantiles: list[float] = field(default_factory=list)
    # Training held out rows whose split position (leadml.ml.split) is below this.
    holdout_threshold: float | None = None
    holdout_key: str | None = None  # what the split hashed (leadml.ml.split.HoldoutSplit.key)
    # The typical training record (medians, most frequent values): the explanations' baseline.
    baseline_record: dict[str, Any] | None = None
    # Up to REFERENCE_SAMPLE_ROWS training records as the model read them, for comparisons.
    reference_sample: pd.DataFrame | None = None
    # Lifetime-value models: held-out coverage per band of predicted value, each
    # prediction's confidence (leadml.ml.confidence). None for leads and older versions.
    value_confidence: ValueConfidence | None = None
    # Whether the compiled estimator reproduced the served output on the held-out rows
    # (leadml.ml.compiled). None for versions trained before the check: checked on first use.
    serving: ServingCheck | None = None
    # Columns training left out as leakage suspects (promotion: an active version reading
    # them is not compared like for like).
    leakage_excluded: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        # Compiled transforms and estimators are rebuilt after loading, never saved.
        return {key: value for key, value in self.__dict__.items() if not key.startswith("_cached")}

    @property
    def classification(self) -> bool:
        return is_classification(self.model_type)

    def prepare(self, records: Sequence[Any], *, lenient: bool = False) -> PreparedRecords:
        """Validate records and return the frame to score with per-record warnings.

        `lenient` reads a value of the wrong type as missing (with a warning) instead of
        refusing the record: for scoring stored rows, never for requests. A batch is
        checked a column at a time, a few records one by one: the same outcome
        (leadml.ml.validation).
        """
        placeholders = placeholder_texts(self.placeholders)
        check = prepare_each if len(records) <= EACH_MAX_ROWS else prepare_by_column
        return check(records, self.schema, placeholders, lenient=lenient)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Values the model was trained to read as missing ("Select", "unknown", ...)."""
        options = getattr(self.pipeline.named_steps["features"], "options", None)
        return options.missing_values if options is not None else ()

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the positive-class probability (leads) or the predicted value (CLV)."""
        if self.classification:
            scorer = self.calibrator if self.calibrator is not None else self.pipeline
            return scorer.predict_proba(frame)[:, 1]
        # A lifetime value below zero means nothing; the regressors may extrapolate there.
        return np.clip(self.pipeline.predict(frame), 0.0, None)

    def model_input(self, prepared: PreparedRecords) -> np.ndarray:
        """Return the matrix the estimator reads for these records (fast for a few records).

        InputError (naming the record and field) for a number the estimator cannot compute
        with: scikit-learn's forests and trees read their input as float32, so a value
        beyond ±3.4e38 once transformed (1e300, say) is refused as infinite.
        """
        compiled = self._compiled() if len(prepared) <= COMPILED_MAX_ROWS else None
        if compiled is not None:
            matrix = compiled.matrix(prepared.rows)
        else:
            matrix = np.asarray(self.pipeline[:-1].transform(prepared.frame), dtype=float)
        if isinstance(self.pipeline.steps[-1][1], (BaseForest, BaseDecisionTree)):
            _float32_check(matrix, prepared, self.pipeline)
        return matrix

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Return what `predict` would for the records behind an estimator input matrix."""
        scorer = self.compiled_scorer()
        if scorer is not None and len(matrix) <= scorer.max_rows:
            served = scorer.predict(matrix)
            if served is not None:  # else inputs sklearn must judge (and refuse)
                return served
        return self.predict_matrix_sklearn(matrix)

    def predict_matrix_sklearn(self, matrix: np.ndarray) -> np.ndarray:
        """`predict_matrix` through scikit-learn, whatever the size."""
        estimator = self.pipeline.steps[-1][1]
        if not self.classification:
            return np.clip(estimator.predict(matrix), 0.0, None)
        if self.calibrator is None:
            return estimator.predict_proba(matrix)[:, 1]
        tail = self.__dict__.get("_cached_calibrated_tail")
        if tail is None:
            # The calibration fitted on the pipeline, applied to the pipeline's last step.
            (calibrated,) = self.calibrator.calibrated_classifiers_
            tail = copy.copy(calibrated)
            tail.estimator = estimator
            self.__dict__["_cached_calibrated_tail"] = tail
        return tail.predict_proba(matrix)[:, 1]

    def predict_prepared(self, prepared: PreparedRecords) -> np.ndarray:
        return self.predict_matrix(self.model_input(prepared))

    def compiled_scorer(self) -> CompiledScorer | None:
        """Return the verified compiled estimator, or None when this version serves through sklearn."""
        if "_cached_scorer" not in self.__dict__:
            with _SCORER_LOCK:
                if "_cached_scorer" not in self.__dict__:
                    self.__dict__["_cached_scorer"] = self._trusted_scorer()
        return self.__dict__["_cached_scorer"]

    def serving_check(self) -> ServingCheck | None:
        """Return the parity check this process relies on (None before first use of an old version)."""
        return self.__dict__.get("_cached_serving", self.serving)

    def check_compiled(self, frame: pd.DataFrame) -> ServingCheck:
        """Compare the compiled estimator with the pipeline's served output on `frame`'s records.

        Training calls it on the held-out rows and stores the result as `serving`. Both
        score one matrix: dates enter as ages at scoring time, so two transforms a few
        milliseconds apart already differ by more than the tolerance for linear models.
        """
        try:
            scorer = self._new_scorer()
        except NotCompilable as error:
            return refused(f"not compiled: {error}; serving through scikit-learn")
        matrix = np.asarray(self.pipeline[:-1].transform(frame), dtype=float)
        return verify_scorer(scorer, matrix, self.predict_matrix_sklearn(matrix))

    def _new_scorer(self) -> CompiledScorer:
        return compile_scorer(
            estimator=self.pipeline.steps[-1][1],
            calibrator=self.calibrator if self.classification else None,
            classification=self.classification,
        )

    def _trusted_scorer(self) -> CompiledScorer | None:
        check = self.serving
        if check is None or check.sklearn_version != sklearn.__version__:
            # Trained before the check, or under another scikit-learn whose fitted
            # attributes may mean other things: verify before trusting.
            check = self._check_reference_sample()
            self.__dict__["_cached_serving"] = check
        if not check.compiled:
            return None
        try:
            return self._new_scorer()
        except NotCompilable:
            return None

    def _check_reference_sample(self) -> ServingCheck:
        if self.reference_sample is None or not len(self.reference_sample):
            return refused("no reference sample to verify the compiled scorer on; serving through scikit-learn")
        sample = self.reference_sample.head(LAZY_CHECK_ROWS)
        try:
            return self.check_compiled(sample)
        except Exception as error:  # a verification that cannot run must not break serving
            return refused(f"verification failed ({error.__class__.__name__}: {error}); serving through scikit-learn")

    def _compiled(self) -> CompiledPipeline | None:
        if "_cached_compiled" not in self.__dict__:
            self.__dict__["_cached_compiled"] = compile_pipeline(self.pipeline)
        return self.__dict__["_cached_compiled"]

    def percentiles(self, values: np.ndarray) -> np.ndarray:
        """`percentile` of every value."""
        if not self.score_quantiles:
            return np.full(len(values), np.nan)
        positions = np.searchsorted(np.asarray(self.score_quantiles, dtype=float), values, side="right")
        return 100.0 * positions / len(self.score_quantiles)

    def percentile(self, value: float) -> float:
        """Return the share (0..100) of held-out predictions at or below this value."""
        if not self.score_quantiles:
            return float("nan")
        position = bisect_right(self.score_quantiles, value)
        return 100.0 * position / len(self.score_quantiles)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _float32_check(matrix: np.ndarray, prepared: PreparedRecords, pipeline: Pipeline) -> None:
    """Refuse the first record whose estimator input overflows float32, naming the field it came from."""
    with np.errstate(invalid="ignore"):
        beyond = np.abs(matrix) > FLOAT32_MAX
    if not beyond.any():
        return
    row, column = (int(index) for index in np.argwhere(beyond)[0])
    field_name = transformed_sources(pipeline)[column][0]
    value = prepared.rows[row].get(field_name)
    raise InputError(
        f"field '{field_name}' is {value!r}, too large for this model: a "
        f"{type(pipeline.steps[-1][1]).__name__} computes with 32-bit floats (at most ±{FLOAT32_MAX:.3g} "
        "once scaled)",
        field=field_name, row=prepared.offset + row,
    )
