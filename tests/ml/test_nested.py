"""CRM rows with `custom_fields` objects and `tags` lists, through inference, training and scoring. No database."""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from demo.data import generate_leads
from leadml.ml.errors import InputError
from leadml.ml.nested import flatten_record, tag_set
from leadml.ml.parsing import read_csv_typed
from leadml.ml.reasons import explainer_for
from leadml.ml.schema import MIN_TAG_ROWS, infer_schema
from leadml.ml.targets import encode_target
from leadml.ml.train import train_model
from leadml.ml.types import TrainingConfig

REFERENCE_TIME = datetime(2026, 7, 1, tzinfo=timezone.utc)


def test_flatten_record_flattens_one_level_and_keeps_lists() -> None:
    record = {"id": "u1", "tags": [], "custom_fields": {"industry": "saas", "address": {"city": "Oslo"}}, "x": None}
    assert flatten_record(record) == {
        "id": "u1", "tags": [], "x": None, "custom_fields.industry": "saas", "custom_fields.address": {"city": "Oslo"}
    }
    # An empty object leaves its name with no value; a key already there wins over a flattened one.
    assert flatten_record({"custom_fields": {}}) == {"custom_fields": None}
    assert flatten_record({"a.b": 1, "a": {"b": 2, "c": 3}}) == {"a.b": 1, "a.c": 3}


def test_tag_set_reads_lists_single_values_and_missing() -> None:
    assert tag_set(["vip", " webinar ", None, 3.0, ""]) == frozenset({"vip", "webinar", "3"})
    assert tag_set("vip") == frozenset({"vip"})
    assert tag_set([]) == frozenset()
    assert tag_set(None) is None and tag_set(float("nan")) is None


def crm_leads(rows: int = 400, seed: int = 3) -> pd.DataFrame:
    """Demo leads with a `tags` list that carries signal and a `custom_fields` object."""
    frame = generate_leads(rows, seed=seed)
    rng = np.random.default_rng(seed)
    converted = frame["status"].isin(["customer", "won"]).to_numpy()
    tags = []
    for index, positive in enumerate(converted):
        chosen = []
        if rng.random() < (0.7 if positive else 0.15):
            chosen.append("demo_booked")
        if rng.random() < 0.3:
            chosen.append("newsletter")
        if index == 0:
            chosen.append("one-off")  # too rare to get an indicator
        tags.append(chosen)
    frame["tags"] = tags
    frame["custom_fields"] = [
        {"plan": "enterprise" if positive and rng.random() < 0.6 else "starter"} if index % 7 else {}
        for index, positive in enumerate(converted)
    ]
    return frame


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame.from_records([flatten_record(row) for row in frame.to_dict("records")])


def test_list_columns_become_tags_and_nested_objects_are_dropped_with_a_reason() -> None:
    frame = _flat(crm_leads()).drop(columns=["status"])
    frame["custom_fields.address"] = [{"city": "Oslo"}] * len(frame)
    frame["rare"] = [["once"]] + [[]] * (len(frame) - 1)
    schema = infer_schema(frame)
    by_name = {column.name: column for column in schema.columns}
    # The frequent values only ("one-off" is in a single row).
    assert by_name["tags"].kind == "tags" and set(by_name["tags"].categories) == {"newsletter", "demo_booked"}
    assert by_name["custom_fields.plan"].kind == "categorical"
    reasons = {dropped.name: dropped.reason for dropped in schema.dropped}
    assert "nested objects" in reasons["custom_fields.address"]
    assert f"at least {MIN_TAG_ROWS} rows" in reasons["rare"]


@pytest.fixture(scope="module")
def tagged_model() -> Any:
    frame = _flat(crm_leads())
    labels = encode_target(frame["status"], model_type="lead_conversion", positive_values=["customer", "won"])
    result = train_model(
        frame.drop(columns=["status"]), labels, model_type="lead_conversion", algorithm="gradient_boosting",
        # A `tags` field that alone predicts conversion this well is a leakage suspect by
        # default (tags are often written during the sale); this tenant vouches for it.
        config=TrainingConfig(param_grid={"max_iter": [40]}, cv_folds=3, allow_columns=("tags",)),
    )
    return result


