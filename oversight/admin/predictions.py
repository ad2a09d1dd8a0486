"""The prediction log in the admin: filters, entity search, and each prediction with its outcome."""
from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from monitoring.models import Outcome
from predictions.models import Prediction


def _outcomes_for(prediction_ref: Any) -> QuerySet[Outcome]:
    """Outcomes of the prediction's entity, or of the prediction itself when it had no id."""
    return Outcome.objects.filter(tenant=OuterRef("tenant"), model_type=OuterRef("model_type")).filter(
        Q(entity_id=OuterRef("entity_id"), entity_id__gt="") | Q(prediction_id=prediction_ref)
    )


class HasOutcomeFilter(admin.SimpleListFilter):
    title = "has outcome"
    parameter_name = "has_outcome"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Prediction]) -> QuerySet[Prediction]:
        if self.value() is None:
            return queryset
        has = Exists(_outcomes_for(OuterRef("pk")))
        return queryset.filter(has) if self.value() == "yes" else queryset.exclude(has)


class TierFilter(admin.SimpleListFilter):
    title = "tier"
    parameter_name = "tier"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(tier, tier) for tier in "ABCD"]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Prediction]) -> QuerySet[Prediction]:
        return queryset.filter(output__tier=self.value()) if self.value() else queryset


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ("id", "tenant", "model_type", "model_display", "entity_id", "source", "value", "tier", "outcome_label", "created_at")
    list_filter = (
        "model_type", "model_version", "source", TierFilter, HasOutcomeFilter, "tenant",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("=entity_id",)
    search_help_text = "Search by entity id (the CRM's lead or customer id)."
    date_hierarchy = "created_at"
    list_select_related = ("model_version",)
    show_full_result_count = False  # no COUNT(*) over the whole log on every page
    readonly_fields = ("input_table", "output_table", "reasons_table", "outcome_table", *[f.name for f in Prediction._meta.fields])
    fieldsets = (
        (None, {"fields": ("id", "tenant", "model_type", "model_version", "entity_id", "source", "value", "latency_ms", "created_at", "batch_id")}),
        ("Input", {"fields": ("input_table",)}),
        ("Output", {"fields": ("output_table", "reasons_table")}),
        ("Outcome", {"fields": ("outcome_table",)}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the log is a record; viewing is allowed

    def get_queryset(self, request: HttpRequest) -> QuerySet[Prediction]:
        label = _outcomes_for(OuterRef("pk")).values("label")[:1]
        return super().get_queryset(request).annotate(outcome_label=label).defer("input")

    @admin.display(description="Model")
    def model_display(self, obj: Prediction) -> str:
        version = obj.model_version
        return f"{version.name} v{version.version}" if version is not None else "-"

    @admin.display(description="Tier")
    def tier(self, obj: Prediction) -> str:
        return (obj.output or {}).get("tier") or "-"

    @admin.display(description="Outcome")
    def outcome_label(self, obj: Prediction) -> Any:
        return "-" if obj.outcome_label is None else obj.outcome_label

    @admin.display(description="Input")
    def input_table(self, obj: Prediction) -> str:
        return _table(obj.input or {})

    @admin.display(description="Output")
    def output_table(self, obj: Prediction) -> str:
        return _table({key: value for key, value in (obj.output or {}).items() if key != "reasons"})

    @admin.display(description="Reasons")
    def reasons_table(self, obj: Prediction) -> str:
        reasons = (obj.output or {}).get("reasons") or []
        if not reasons:
            return "-"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((r.get("feature"), r.get("value"), r.get("contribution"), r.get("description")) for r in reasons),
        )
        return format_html("<table><tr><th>field</th><th>value</th><th>contribution</th><th>why</th></tr>{}</table>", rows)

    @admin.display(description="Outcome")
    def outcome_table(self, obj: Prediction) -> str:
        outcome = (
            Outcome.objects.filter(tenant=obj.tenant, model_type=obj.model_type)
            .filter(Q(entity_id=obj.entity_id, entity_id__gt="") | Q(prediction_id=obj.pk))
            .first()
        )
        if outcome is None:
            return "no outcome recorded yet"
        return _table({"outcome": outcome.value, "label": outcome.label, "observed_at": outcome.observed_at.isoformat(),
                       "linked prediction": outcome.prediction_id})


def _table(values: dict[str, Any]) -> str:
    rows = format_html_join(
        "", "<tr><th>{}</th><td>{}</td></tr>",
        ((key, value if isinstance(value, (str, int, float)) or value is None else json.dumps(value)) for key, value in values.items()),
    )
    return format_html("<table>{}</table>", rows)
