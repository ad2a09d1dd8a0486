"""The prediction log keeps only the indexes a query reads (predictions/models.py).

The three field changes only drop indexes, so the database side is written out: DROP
INDEX of the indexes `db_index` made. Django's AlterField would rebuild the whole table
on SQLite (copying every prediction, three times), and the rebuilt table's AUTOINCREMENT
counter would restart at its highest remaining id, handing a deleted prediction's id out
again. On PostgreSQL the indexes are built and dropped CONCURRENTLY (so not in a
transaction): a log of millions keeps taking predictions while the new ones build. Each
step may run again after an interrupted migration.
"""
import django.db.models.deletion
from django.db import migrations, models

TABLE = "predictions_prediction"
# (column, suffix) of the indexes `db_index=True` created: Django's own names for them.
DROPPED = (("batch_id", ""), ("entity_id", ""), ("entity_id", "_like"), ("model_version_id", ""))


NEW_INDEXES = (
    models.Index(fields=["entity_id"], name="prediction_entity_idx"),
    models.Index(condition=models.Q(("batch_id__isnull", False)), fields=["batch_id"], name="prediction_batch_idx"),
)


def _concurrently(schema_editor):
    return "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""


def _drop_index(schema_editor, name):
    schema_editor.execute(f"DROP INDEX {_concurrently(schema_editor)}IF EXISTS {schema_editor.quote_name(name)}")


def drop_field_indexes(apps, schema_editor):
    for column, suffix in DROPPED:
        _drop_index(schema_editor, schema_editor._create_index_name(TABLE, [column], suffix=suffix))


def add_indexes(apps, schema_editor):
    Prediction = apps.get_model("predictions", "Prediction")
    for index in NEW_INDEXES:
        _drop_index(schema_editor, index.name)  # an earlier, interrupted build leaves an invalid one
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(index.create_sql(Prediction, schema_editor, concurrently=True))
        else:
            schema_editor.add_index(Prediction, index)


def remove_indexes(apps, schema_editor):
    for index in NEW_INDEXES:
        _drop_index(schema_editor, index.name)


def restore_field_indexes(apps, schema_editor):
    Prediction = apps.get_model("predictions", "Prediction")
    for name in ("batch_id", "entity_id", "model_version"):
        field = Prediction._meta.get_field(name)
        for statement in schema_editor._field_indexes_sql(Prediction, field):
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    atomic = False  # CREATE / DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ('predictions', '0002_prediction_version_window_index'),
        ('registry', '0003_cache_table'),
    ]

    # The new indexes first: lookups by entity_id are never without one.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="prediction", index=index) for index in NEW_INDEXES],
            database_operations=[migrations.RunPython(add_indexes, remove_indexes)],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='prediction',
                    name='batch_id',
                    field=models.UUIDField(blank=True, null=True),
                ),
                migrations.AlterField(
                    model_name='prediction',
                    name='entity_id',
                    field=models.CharField(blank=True, max_length=200),
                ),
                migrations.AlterField(
                    model_name='prediction',
                    name='model_version',
                    field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='registry.modelversion'),
                ),
            ],
            database_operations=[migrations.RunPython(drop_field_indexes, restore_field_indexes)],
        ),
    ]
