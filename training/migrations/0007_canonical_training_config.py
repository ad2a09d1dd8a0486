"""Jobs keep their training config in the canonical form `training.config` writes.

Rows written before held the request as given (partial, with aliases such as a top-level
`missing_values`); a queued one would otherwise run with what `JobConfig.from_dict` can
read of it. A row whose config no longer parses (options refused since, numbers no
float holds) is left as it was: it finished long ago and never runs again.
"""
from __future__ import annotations

from typing import Any

from django.db import migrations

from leadml.api.errors import ApplicationError
from training.config import job_config_parse


def canonical(apps: Any, schema_editor: Any) -> None:
    TrainingJob = apps.get_model("training", "TrainingJob")
    for job in TrainingJob.objects.using(schema_editor.connection.alias).only("pk", "training_config").iterator():
        try:
            config = job_config_parse(job.training_config).as_dict()
        except (ApplicationError, ValueError, TypeError, OverflowError):
            continue  # a config refused (or unreadable) now: the row keeps what it had
        if config != job.training_config:
            TrainingJob.objects.using(schema_editor.connection.alias).filter(pk=job.pk).update(training_config=config)


class Migration(migrations.Migration):
    dependencies = [("training", "0006_data_sources")]

    operations = [migrations.RunPython(canonical, migrations.RunPython.noop)]
