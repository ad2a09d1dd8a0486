"""Delete everything a tenant has in the service: `manage.py tenant_delete`, the benches' reset.

Monitoring sits above the other apps, so it is where one call can ask each app, top
down, to delete its own rows: outcomes, events, trigger settings and the webhook here;
then the prediction log, the training data and jobs, and last the models (artifacts
included) and tokens.
"""
from __future__ import annotations

import logging

from django.db import transaction

from monitoring.models import MonitoringEvent, Outcome, SourceSyncState, TenantWebhook, TriggerSettings
from predictions.prediction_log import predictions_tenant_delete
from registry.services import registry_tenant_delete
from training.services.datasets import training_tenant_delete

logger = logging.getLogger(__name__)


def tenant_delete(*, tenant: str) -> dict[str, int]:
    """Delete the tenant's rows of every app and its model artifacts; return counts by kind."""
    with transaction.atomic():
        # Outcomes first: deleting the datasets would otherwise null their row links one by one.
        counts = {"outcomes": Outcome.objects.filter(tenant=tenant).delete()[0]}
        MonitoringEvent.objects.filter(tenant=tenant).delete()
        TriggerSettings.objects.filter(tenant=tenant).delete()
        TenantWebhook.objects.filter(tenant=tenant).delete()
        SourceSyncState.objects.filter(tenant=tenant).delete()
        counts["predictions"] = predictions_tenant_delete(tenant=tenant)
        counts |= training_tenant_delete(tenant=tenant)
        # The models last: their artifacts are removed once this transaction commits.
        counts |= registry_tenant_delete(tenant=tenant)
    logger.info("tenant_deleted tenant=%s %s", tenant, " ".join(f"{key}={value}" for key, value in counts.items()))
    return counts
