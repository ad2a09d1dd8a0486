"""predictions 0003 drops the unread indexes in place: no table rebuilt, no id handed out twice."""
from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from predictions.models import Prediction

BEFORE = [("predictions", "0002_prediction_version_window_index")]
INSERT = (
    "INSERT INTO predictions_prediction (tenant, model_type, entity_id, source, input, output, value, latency_ms, "
    "created_at) VALUES ('acme', 'lead_conversion', 'L1', 'rules', '{}', '{}', 0.5, 1.0, '2026-01-01 00:00:00+00')"
)


def _migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _index_names() -> set[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Prediction._meta.db_table)
    return {name for name, details in constraints.items() if details["index"] and not details["primary_key"]}


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_rows_and_their_id_counter() -> None:
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        _migrate(BEFORE)
        with connection.cursor() as cursor:
            for _ in range(3):
                cursor.execute(INSERT)
        highest = Prediction.objects.order_by("-id").values_list("id", flat=True)[0]
        Prediction.objects.filter(pk=highest).delete()  # the highest id: never to be handed out again
        _migrate(latest)
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert Prediction.objects.count() == 2
    with connection.cursor() as cursor:
        cursor.execute(INSERT)
    assert Prediction.objects.order_by("-id").values_list("id", flat=True)[0] > highest
    names = _index_names()
    assert {"prediction_entity_idx", "prediction_batch_idx", "prediction_version_window_idx"} <= names
    assert not any(name.endswith("_like") or "model_version_id_" in name or "batch_id_" in name for name in names)
