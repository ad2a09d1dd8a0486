"""Request serializers whose fields are built once per thread (FieldsBuiltOnceSerializer). No database."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from predictions.apis import PredictApi

Serializer = PredictApi.InputSerializer
GOOD = {"model_type": "lead_conversion", "user_id": "acme", "data": {"lead_score": 3}}


def validated(body: dict[str, Any]) -> tuple[bool, Any]:
    serializer = Serializer(data=body)
    valid = serializer.is_valid()
    return valid, serializer.validated_data if valid else serializer.errors


def test_one_thread_reuses_one_set_of_fields_bound_to_the_serializer_in_use() -> None:
    first, second = Serializer(data=GOOD), Serializer(data=GOOD)
    first_fields = first.fields
    assert all(field.parent is first for field in first_fields.values())
    assert second.fields is first_fields  # the same field objects, not copies
    assert second.fields.serializer is second
    assert all(field.parent is second and field.root is second for field in second.fields.values())


def test_each_instance_judges_its_own_body() -> None:
    bad = validated({"model_type": "churn", "user_id": "x" * 201, "data": {}})
    good = validated(GOOD)
    bad_again = validated({"user_id": "acme", "data": {"a": 1}, "version": 0})

    assert bad[0] is False and set(bad[1]) == {"model_type", "user_id", "data"}
    assert good == (True, {"model_type": "lead_conversion", "user_id": "acme", "data": {"lead_score": 3}, "explain": True})
    assert bad_again[0] is False and set(bad_again[1]) == {"model_type", "version"}
    assert "at least 1" in str(bad_again[1]["version"][0]) or "greater than or equal" in str(bad_again[1]["version"][0])


def test_threads_validating_at_once_keep_their_own_fields_and_answers() -> None:
    bodies = [
        GOOD | {"user_id": f"tenant-{index}", "explain": index % 2 == 0} if index % 3 else {"user_id": index}
        for index in range(300)
    ]
    expected = [validated(body) for body in bodies]
    fields_seen: set[int] = set()
    lock = threading.Lock()

    def run(body: dict[str, Any]) -> tuple[bool, Any]:
        serializer = Serializer(data=body)
        with lock:
            fields_seen.add(id(serializer.fields))
        valid = serializer.is_valid()
        return valid, serializer.validated_data if valid else serializer.errors

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(run, bodies))

    assert answers == expected
    assert sum(valid for valid, _ in answers) == 200
    assert 1 < len(fields_seen) <= 8  # one set per thread of the pool
