from django.contrib import admin

from predictions.models import Prediction


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ("id", "tenant", "model_type", "model_version_id", "entity_id", "source", "value", "latency_ms", "created_at")
    list_filter = ("model_type", "source", "tenant", "created_at")
    search_fields = ("entity_id", "tenant")
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Prediction._meta.fields]
