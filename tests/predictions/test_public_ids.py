"""Public prediction ids: a keyed permutation of the table's numbers, safe in JavaScript."""
from __future__ import annotations

import random
from typing import Any

from django.test import override_settings
from rest_framework.test import APIClient

from predictions import public_ids as ids
from predictions.models import Prediction
from predictions.public_ids import MAX_ID, internal_id, public_ids
from registry.models import ModelVersion
from tests.conftest import TENANT, lead_request


def test_public_ids_round_trip_and_hide_the_sequence() -> None:
    numbers = list(range(1, 5001)) + [MAX_ID]
    shown = public_ids(numbers)
    assert [internal_id(value) for value in shown] == numbers
    assert len(set(shown)) == len(shown) and all(0 <= value <= 2**53 for value in shown)
    # Consecutive numbers look unrelated: no order, no small steps.
    steps = [abs(b - a) for a, b in zip(shown, shown[1:])]
    assert sorted(shown) != shown and min(steps[:100]) > 1000
    assert internal_id(-1) is None and internal_id(MAX_ID + 1) is None


def test_another_key_gives_other_ids() -> None:
    first = public_ids([1, 2, 3])
    with override_settings(LEADML_PUBLIC_ID_KEY="another deployment"):
        assert public_ids([1, 2, 3]) != first


def test_answers_carry_public_ids_and_outcomes_take_them_back(api: APIClient, lead_model: ModelVersion) -> None:
    batch = api.post("/predict/batch", lead_request([{"id": "a"}, {"id": "b"}]), format="json").json()["predictions"]
    numbers = sorted(Prediction.objects.values_list("pk", flat=True))
    assert [item["prediction_id"] for item in batch] == public_ids(numbers)
    assert numbers[1] - numbers[0] == 1 and abs(batch[1]["prediction_id"] - batch[0]["prediction_id"]) > 1000
    answer: dict[str, Any] = api.post("/outcomes", {"user_id": TENANT, "model_type": "lead_conversion", "outcomes": [
        {"prediction_id": batch[1]["prediction_id"], "outcome": "won"},
        {"prediction_id": numbers[0], "outcome": "won"},  # a table number is not an id
    ]}, format="json").json()
    assert answer["stored"] == 1 and [item["index"] for item in answer["rejected"]] == [1]


def test_the_integer_path_gives_the_vectorised_ids() -> None:
    rng = random.Random(7)
    numbers = [0, 1, 2, ids.MAX_ID, ids.MAX_ID - 1, *(rng.randrange(ids.MAX_ID) for _ in range(500))]
    vectorised = ids.public_ids(numbers)  # more than SCALAR_MAX_IDS: numpy
    assert len(numbers) > ids.SCALAR_MAX_IDS
    assert [ids.public_ids([number])[0] for number in numbers] == vectorised
    assert [ids.internal_id(public) for public in vectorised] == numbers
