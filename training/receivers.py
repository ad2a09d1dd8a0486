"""After `migrate`: the reaper's schedule ensured and the operator's data sources loaded.

A post_migrate receiver, not an explicit call: these rows must exist wherever the schema
does (every deployment's `migrate`, every test database), and the data sources follow
LEADML_DATA_SOURCES, which changes without a migration. Both calls are idempotent; `serve`
ensures the schedules again at start.
"""
from __future__ import annotations

from typing import Any

from django.db.models.signals import post_migrate
from django.dispatch import receiver

from training.services.schedule import job_reaper_schedule_ensure
from training.services.sources import data_sources_load_settings


@receiver(post_migrate, dispatch_uid="training_reaper_schedule")
def schedule_after_migrate(sender: Any, app_config: Any = None, **kwargs: Any) -> None:
    if app_config is not None and app_config.label == "training":
        job_reaper_schedule_ensure(using=kwargs.get("using", "default"))
        # The operator's LEADML_DATA_SOURCES, written into the DataSource table.
        data_sources_load_settings(using=kwargs.get("using", "default"))
