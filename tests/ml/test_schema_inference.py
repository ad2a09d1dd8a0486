"""Columns typed as a person would: one date format per column, ids by their values, chosen features win."""
from __future__ import annotations

import pickle
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from demo.data import generate_leads
from leadml.ml.dates import infer_date_format, to_datetime
from leadml.ml.errors import ConfigError, InputError
from leadml.ml.fastpath import compile_pipeline
from leadml.ml.quality import QUALITY_SAMPLE_ROWS, quality_report
from leadml.ml.schema import infer_schema
from leadml.ml.split import holdout_split
from leadml.ml.targets import encode_target
from leadml.ml.train import train_model
from leadml.ml.types import TrainingConfig


@pytest.fixture(scope="module")
def leads() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_leads(500, seed=8)
    labels = encode_target(frame.pop("status"), model_type="lead_conversion", positive_values=["customer", "won"])
    # The export writes dates day first, as "13-02-2018"; a landing page id repeats on many leads.
    frame["created_at"] = pd.to_datetime(frame["created_at"]).dt.strftime("%d-%m-%Y")
    rng = np.random.default_rng(8)
    frame["landing_page_id"] = rng.choice([f"lp{number}" for number in range(40)], len(frame))
    return frame, labels


def test_a_dd_mm_yyyy_column_is_read_day_first_for_every_value() -> None:
    values = pd.Series(["13-02-2018", "05-12-2017", "01-03-2018"])
    assert infer_date_format(values) == ("day_first", None)
    dates = to_datetime(values, "day_first")
    # "05-12-2017" is the 5th of December, like its neighbours, not May the 12th.
    assert [stamp.strftime("%Y-%m-%d") for stamp in dates] == ["2018-02-13", "2017-12-05", "2018-03-01"]
    assert infer_date_format(pd.Series(["02/13/2018", "12/05/2017"])) == ("month_first", None)
    assert infer_date_format(pd.Series(["2018-02-13", "2017-12-05T10:00:00Z"])) == ("iso8601", None)


def test_an_ambiguous_date_column_is_warned_and_still_read_one_way() -> None:
    schema = infer_schema(pd.DataFrame({"signup_date": ["05-12-2017", "01-02-2018", "03-04-2018"] * 5}))
    (column,) = schema.columns
    assert column.kind == "datetime" and column.date_format == "day_first"
    assert any("signup_date" in warning and "day first or month first" in warning for warning in schema.warnings)


def test_the_chosen_date_format_is_kept_and_prediction_reads_the_same_way(
    leads: tuple[pd.DataFrame, pd.Series],
) -> None:
    frame, labels = leads
    result = train_model(
        frame, labels, model_type="lead_conversion", algorithm="logistic_regression", config=TrainingConfig(cv_folds=3)
    )
    bundle = result.bundle
    bundle.pipeline.named_steps["features"].reference_time = datetime(2026, 1, 1, tzinfo=timezone.utc)
    created = next(column for column in bundle.schema.columns if column.name == "created_at")
    assert created.date_format == "day_first"
    assert result.report["used_columns"][[c["name"] for c in result.report["used_columns"]].index("created_at")][
        "date_format"
    ] == "day_first"
    prepared = bundle.prepare([{"created_at": "05-12-2017"}, {"created_at": "2017-12-05"}, {"created_at": "13-02-2018"}])
    engineered = bundle.pipeline.named_steps["features"].transform(prepared.frame)
    # The same day written two ways is the same day; 13-02 is February, both on the pipeline and the fast path.
    assert engineered["created_at__month"].tolist() == [12.0, 12.0, 2.0]
    compiled = compile_pipeline(bundle.pipeline)
    assert compiled is not None
    np.testing.assert_array_equal(compiled.matrix(prepared.rows), bundle.pipeline[:-1].transform(prepared.frame))
    with pytest.raises(InputError, match="DD-MM-YYYY"):
        bundle.prepare([{"created_at": "13/13/2018"}])


