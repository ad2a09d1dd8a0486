from django.contrib import admin

from monitoring.models import MonitoringEvent, Outcome, TenantWebhook, TriggerSettings
from monitoring.services.triggers import TRIGGER_FIELDS


@admin.register(Outcome)
class OutcomeAdmin(admin.ModelAdmin):
    list_display = ("tenant", "model_type", "entity_key", "value", "label", "observed_at", "prediction_id", "created_at")
    list_filter = ("model_type", "tenant", "observed_at")
    search_fields = ("entity_id", "entity_key", "tenant")
    readonly_fields = ("prediction", "model_version", "dataset_row", "created_at", "updated_at")
    raw_id_fields = ("prediction", "model_version", "dataset_row")


@admin.register(MonitoringEvent)
class MonitoringEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "tenant", "model_type", "model_name", "kind", "message", "webhook_status")
    list_filter = ("kind", "model_type", "tenant", "webhook_status", "created_at")
    search_fields = ("tenant", "model_name", "message")
    readonly_fields = [field.name for field in MonitoringEvent._meta.fields]


@admin.register(TriggerSettings)
class TriggerSettingsAdmin(admin.ModelAdmin):
    list_display = ("tenant", "model_type", "updated_at")
    list_filter = ("model_type",)
    search_fields = ("tenant",)
    fieldsets = (
        (None, {"fields": ("tenant", "model_type")}),
        ("Overrides (blank: the default from settings.LEADML_TRIGGER_DEFAULTS)", {"fields": TRIGGER_FIELDS}),
    )


@admin.register(TenantWebhook)
class TenantWebhookAdmin(admin.ModelAdmin):
    list_display = ("tenant", "url", "enabled", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("tenant", "url")
