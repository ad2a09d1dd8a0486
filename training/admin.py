from django.contrib import admin

from training.models import Dataset, DatasetRow, TrainingJob


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "model_type", "row_count", "labelled_row_count", "target", "created_at")
    list_filter = ("model_type", "tenant", "created_at")
    search_fields = ("name", "tenant")
    readonly_fields = ("id", "columns", "quality_report", "row_count", "labelled_row_count", "created_at")


@admin.register(DatasetRow)
class DatasetRowAdmin(admin.ModelAdmin):
    list_display = ("dataset", "row_number", "tenant", "model_type", "label", "source", "created_at")
    list_filter = ("model_type", "source", "tenant", "created_at")
    list_select_related = ("dataset",)
    raw_id_fields = ("dataset",)


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = (
        "id", "tenant", "model_type", "model_name", "algorithm", "status", "progress_step", "progress_percent",
        "duration_seconds", "created_at",
    )
    list_filter = ("status", "model_type", "algorithm", "tenant", "created_at")
    search_fields = ("id", "tenant", "model_name")
    list_select_related = ("model_version",)
    raw_id_fields = ("dataset", "model_version")
    readonly_fields = ("log", "error", "started_at", "heartbeat_at", "finished_at", "attempts")
