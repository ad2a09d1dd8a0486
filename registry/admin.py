from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from leadml.errors import ApplicationError
from monitoring.services.retrain import retrain_evaluate, retrain_request
from registry.models import ApiToken, ModelVersion, PromotionEvent


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("tenant", "model_type", "name", "version", "algorithm", "status", "main_metric_display", "created_at")
    list_filter = ("model_type", "status", "algorithm", "tenant", "created_at")
    search_fields = ("tenant", "name")
    readonly_fields = [field.name for field in ModelVersion._meta.fields]
    actions = ("retrain_now", "evaluate_triggers")

    @admin.action(description="Retrain now (own algorithm and configuration)")
    def retrain_now(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        actor = f"admin:{request.user.get_username()}"
        for version in queryset:
            try:
                decision = retrain_request(version=version, actor=actor, reason="retrain requested in the admin")
            except ApplicationError as error:
                self.message_user(request, f"{version}: {error.message}", messages.WARNING)
            else:
                self.message_user(request, f"{version}: retrain queued (job {decision.job.id if decision.job else '?'})")

    @admin.action(description="Evaluate retraining triggers (retrain what is due)")
    def evaluate_triggers(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        actor = f"admin:{request.user.get_username()}"
        for version in queryset:
            decision = retrain_evaluate(version=version, actor=actor)
            level = messages.WARNING if decision.action == "failed" else messages.INFO
            self.message_user(request, decision.line(), level)

    @admin.display(description="Main metric")
    def main_metric_display(self, obj: ModelVersion) -> str:
        name, value = obj.main_metric
        return f"{name} {value:.3f}" if value is not None else "-"


@admin.register(PromotionEvent)
class PromotionEventAdmin(admin.ModelAdmin):
    list_display = ("tenant", "model_type", "from_version", "to_version", "actor", "reason", "created_at")
    list_filter = ("model_type", "tenant", "created_at")
    list_select_related = ("from_version", "to_version")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "is_service", "key_prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("is_service", "tenant", "created_at")
    search_fields = ("name", "tenant", "key_prefix")
    readonly_fields = ("key_prefix", "key_hash", "last_used_at", "created_at")
