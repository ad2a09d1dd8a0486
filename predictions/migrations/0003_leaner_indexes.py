"""The prediction log keeps only the indexes a query reads (predictions/models.py).

The three field changes only drop indexes, so the database side is written out: DROP
INDEX of the indexes `db_index` made. Django's AlterField would rebuild the whole table
on SQLite (copying every prediction, three times), and the rebuilt table's AUTOINCREMENT
counter would restart at its highest remaining id, handing a deleted prediction's id out
again.
"""
import django.db.models.deletion
from django.db import migrations, models

TABLE = "predictions_prediction"
# (column, suffix) of the indexes `db_index=True` created: Django's own names for them.
DROPPED = (("batch_id", ""), ("entity_id", ""), ("entity_id", "_like"), ("model_version_id", ""))


def drop_field_indexes(apps, schema_editor):
    for column, suffix in DROPPED:
        name = schema_editor._create_index_name(TABLE, [column], suffix=suffix)
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def restore_field_indexes(apps, schema_editor):
    Prediction = apps.get_model("predictions", "Prediction")
    for name in ("batch_id", "entity_id", "model_version"):
        field = Prediction._meta.get_field(name)
        for statement in schema_editor._field_indexes_sql(Prediction, field):
            schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ('predictions', '0002_prediction_version_window_index'),
        ('registry', '0003_cache_table'),
    ]

    operations = [
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
        migrations.AddIndex(
            model_name='prediction',
            index=models.Index(fields=['entity_id'], name='prediction_entity_idx'),
        ),
        migrations.AddIndex(
            model_name='prediction',
            index=models.Index(condition=models.Q(('batch_id__isnull', False)), fields=['batch_id'], name='prediction_batch_idx'),
        ),
    ]
