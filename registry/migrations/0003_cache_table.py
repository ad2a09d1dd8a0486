"""The database cache table (settings.CACHES without Redis): shared throttling counts."""
from django.core.management import call_command
from django.db import migrations


def cache_table_create(apps, schema_editor):  # type: ignore[no-untyped-def]
    # Named explicitly: created whatever CACHES says when migrating (tests use another cache).
    call_command("createcachetable", "leadml_cache", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("registry", "0002_registry_state")]

    operations = [migrations.RunPython(cache_table_create, migrations.RunPython.noop)]
