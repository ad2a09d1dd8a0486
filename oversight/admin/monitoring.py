"""Outcomes, monitoring events, trigger settings, tenant webhooks and source sync states in the admin."""
import secrets

from django import forms
from django.contrib import admin

from monitoring.models import MonitoringEvent, Outcome, SourceSyncState, TenantWebhook, TriggerSettings
from monitoring.services.events import webhook_url_refusal
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


class TenantWebhookForm(forms.ModelForm):
    """The secret is write-only, as in the API: blank keeps the current one (or makes one)."""

    url = forms.URLField(max_length=500, assume_scheme="https")
    secret = forms.CharField(
        required=False, min_length=16, max_length=200, widget=forms.PasswordInput(render_value=False),
        help_text="HMAC-SHA256 key of the X-Leadml-Signature header. Never shown again; leave blank to keep it "
        "(or, for a new webhook, to generate one you can then set in your receiver through PUT /monitoring/{user_id}/webhook).",
    )

    class Meta:
        model = TenantWebhook
        fields = ("tenant", "url", "secret", "enabled")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        refusal = webhook_url_refusal(url, resolve=False)
        if refusal is not None:
            raise forms.ValidationError(f"webhook URL refused: {refusal}")
        return url

    def clean_secret(self) -> str:
        return self.cleaned_data["secret"] or (self.instance.secret if self.instance.pk else secrets.token_urlsafe(32))


@admin.register(TenantWebhook)
class TenantWebhookAdmin(admin.ModelAdmin):
    form = TenantWebhookForm
    list_display = ("tenant", "url", "enabled", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("tenant", "url")


@admin.register(SourceSyncState)
class SourceSyncStateAdmin(admin.ModelAdmin):
    """Where each data source's outcome sync stands per tenant (monitoring/services/source_sync.py)."""

    list_display = (
        "source", "tenant", "status", "last_sync_at", "high_water", "rows_read", "outcomes_recorded",
        "outcomes_recorded_total", "error",
    )
    list_filter = ("status", "source")
    search_fields = ("tenant",)
    list_select_related = ("source",)
    readonly_fields = [field.name for field in SourceSyncState._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
