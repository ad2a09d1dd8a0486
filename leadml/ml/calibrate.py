"""Calibration of lead probabilities: sigmoid, isotonic or none, chosen by CV log-loss.

The chosen pipeline's out-of-fold scores of the training rows (the search's folds) are
what every calibrator is fitted on, as CalibratedClassifierCV(ensemble=False) does.
Each method is scored by the log-loss of a second cross-validation over those scores;
the lowest wins, unless it lowers held-out ROC-AUC by more than CALIBRATION_MAX_AUC_LOSS
(isotonic steps tie scores apart), then the next one does.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from leadml.ml.errors import ConfigError
from leadml.ml.search import Folds, quiet_convergence

# A calibrator may cost at most this much held-out ROC-AUC (isotonic steps create ties).
CALIBRATION_MAX_AUC_LOSS = 0.005
CALIBRATION_METHODS = ("none", "sigmoid", "isotonic")


def calibrate(
    pipeline: Any,
    folds: Folds,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    test_x: pd.DataFrame,
    test_y: np.ndarray,
    random_state: int,
    methods: tuple[str, ...] = CALIBRATION_METHODS,
) -> tuple[CalibratedClassifierCV | None, dict[str, Any]]:
    """Choose sigmoid, isotonic or no calibration by CV log-loss; never one that costs ranking.

    `pipeline` is already fitted on all training rows; it is the one served and explained.
    Returns the fitted calibrator (None for "none") and the training report's account of the choice.
    """
    if not methods or set(methods) - set(CALIBRATION_METHODS):
        raise ConfigError(f"calibration methods must be among {', '.join(CALIBRATION_METHODS)}", field="calibrate")
    response, scores, probabilities = _out_of_fold(pipeline, folds, train_x, train_y)
    inner = StratifiedKFold(n_splits=folds.get_n_splits(), shuffle=True, random_state=random_state + 1)
    cv_log_loss = {
        method: _calibration_log_loss(method, scores, probabilities, train_y, inner) for method in methods
    }
    raw_test = pipeline.predict_proba(test_x)[:, 1]
    test_scores = _response(pipeline, response, test_x)
    chosen, chosen_test, rejected = _choose_method(cv_log_loss, scores, train_y, test_scores, test_y, raw_test)
    calibrator = None if chosen == "none" else _calibrated_classifier(pipeline, chosen, scores, train_y, folds)
    if calibrator is not None:
        chosen_test = calibrator.predict_proba(test_x)[:, 1]
    raw_auc, after_auc = _auc(test_y, raw_test), _auc(test_y, chosen_test)
    return calibrator, {
        "method": chosen,
        "chosen_by": (
            "lowest CV log-loss over out-of-fold scores of the training rows, unless it lowers held-out "
            f"ROC-AUC by more than {CALIBRATION_MAX_AUC_LOSS}"
        ),
        "cv_log_loss": {method: round(value, 6) for method, value in cv_log_loss.items()},
        "rejected": rejected,
        "fitted_on": f"out-of-fold predictions of {len(train_y)} training rows ({folds.get_n_splits()} folds)",
        "brier_before": round(float(brier_score_loss(test_y, raw_test)), 6),
        "brier_after": round(float(brier_score_loss(test_y, chosen_test)), 6),
        "log_loss_before": _log_loss(test_y, raw_test),
        "log_loss_after": _log_loss(test_y, chosen_test),
        "roc_auc_before": None if raw_auc is None else round(raw_auc, 6),
        "roc_auc_after": None if after_auc is None else round(after_auc, 6),
    }


def _choose_method(
    cv_log_loss: dict[str, float],
    scores: np.ndarray,
    train_y: np.ndarray,
    test_scores: np.ndarray,
    test_y: np.ndarray,
    raw_test: np.ndarray,
) -> tuple[str, np.ndarray, list[str]]:
    """(method, its held-out probabilities, the methods rejected and why), lowest CV log-loss first."""
    raw_auc = _auc(test_y, raw_test)
    rejected: list[str] = []
    for method in sorted(cv_log_loss, key=lambda name: cv_log_loss[name]):
        if method == "none":
            break
        calibrated = _fit_calibration(method, scores, train_y).predict(test_scores)
        auc = _auc(test_y, calibrated)
        if raw_auc is not None and auc is not None and raw_auc - auc > CALIBRATION_MAX_AUC_LOSS:
            rejected.append(
                f"{method}: lowers held-out ROC-AUC from {raw_auc:.4f} to {auc:.4f} "
                f"(more than {CALIBRATION_MAX_AUC_LOSS})"
            )
            continue
        return method, calibrated, rejected
    return "none", raw_test, rejected


def _response(pipeline: Any, response: str, X: pd.DataFrame) -> np.ndarray:
    values = getattr(pipeline, response)(X)
    return np.asarray(values[:, 1] if response == "predict_proba" else values, dtype=float)


def _out_of_fold(
    pipeline: Any, folds: Folds, train_x: pd.DataFrame, train_y: np.ndarray
) -> tuple[str, np.ndarray, np.ndarray]:
    """(response method, out-of-fold scores it gives, out-of-fold probabilities) of the training rows.

    The scores are what CalibratedClassifierCV would calibrate (the decision function when
    the model has one), the probabilities what "no calibration" serves.
    """
    response = "decision_function" if hasattr(pipeline, "decision_function") else "predict_proba"
    scores = np.zeros(len(train_y))
    probabilities = np.zeros(len(train_y))
    with quiet_convergence():
        for fit_rows, score_rows in folds.split(train_x, train_y):
            fold_model = clone(pipeline).fit(train_x.iloc[fit_rows], train_y[fit_rows])
            part = train_x.iloc[score_rows]
            scores[score_rows] = _response(fold_model, response, part)
            probabilities[score_rows] = fold_model.predict_proba(part)[:, 1]
    return response, scores, probabilities


class _SigmoidCalibration:
    """Platt scaling of scores to probabilities (a one-feature logistic regression)."""

    def __init__(self) -> None:
        self.model = LogisticRegression(C=1e6, max_iter=1000)

    def fit(self, scores: np.ndarray, y: np.ndarray) -> _SigmoidCalibration:
        self.model.fit(scores.reshape(-1, 1), y)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return expit(self.model.decision_function(np.asarray(scores).reshape(-1, 1)))


def _fit_calibration(method: str, scores: np.ndarray, y: np.ndarray) -> Any:
    """A calibrator of scores, for choosing a method (the served one is sklearn's own)."""
    if method == "isotonic":
        return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
    return _SigmoidCalibration().fit(scores, y)


def _calibration_log_loss(
    method: str, scores: np.ndarray, probabilities: np.ndarray, y: np.ndarray, folds: StratifiedKFold
) -> float:
    if method == "none":
        return float(log_loss(y, np.clip(probabilities, 1e-6, 1 - 1e-6), labels=[0, 1]))
    predicted = np.zeros(len(y))
    for fit_rows, score_rows in folds.split(scores.reshape(-1, 1), y):
        predicted[score_rows] = _fit_calibration(method, scores[fit_rows], y[fit_rows]).predict(scores[score_rows])
    return float(log_loss(y, np.clip(predicted, 1e-6, 1 - 1e-6), labels=[0, 1]))


def _calibrated_classifier(
    pipeline: Any, method: str, scores: np.ndarray, train_y: np.ndarray, folds: Folds
) -> CalibratedClassifierCV:
    """A fitted CalibratedClassifierCV(ensemble=False) around `pipeline`, from the scores already computed.

    Built with scikit-learn's own calibrator fitting (a private helper of the pinned
    version; the calibration tests fail loudly if it changes), so the served object is
    exactly what `CalibratedClassifierCV.fit` makes, without fitting the pipeline k + 1
    more times for out-of-fold scores we already have.
    """
    from sklearn.calibration import _fit_calibrator
    from sklearn.utils._array_api import get_namespace

    classes = np.unique(train_y)
    xp, _ = get_namespace(scores)
    calibrator = CalibratedClassifierCV(clone(pipeline), method=method, cv=folds, ensemble=False)
    calibrator.calibrated_classifiers_ = [
        _fit_calibrator(pipeline, scores.reshape(-1, 1), train_y, classes, method, xp=xp)
    ]
    calibrator.classes_ = classes
    for name in ("n_features_in_", "feature_names_in_"):
        if hasattr(pipeline, name):
            setattr(calibrator, name, getattr(pipeline, name))
    return calibrator


def _auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    return float(roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else None


def _log_loss(y: np.ndarray, probabilities: np.ndarray) -> float:
    return round(float(log_loss(y, np.clip(probabilities, 1e-6, 1 - 1e-6), labels=[0, 1])), 6)