def test_versions_pickled_before_date_formats_keep_loading_and_predicting(
    leads: tuple[pd.DataFrame, pd.Series],
) -> None:
    frame, labels = leads
    iso = frame.assign(created_at=pd.to_datetime(frame["created_at"], format="%d-%m-%Y").dt.strftime("%Y-%m-%d"))
    result = train_model(
        iso, labels, model_type="lead_conversion", algorithm="logistic_regression", config=TrainingConfig(cv_folds=3)
    )
    bundle = result.bundle
    records = iso.head(5).astype(object).where(iso.head(5).notna(), None).to_dict("records")
    expected = bundle.predict(bundle.prepare(records).frame)
    for spec in bundle.schema.columns:  # an old ColumnSpec has no date_format at all
        spec.__dict__.pop("date_format")
    revived = pickle.loads(pickle.dumps(bundle))
    column = next(spec for spec in revived.schema.columns if spec.name == "created_at")
    assert "date_format" not in column.__dict__ and column.date_format is None
    np.testing.assert_allclose(revived.predict(revived.prepare(records).frame), expected)


def test_an_id_named_column_whose_values_repeat_is_kept_as_a_category(leads: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, _ = leads
    schema = infer_schema(frame)
    kinds = {column.name: column.kind for column in schema.columns}
    assert kinds["landing_page_id"] == "categorical"
    assert "id" in {dropped.name for dropped in schema.dropped}  # unique per lead: an identifier
    assert any(warning.startswith("landing_page_id: the name looks like an id") for warning in schema.warnings)
    numbered = infer_schema(pd.DataFrame({"page_id": [3, 17, 3, 1203, 17, 3] * 10}))
    assert numbered.columns[0].kind == "categorical"  # codes, not quantities


def test_explicit_features_win_over_every_heuristic_and_unknown_names_are_refused(
    leads: tuple[pd.DataFrame, pd.Series],
) -> None:
    frame, labels = leads
    chosen = ("id", "lead_score", "landing_page_id")
    result = train_model(
        frame, labels, model_type="lead_conversion", algorithm="logistic_regression",
        config=TrainingConfig(cv_folds=3, features=chosen),
    )
    assert set(result.bundle.schema.names) == set(chosen)
    assert any(warning.startswith("id: chosen, so kept") for warning in result.report["column_warnings"])
    with pytest.raises(ConfigError) as caught:
        train_model(
            frame, labels, model_type="lead_conversion", algorithm="logistic_regression",
            config=TrainingConfig(features=("lead_score", "landing_page")),
        )
    assert caught.value.field == "training_config.features"
    assert "'landing_page'" in caught.value.message


def test_the_held_out_share_is_test_size_even_when_an_id_column_repeats() -> None:
    rng = np.random.default_rng(0)
    rows = 8000
    popularity = 1 / np.arange(1, 301) ** 1.1
    frame = pd.DataFrame(
        {"landing_page_id": rng.choice(300, rows, p=popularity / popularity.sum()), "x": rng.normal(size=rows)}
    )
    target = (rng.random(rows) < 0.3).astype(int)
    split = holdout_split(frame, target, test_size=0.2, classification=True)
    # Hashing the page would hold out whole pages: 16-17 % of the rows here, 10 % on one upload.
    assert split.key == "values:salt0"
    assert abs(len(split.test) / rows - 0.2) < 0.015
    with_ids = frame.assign(lead_id=[f"L{number}" for number in range(rows)])[["lead_id", "landing_page_id", "x"]]
    assert holdout_split(with_ids, target, test_size=0.2, classification=True).key == "id:lead_id:salt0"


def test_the_upload_scan_samples_wide_tables_and_stays_cheap() -> None:
    rng = np.random.default_rng(1)
    rows = QUALITY_SAMPLE_ROWS + 10_000
    columns = {f"number_{index}": rng.normal(size=rows) for index in range(30)}
    columns |= {f"category_{index}": rng.choice(["a", "b", "c", None], rows).astype(object) for index in range(10)}
    frame = pd.DataFrame(columns)
    labels = pd.Series((rng.random(rows) < 0.2).astype(float))
    started = time.perf_counter()
    report = quality_report(frame, labels, model_type="lead_conversion")
    seconds = time.perf_counter() - started
    assert report["sampled_rows"] == QUALITY_SAMPLE_ROWS and report["rows"] == rows
    assert len(report["column_evidence"]) == 40 and report["leakage_suspects"] == []
    assert seconds < 20, f"the quality scan of 30,000 x 40 took {seconds:.1f}s"
