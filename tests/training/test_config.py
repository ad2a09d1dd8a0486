"""The training config: parsed once, stored canonical, rebuilt at run time, old rows migrated."""
from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.db import connection
from rest_framework.test import APIClient

from leadml.api.errors import ApplicationError
from tests.conftest import TENANT, make_dataset
from training.config import JobConfig, job_config_parse
from training.models import TrainingJob

REQUEST = {
    "preprocessing": {"scaling_method": "minmax", "feature_selection": {"method": "k_best", "k": 5}},
    "missing_values": ["Select"],
    "feature_engineering": {"interactions": [["a", "b"], ["a", "b"]], "log_transform": False},
    "features": ["a", "b"],
    "param_grid": {"C": [1.0]},
    "min_improvement": 0.01,
    "time_budget_s": 60,
    "cv_folds": 3,
}


def test_the_stored_form_names_every_option_and_parses_to_the_same_config() -> None:
    config = job_config_parse(REQUEST)
    stored = json.loads(json.dumps(config.as_dict()))  # through a JSON column
    assert set(stored) == {
        "dataset_id", "source", "min_improvement", "features", "preprocessing", "feature_engineering",
        "allow_columns", "calibrate", "time_budget_s", "param_grid", "cv_folds", "test_size", "random_state",
    }
    # Aliases resolved once: the original service's spellings and the top-level placeholders.
    assert stored["preprocessing"]["scaling"] == "minmax" and stored["preprocessing"]["k"] == 5
    assert stored["feature_engineering"]["missing_values"] == ["Select"]
    assert stored["feature_engineering"]["interactions"] == [["a", "b"]]
    assert JobConfig.from_dict(stored) == config
    assert job_config_parse(stored) == config  # a retrain parses a version's stored config again
    assert config.training.feature_options.log_transform is False and config.training.cv_folds == 3


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([1, 2], "training_config"),
        ({"cv_folds": 1}, "training_config.cv_folds"),
        ({"preprocessing": {"scaling": "cubic"}}, "preprocessing.scaling"),
        ({"feature_engineering": {"btyd_horizon_days": 30}}, "feature_engineering.btyd_horizon_days"),
        ({"n_jobs": 8}, "training_config.n_jobs"),  # the worker's setting, never the request's
        # JSON integers of any length: refused by name, never an OverflowError (a 500).
        ({"preprocessing": {"fill_value": 10**400}}, "preprocessing.fill_value"),
        ({"feature_engineering": {"skew_threshold": 10**400}}, "feature_engineering.skew_threshold"),
        ({"test_size": 10**400}, "training_config.test_size"),
        ({"random_state": 2**32}, "training_config.random_state"),
    ],
)
def test_a_bad_option_is_refused_naming_it(raw: Any, field: str) -> None:
    with pytest.raises(ApplicationError) as raised:
        job_config_parse(raw)
    assert field in raised.value.details


def test_a_job_row_keeps_the_canonical_form(db: None, api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    dataset = make_dataset(TENANT, "lead_conversion", lead_rows)
    body = {"model_type": "lead_conversion", "algorithm": "logistic_regression", "model_name": "canon",
            "user_id": TENANT, "training_config": {"dataset_id": str(dataset.id), "cv_folds": 3,
                                                   "param_grid": {"C": [1.0]}, "missing_values": ["n/a"]}}
    response = api.post("/train?async=true", body, format="json")
    assert response.status_code == 202, response.content
    job = TrainingJob.objects.get()
    assert job.training_config == job_config_parse(body["training_config"]).as_dict()
    assert job.training_config["dataset_id"] == str(dataset.id)
    assert job.training_config["feature_engineering"]["missing_values"] == ["n/a"]
    assert "missing_values" not in job.training_config  # folded into feature_engineering


def test_the_migration_rewrites_old_rows_and_leaves_unparsable_ones(db: None) -> None:
    fields = {"tenant": TENANT, "model_type": "lead_conversion", "algorithm": "logistic_regression",
              "model_name": "old", "status": "succeeded"}
    old = TrainingJob.objects.create(**fields, training_config={"missing_values": ["Select"], "cv_folds": 3})
    refused = TrainingJob.objects.create(**fields, training_config={"colour": "blue"})
    migration = importlib.import_module("training.migrations.0007_canonical_training_config")
    migration.canonical(django_apps, connection.schema_editor())
    old.refresh_from_db()
    refused.refresh_from_db()
    assert old.training_config == job_config_parse({"missing_values": ["Select"], "cv_folds": 3}).as_dict()
    assert JobConfig.from_dict(old.training_config).training.feature_options.missing_values == ("Select",)
    assert refused.training_config == {"colour": "blue"}
