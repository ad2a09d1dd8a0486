"""Outcomes learned from the CRM's status changes (README, "Training from the CRM's database").

Per data source with a `changes_query` and per tenant that has lead predictions, read
the leads whose status became terminal (`customer` / `lost` by default) since the last
sync and record them through `outcomes_record`, the code path of `POST /outcomes`: live
performance and the retraining triggers then work with no call from the CRM.

Incremental by the rows' `changed_at` (the CRM's `updated_at`): a high-water mark per
(source, tenant), read again from `SYNC_OVERLAP` before it so that a change committed
late with an earlier timestamp is not missed. That re-read is harmless: an outcome
already stored counts as a duplicate, so a sync is idempotent. A source that cannot be
read marks the sync failed with the reason (the admin and `/health` show it) and
changes nothing else; scoring goes on.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.db import transaction
from django.db.models import Min
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leadml.ml.types import LEAD_CONVERSION
from monitoring.models import SourceSyncState
from monitoring.services.outcomes import outcomes_record
from predictions.models import Prediction
from training.models import DataSource
from training.services.sources import SourceError, data_source_sync_record, source_changes_read

logger = logging.getLogger(__name__)

SYNC_OVERLAP = timedelta(minutes=10)
# Status changes read per source and tenant in one sync; the next sync goes on from there.
MAX_CHANGES_PER_SYNC = 50_000
# Entity ids looked up per query when matching changes to predictions.
LOOKUP_CHUNK = 5000


@dataclass
class SyncResult:
    source: str
    tenant: str
    status: str  # ok | failed | skipped
    rows_read: int = 0
    scored: int = 0  # changes of leads leadml has scored
    stored: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    since: datetime | None = None
    high_water: datetime | None = None
    error: str = ""
    dry_run: bool = False

    @property
    def outcomes_recorded(self) -> int:
        return self.stored + self.updated

    def line(self) -> str:
        head = f"{self.source}/{self.tenant}: {self.status}"
        if self.status == "failed":
            return f"{head}: {self.error}"
        if self.status == "skipped":
            return f"{head}: {self.error}"
        would = "would record" if self.dry_run else "recorded"
        return (
            f"{head}; {self.rows_read} terminal status changes since {self.since:%Y-%m-%d %H:%M:%S} UTC, "
            f"{self.scored} of scored leads; {would} {self.scored if self.dry_run else self.outcomes_recorded} outcomes"
            + ("" if self.dry_run else f" ({self.stored} new, {self.updated} changed, {self.duplicates} already known, "
                                       f"{self.rejected} refused)")
        )


def source_sync_all(*, tenant: str | None = None, dry_run: bool = False) -> list[SyncResult]:
    """Sync every enabled source with a changes query, for one tenant or each that has lead predictions."""
    results: list[SyncResult] = []
    sources = DataSource.objects.filter(enabled=True, model_type=LEAD_CONVERSION).exclude(changes_query="")
    for source in sources:
        tenants = [tenant] if tenant else _scored_tenants(source.model_type)
        source_results = [source_sync_tenant(source=source, tenant=name, dry_run=dry_run) for name in tenants]
        results += source_results
        if not dry_run:
            _source_summary_store(source, source_results)
    return results


def _scored_tenants(model_type: str) -> list[str]:
    return sorted(Prediction.objects.filter(model_type=model_type).values_list("tenant", flat=True).distinct())


def source_sync_tenant(*, source: DataSource, tenant: str, dry_run: bool = False) -> SyncResult:
    """Read one tenant's terminal status changes from one source and record them as outcomes."""
    now = timezone.now()
    state = SourceSyncState.objects.filter(source=source, tenant=tenant).first()
    if state is not None and state.high_water is not None:
        since = state.high_water - SYNC_OVERLAP
    else:
        # Outcomes are of predictions: a lead closed before the tenant's first one is none.
        since = Prediction.objects.filter(tenant=tenant, model_type=source.model_type).aggregate(first=Min("created_at"))["first"]
    result = SyncResult(source=source.name, tenant=tenant, status="ok", since=since, dry_run=dry_run)
    if since is None:
        result.status, result.error = "skipped", "no lead predictions yet"
        return result
    try:
        read = source_changes_read(source=source, tenant=tenant, since=since, limit=MAX_CHANGES_PER_SYNC)
        parsed = [_change(row) for row in read.rows]
    except SourceError as error:
        result.status, result.error = "failed", error.message
        logger.warning("source_sync_failed source=%s tenant=%s error=%s", source.name, tenant, error.message)
        if not dry_run:
            _state_store(source, tenant, now=now, status=SourceSyncState.Status.FAILED, error=error.message)
        return result
    changes = [change for change in parsed if change is not None]
    result.rows_read = len(changes)
    result.high_water = max([change["changed_at"] for change in changes], default=None)
    scored = _scored_entities(tenant=tenant, model_type=source.model_type, ids=[c["entity_id"] for c in changes])
    items = [
        {"entity_id": c["entity_id"], "outcome": c["outcome"], "observed_at": c["changed_at"].isoformat()}
        for c in changes
        if c["entity_id"] in scored
    ]
    result.scored = len(items)
    if dry_run:
        return result
    if items:
        recorded = outcomes_record(tenant=tenant, model_type=source.model_type, items=items)
        result.stored, result.updated = recorded.stored, recorded.updated
        result.duplicates, result.rejected = recorded.duplicates, len(recorded.rejected)
        for rejection in recorded.rejected[:5]:
            logger.warning("source_sync_outcome_refused source=%s tenant=%s %s", source.name, tenant, rejection["error"])
    _state_store(
        source, tenant, now=now, status=SourceSyncState.Status.OK, error="", high_water=result.high_water,
        rows_read=result.rows_read, outcomes=result.outcomes_recorded,
    )
    logger.info("source_sync source=%s tenant=%s rows=%s outcomes=%s", source.name, tenant, result.rows_read,
                result.outcomes_recorded)
    return result


