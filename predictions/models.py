"""The prediction log: every answered prediction, single or batch, for monitoring."""
from __future__ import annotations

from django.db import models

from registry.models import ModelType, ModelVersion


class Prediction(models.Model):
    class Source(models.TextChoices):
        MODEL = "model", "Model"
        RULES = "rules", "Rules fallback"

    tenant = models.CharField(max_length=200)
    model_type = models.CharField(max_length=40, choices=ModelType.choices)
    # No database constraint: deleting a model version keeps its predictions and their id.
    # No index of its own either: prediction_version_window_idx leads with it.
    model_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    entity_id = models.CharField(max_length=200, blank=True)
    batch_id = models.UUIDField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    input = models.JSONField()
    output = models.JSONField()
    # The number monitoring aggregates: conversion probability or lifetime value.
    value = models.FloatField()
    latency_ms = models.FloatField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Every index is written on every prediction: only those a query reads. entity_id
        # is only ever matched exactly (outcomes, the admin's `=` search), so a plain
        # index, without the LIKE one `db_index` adds on PostgreSQL; batch_id only for
        # batches (a single prediction writes no entry there).
        indexes = [
            models.Index(fields=["entity_id"], name="prediction_entity_idx"),
            models.Index(
                fields=["batch_id"], name="prediction_batch_idx", condition=models.Q(batch_id__isnull=False)
            ),
            models.Index(fields=["tenant", "model_type", "created_at"]),
            # Monitoring's window counts, samples and outcome joins read only these columns:
            # index-only scans on a log of millions (BENCHMARKS.md, Monitoring).
            models.Index(
                fields=["model_version", "source", "created_at"],
                include=["id", "entity_id", "value"],
                name="prediction_version_window_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"prediction {self.pk} ({self.tenant}, {self.model_type}, {self.source})"