def test_tags_train_into_indicator_columns_that_carry_signal(tagged_model: Any) -> None:
    engineer = tagged_model.bundle.pipeline.named_steps["features"]
    assert "tags=demo_booked" in engineer.numeric_columns_ and engineer.sources_of_["tags=demo_booked"] == ("tags",)
    importance = dict(tagged_model.feature_importance)
    assert importance["tags"] > 0
    explained = {row["feature"]: row for row in engineer.explain()["features"]}
    assert "demo_booked" in explained["tags=demo_booked"]["how"]


def test_a_crm_row_scores_the_same_through_the_compiled_path_and_the_pipeline(tagged_model: Any) -> None:
    bundle = tagged_model.bundle
    rows = [
        flatten_record({"email": "a@acme.com", "tags": ["demo_booked"], "custom_fields": {"plan": "enterprise"},
                        "first_name": "Ann", "notes": None, "lead_score": 80}),
        flatten_record({"email": "b@gmail.com", "tags": [], "custom_fields": {}}),
        flatten_record({"tags": "newsletter"}),  # a single value is one tag
        flatten_record({}),  # no tags at all: missing, imputed
    ]
    prepared = bundle.prepare(rows)
    assert any("first_name" in warning for warning in prepared.warnings[0])
    compiled = bundle.model_input(prepared)  # a few records: the compiled transform
    piped = np.asarray(bundle.pipeline[:-1].transform(prepared.frame), dtype=float)
    np.testing.assert_array_equal(compiled, piped)
    scores = bundle.predict_matrix(compiled)
    assert scores[0] > scores[1]


def test_a_tags_field_with_nested_values_is_refused_naming_it(tagged_model: Any) -> None:
    with pytest.raises(InputError) as raised:
        tagged_model.bundle.prepare([{"tags": [["nested"]]}])
    assert raised.value.field == "tags"
    with pytest.raises(InputError):
        tagged_model.bundle.prepare([{"custom_fields.plan": ["a", "b"]}])


def test_reasons_name_the_tags_field_and_add_up(tagged_model: Any) -> None:
    bundle = tagged_model.bundle
    explainer = explainer_for(bundle)
    assert explainer is not None and bundle.baseline_record is not None
    assert isinstance(bundle.baseline_record["tags"], list)
    prepared = bundle.prepare([{"tags": ["demo_booked", "newsletter"], "email": "a@acme.com"}])
    values, explanations = explainer.score_and_explain(bundle.model_input(prepared))
    contributions = explanations[0].contributions
    assert "tags" in contributions
    assert explanations[0].baseline + sum(contributions.values()) == pytest.approx(values[0] * 100, abs=1e-6)


def test_csv_cells_holding_json_and_postgres_arrays_are_read_as_objects_and_lists() -> None:
    text = (
        'id,tags,custom_fields\n'
        '1,"{vip,""big deal""}","{""industry"": ""saas""}"\n'
        '2,{},{}\n'
        '3,"[""a""]","{""industry"": ""retail"", ""size"": 5}"\n'
        '4,,\n'
    )
    rows = json.loads(read_csv_typed(io.StringIO(text)).to_json(orient="records"))
    assert rows[0]["tags"] == ["vip", "big deal"] and rows[0]["custom_fields"] == {"industry": "saas"}
    assert rows[1]["tags"] == [] and rows[1]["custom_fields"] == {}
    assert rows[2]["tags"] == ["a"] and rows[2]["custom_fields"]["size"] == 5
    assert rows[3]["tags"] is None
    # A text column that merely starts with a brace somewhere stays text.
    plain = read_csv_typed(io.StringIO('note\n"{not json"\nplain\n'))
    assert plain["note"].tolist() == ["{not json", "plain"]