def _change(row: dict[str, Any]) -> dict[str, Any] | None:
    """One row of the changes query, or None when it names no lead or no outcome."""
    entity_id = row.get("entity_id")
    outcome = row.get("outcome")
    if entity_id in (None, "") or outcome in (None, ""):
        return None
    changed_at = row.get("changed_at")
    parsed = parse_datetime(changed_at) if isinstance(changed_at, str) else None
    if parsed is None:
        raise SourceError(f"changes_query returned a changed_at that is not a timestamp: {changed_at!r}", field="changes_query")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt_timezone.utc)
    return {"entity_id": str(entity_id), "outcome": outcome, "changed_at": parsed}


def _scored_entities(*, tenant: str, model_type: str, ids: list[str]) -> set[str]:
    scored: set[str] = set()
    unique = sorted(set(ids))
    for start in range(0, len(unique), LOOKUP_CHUNK):
        scored.update(
            Prediction.objects.filter(
                tenant=tenant, model_type=model_type, entity_id__in=unique[start : start + LOOKUP_CHUNK]
            ).values_list("entity_id", flat=True).distinct()
        )
    return scored


@transaction.atomic
def _state_store(
    source: DataSource, tenant: str, *, now: datetime, status: str, error: str,
    high_water: datetime | None = None, rows_read: int = 0, outcomes: int = 0,
) -> None:
    state, _ = SourceSyncState.objects.select_for_update().get_or_create(source=source, tenant=tenant)
    state.last_sync_at, state.status, state.error = now, status, error
    if status == SourceSyncState.Status.OK:
        if high_water is not None and (state.high_water is None or high_water > state.high_water):
            state.high_water = high_water
        state.rows_read, state.outcomes_recorded = rows_read, outcomes
        state.outcomes_recorded_total += outcomes
    state.save()


def _source_summary_store(source: DataSource, results: list[SyncResult]) -> None:
    """The source's own row: the last sync over all its tenants, for the admin list and /health."""
    failed = [result for result in results if result.status == "failed"]
    data_source_sync_record(
        source=source,
        errors=[f"{result.tenant}: {result.error}" for result in failed],
        rows_read=sum(result.rows_read for result in results),
        outcomes_recorded=sum(result.outcomes_recorded for result in results),
    )
