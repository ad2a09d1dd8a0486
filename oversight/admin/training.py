"""Datasets (quality report, preview, CSV append), training jobs (live progress, cancel) and data sources in the admin."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from leadml.api.errors import ApplicationError
from oversight.lookups import object_or_404
from training.models import Dataset, DataSource, DatasetRow, TrainingJob
from leadml.api.uploads import csv_read
from training.services.datasets import dataset_rows_append
from training.services.jobs import training_job_cancel
from training.source_defaults import defaults_for
from training.source_urls import MASK, url_masked

PREVIEW_ROWS = 20


class AppendRowsForm(forms.Form):
    file = forms.FileField(help_text="CSV with the same columns, the target column included.")


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "model_type", "kind", "row_count", "labelled_row_count", "target", "created_at")
    list_filter = ("model_type", "kind", "tenant", "created_at")
    search_fields = ("name", "tenant")
    readonly_fields = (
        "id", "tenant", "model_type", "kind", "name", "target", "positive_values", "row_count", "labelled_row_count",
        "source_filename", "created_at",
    )
    exclude = ("columns", "quality_report", "source_config")
    change_form_template = "oversight/dataset.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads go through POST /datasets (or append here)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None) -> HttpResponse:
        dataset = object_or_404(Dataset, object_id)
        report = dataset.quality_report or {}
        preview = list(dataset.rows.order_by("row_number")[:PREVIEW_ROWS])
        columns = list(dataset.columns)
        context = {
            "dataset": dataset,
            "report": report,
            "missing": sorted((report.get("missing_share") or {}).items(), key=lambda item: -item[1]),
            "preview_columns": columns,
            "preview_rows": [[row.row_number, row.source, *[row.data.get(column) for column in columns]] for row in preview],
            "append_form": AppendRowsForm(),
            "append_url": reverse("admin:training_dataset_append", args=[dataset.pk]),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def get_urls(self) -> list[Any]:
        return [
            path("<path:object_id>/append/", self.admin_site.admin_view(self.append_view), name="training_dataset_append"),
        ] + super().get_urls()

    def append_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        dataset = object_or_404(Dataset, object_id)
        if not self.has_change_permission(request, dataset):
            return HttpResponseRedirect(reverse("admin:index"))
        form = AppendRowsForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                appended = dataset_rows_append(dataset=dataset, rows=csv_read(form.cleaned_data["file"]))
            except ApplicationError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.log_change(request, dataset, f"Appended {appended} rows from {form.cleaned_data['file'].name}")
                self.message_user(request, f"Appended {appended} rows.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:training_dataset_change", args=[dataset.pk]))
        return TemplateResponse(
            request,
            "oversight/dataset_append.html",
            {**self.admin_site.each_context(request), "dataset": dataset, "form": form, "opts": self.model._meta},
        )


@admin.register(DatasetRow)
class DatasetRowAdmin(admin.ModelAdmin):
    list_display = ("dataset", "row_number", "tenant", "model_type", "label", "source", "created_at")
    list_filter = ("model_type", "source", "tenant", "created_at")
    list_select_related = ("dataset",)
    raw_id_fields = ("dataset",)


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = (
        "id", "tenant", "model_type", "model_name", "algorithm", "status_badge", "progress", "duration", "short_error",
        "created_at",
    )
    list_filter = ("status", "model_type", "algorithm", "tenant", "created_at")
    search_fields = ("id", "tenant", "model_name")
    list_select_related = ("model_version",)
    raw_id_fields = ("dataset", "model_version", "retrain_of")
    readonly_fields = [field.name for field in TrainingJob._meta.fields]
    change_form_template = "oversight/job.html"
    change_list_template = "oversight/job_list.html"
    actions = ("cancel",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Status", ordering="status")
    def status_badge(self, job: TrainingJob) -> str:
        return format_html('<span class="leadml-status leadml-status-{}">{}</span>', job.status, job.status)

    @admin.display(description="Progress")
    def progress(self, job: TrainingJob) -> str:
        return format_html(
            '<div class="leadml-progress" title="{} {}%" style="width:140px"><div class="leadml-progress-bar{}" style="width:{}%"></div></div>',
            job.progress_step, job.progress_percent,
            " leadml-done" if job.status == TrainingJob.Status.SUCCEEDED else "",
            job.progress_percent,
        )

    @admin.display(description="Error")
    def short_error(self, job: TrainingJob) -> str:
        return job.error if len(job.error) <= 80 else job.error[:79] + "…"

    @admin.display(description="Duration (s)")
    def duration(self, job: TrainingJob) -> Any:
        return job.duration_seconds

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        running = TrainingJob.objects.filter(status__in=(TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING)).exists()
        return super().changelist_view(request, extra_context={"leadml_refresh": running, **(extra_context or {})})

    def get_urls(self) -> list[Any]:
        return [
            path("<path:object_id>/progress/", self.admin_site.admin_view(self.progress_view), name="training_trainingjob_progress"),
        ] + super().get_urls()

    def progress_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        job = object_or_404(TrainingJob, object_id)
        if not self.has_view_permission(request, job):
            return JsonResponse({"error": "forbidden"}, status=403)
        return JsonResponse(
            {
                "status": job.status,
                "step": job.progress_step,
                "percent": job.progress_percent,
                "terminal": job.is_terminal,
                "error": job.error,
                "log": job.log,
            }
        )

    @admin.action(description="Cancel the selected jobs", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[TrainingJob]) -> None:
        for job in queryset:
            try:
                training_job_cancel(job=job)
            except ApplicationError as error:
                self.message_user(request, error.message, messages.WARNING)
            else:
                self.log_change(request, job, "Cancel requested")
                self.message_user(request, f"job {job.id}: {job.status}")


class DataSourceForm(forms.ModelForm):
    """The URL's password is never shown: the field holds the masked URL, and *** keeps the stored password."""

    url = forms.CharField(
        widget=forms.TextInput(attrs={"size": 90, "autocomplete": "off"}),
        help_text=f"postgres://user:password@host:5432/dbname of the CRM database (read only). The password is "
        f"shown as {MASK}: leave {MASK} to keep it, or type the whole URL to change it.",
    )

    class Meta:
        model = DataSource
        fields = (
            "name", "url", "enabled", "model_type", "kind", "query", "changes_query", "target_column",
            "positive_values", "negative_values", "horizon_days", "statement_timeout_seconds",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["url"] = self.instance.masked_url

    def clean_url(self) -> str:
        value = self.cleaned_data["url"].strip()
        stored = self.instance.url if self.instance.pk else ""
        if stored and value == url_masked(stored):
            return stored
        if stored and f":{MASK}@" in value:
            userinfo = stored.split("://", 1)[-1].rsplit("@", 1)[0]
            if ":" in userinfo:
                return value.replace(f":{MASK}@", f":{userinfo.split(':', 1)[1]}@", 1)
        if MASK in value:
            raise forms.ValidationError(f"type the password in place of {MASK}")
        return value


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    form = DataSourceForm
    list_display = (
        "name", "model_type", "kind", "masked_url", "enabled", "last_sync_at", "sync_status", "last_sync_rows_read",
        "last_sync_outcomes_recorded", "outcomes_recorded_total", "short_sync_error",
    )
    list_filter = ("enabled", "model_type", "kind", "last_sync_status")
    search_fields = ("name",)
    readonly_fields = (
        "from_settings", "last_sync_at", "last_sync_status", "last_sync_error", "last_sync_rows_read",
        "last_sync_outcomes_recorded", "outcomes_recorded_total", "created_at", "updated_at",
    )

    @admin.display(description="URL")
    def masked_url(self, source: DataSource) -> str:
        return source.masked_url

    @admin.display(description="Last sync", ordering="last_sync_status")
    def sync_status(self, source: DataSource) -> str:
        status = source.last_sync_status or "never"
        return format_html('<span class="leadml-status leadml-status-{}">{}</span>', status, status)

    @admin.display(description="Sync error")
    def short_sync_error(self, source: DataSource) -> str:
        error = source.last_sync_error
        return error if len(error) <= 240 else error[:239] + "…"

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        model_type = initial.get("model_type", "lead_conversion")
        kind = initial.get("kind", DataSource.Kind.RECORDS)
        return {**defaults_for(model_type=str(model_type), kind=str(kind)), **initial}
