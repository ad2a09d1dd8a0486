"""The ML core on its own: no database, no HTTP."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demo.data import generate_customers, generate_leads
from leadml.ml.artifacts import dump_bytes, load_bytes
from leadml.ml.errors import ArtifactIntegrityError, ConfigError, DataError, InputError
from leadml.ml.pipeline import algorithms_for, resolve_preprocessing
from leadml.ml.schema import infer_schema
from leadml.ml.targets import check_trainable, encode_target
from leadml.ml.train import train_model
from leadml.ml.types import TrainingConfig

REPO = Path(__file__).resolve().parents[2]
FAST = TrainingConfig(cv_folds=3)


@pytest.fixture(scope="module")
def leads() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_leads(600, seed=3)
    labels = encode_target(frame.pop("status"), model_type="lead_conversion", positive_values=["customer", "won"])
    return frame, labels


@pytest.fixture(scope="module")
def customers() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_customers(500, seed=3)
    return frame, encode_target(frame.pop("lifetime_value"), model_type="customer_lifetime_value")


def test_ml_core_never_imports_django() -> None:
    code = (
        "import sys; import leadml.ml.train, leadml.ml.bundle, leadml.ml.rules, leadml.ml.artifacts, "
        "leadml.ml.quality; "
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if m.startswith('django'))"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_schema_drops_identifiers_and_reads_kinds(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, _ = leads
    schema = infer_schema(frame)
    kinds = {column.name: column.kind for column in schema.columns}
    assert "id" in {dropped.name for dropped in schema.dropped}
    assert kinds["email"] == "email"
    assert kinds["email_interactions"] == "numeric"  # a count, despite its name
    assert kinds["job_title"] == "job_title"
    assert kinds["created_at"] == "datetime"
    assert kinds["industry"] == "categorical"
    lead_score = next(column for column in schema.columns if column.name == "lead_score")
    assert lead_score.minimum is not None and lead_score.maximum is not None and lead_score.minimum < lead_score.maximum


def test_schema_drops_free_text_with_unique_values() -> None:
    frame = pd.DataFrame({"note": [f"free text number {i}" for i in range(200)], "size": range(200)})
    schema = infer_schema(frame)
    assert [dropped.name for dropped in schema.dropped] == ["note"]
    assert "identifier-like" in schema.dropped[0].reason


@pytest.mark.parametrize("algorithm", ["gradient_boosting", "random_forest", "logistic_regression", "neural_network"])
def test_every_lead_algorithm_learns_the_signal(algorithm: str, leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    result = train_model(frame, labels, model_type="lead_conversion", algorithm=algorithm, config=FAST)
    assert result.metrics["roc_auc"] > 0.7
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert 0.0 <= result.metrics[key] <= 1.0
    assert result.cross_validation.folds == 3 and result.cross_validation.std >= 0
    weights = [weight for _, weight in result.feature_importance]
    assert len(set(weights)) > 1, "importance must not be a uniform placeholder"
    assert {name for name, _ in result.feature_importance} <= set(frame.columns)
    dropped = {column["name"]: column["reason"] for column in result.report["dropped_columns"]}
    assert dropped["id"].startswith("identifier (name looks like an id and its values hardly repeat")


@pytest.mark.parametrize("algorithm", ["gradient_boosting", "random_forest", "linear_regression", "neural_network"])
def test_every_clv_algorithm_beats_the_mean(algorithm: str, customers: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = customers
    result = train_model(frame, labels, model_type="customer_lifetime_value", algorithm=algorithm, config=FAST)
    assert result.metrics["r2"] > 0.1
    assert set(result.metrics) >= {"mse", "rmse", "mae", "r2"}
    assert result.metrics["rmse"] == pytest.approx(np.sqrt(result.metrics["mse"]), rel=1e-4)


def test_auto_keeps_the_best_candidate_by_cv(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    result = train_model(frame, labels, model_type="lead_conversion", algorithm="auto", config=FAST)
    candidates = result.report["candidates"]
    assert [c["algorithm"] for c in candidates] == algorithms_for("lead_conversion")
    assert result.algorithm == max(candidates, key=lambda c: c["cv_mean"])["algorithm"]


def test_param_grid_names_are_checked_against_the_estimator(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    with pytest.raises(ConfigError, match="unknown parameter"):
        train_model(
            frame, labels, model_type="lead_conversion", algorithm="logistic_regression",
            config=TrainingConfig(param_grid={"n_trees": [1]}),
        )
    result = train_model(
        frame, labels, model_type="lead_conversion", algorithm="logistic_regression",
        config=TrainingConfig(cv_folds=3, param_grid={"C": [0.5]}),
    )
    assert result.best_params == {"C": 0.5}


def test_inapplicable_algorithm_is_refused(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    with pytest.raises(ConfigError, match="does not apply"):
        train_model(frame, labels, model_type="lead_conversion", algorithm="linear_regression")


def test_preprocessing_options_are_validated_and_applied(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    with pytest.raises(ConfigError, match="must be one of"):
        resolve_preprocessing({"scaling": "log"})
    with pytest.raises(ConfigError, match="unknown preprocessing option"):
        resolve_preprocessing({"colour": "blue"})
    frame, labels = leads
    config = TrainingConfig(
        cv_folds=3,
        preprocessing={"categorical_encoding": "label", "scaling": "minmax", "feature_selection": "k_best", "k": 5},
    )
    result = train_model(frame, labels, model_type="lead_conversion", algorithm="logistic_regression", config=config)
    pipeline = result.bundle.pipeline
    assert pipeline.named_steps["select"].get_support().sum() == 5
    assert type(pipeline.named_steps["preprocess"].named_transformers_["cat"].named_steps["encode"]).__name__ == "OrdinalEncoder"


def test_targets_refuse_what_cannot_train() -> None:
    one_class = pd.Series([1.0] * 60)
    with pytest.raises(DataError, match="single class"):
        check_trainable(one_class, model_type="lead_conversion", min_rows=50, min_rows_per_class=10)
    few = pd.Series([0.0, 1.0] * 20)
    with pytest.raises(DataError, match="at least 50"):
        check_trainable(few, model_type="lead_conversion", min_rows=50, min_rows_per_class=10)
    with pytest.raises(DataError, match="positive_values"):
        encode_target(pd.Series(["open", "closed"]), model_type="lead_conversion")
    assert encode_target(pd.Series(["Yes", "no", None]), model_type="lead_conversion").tolist()[:2] == [1.0, 0.0]


def test_bundle_validates_records_and_scores(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = leads
    bundle = train_model(frame, labels, model_type="lead_conversion", algorithm="logistic_regression", config=FAST).bundle
    prepared = bundle.prepare([{"email": "ceo@acme.io", "job_title": "CEO", "lead_score": "95", "shoe_size": 44}])
    warnings = " | ".join(prepared.warnings[0])
    assert "shoe_size" in warnings and "missing fields imputed" in warnings
    probabilities = bundle.predict(prepared.frame)
    assert probabilities.shape == (1,) and 0.0 <= probabilities[0] <= 1.0
    outlier = bundle.prepare([{"lead_score": 5000}])
    assert any("outside the training range" in warning for warning in outlier.warnings[0])
    with pytest.raises(InputError) as error:
        bundle.prepare([{"lead_score": 1}, {"lead_score": "lots"}])
    assert error.value.field == "lead_score" and error.value.row == 1
    with pytest.raises(InputError):
        bundle.prepare([{"created_at": "not a date"}])


def test_artifact_checksum_refuses_tampered_bytes(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    data, sha256 = dump_bytes({"weights": [1, 2, 3]})
    assert load_bytes(data, expected_sha256=sha256) == {"weights": [1, 2, 3]}
    tampered = data[:-1] + bytes([data[-1] ^ 0xFF])
    with pytest.raises(ArtifactIntegrityError):
        load_bytes(tampered, expected_sha256=sha256)
