"""Model versions (list + model card + actions), promotion history and API tokens in the admin.

Every action calls the same service function as the API, with `admin:<username>` as the
actor, and is also written to the admin's own history (LogEntry) with its reason.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from leadml.api.errors import ApplicationError
from monitoring.services.retrain import retrain_evaluate, retrain_request
from oversight.card import model_card
from oversight.lookups import object_or_404
from registry.cache import bundle_forget
from registry.models import ApiToken, ModelVersion, PromotionEvent
from registry.services import (
    api_token_create,
    api_token_revoke,
    api_tokens_delete,
    model_version_activate,
    model_version_archive,
    model_versions_delete,
)


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=1000, strip=True)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("tenant", "model_type", "name", "version", "algorithm", "status_badge", "main_metric_display", "created_at")
    list_filter = ("model_type", "status", "algorithm", "tenant", "created_at")
    search_fields = ("tenant", "name")
    readonly_fields = [field.name for field in ModelVersion._meta.fields]
    change_form_template = "oversight/model_card.html"
    actions = ("retrain_now", "evaluate_triggers")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from training jobs only

    def has_delete_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        # The active version is replaced first (activate another), as DELETE /models refuses it.
        if obj is not None and obj.status == ModelVersion.Status.ACTIVE:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: ModelVersion) -> None:
        self.delete_queryset(request, ModelVersion.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        """Through the registry service: artifacts removed, the active version refused."""
        versions = list(queryset)
        try:
            model_versions_delete(versions=versions)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        for version in versions:
            bundle_forget(version.pk)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: ModelVersion) -> str:
        return format_html('<span class="leadml-status leadml-status-{}">{}</span>', obj.status, obj.status)

    @admin.display(description="Main metric")
    def main_metric_display(self, obj: ModelVersion) -> str:
        name, value = obj.main_metric
        return f"{name} {value:.3f}" if value is not None else "-"

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None) -> HttpResponse:
        version = object_or_404(ModelVersion, object_id)
        context = {"card": model_card(version), "reason_form": ReasonForm(), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def get_urls(self) -> list[Any]:
        def action_url(suffix: str, view: Callable[[HttpRequest, ModelVersion], HttpResponse]) -> Any:
            def wrapped(request: HttpRequest, object_id: str) -> HttpResponse:
                version = object_or_404(ModelVersion, object_id)
                if not self.has_change_permission(request, version):
                    return HttpResponseRedirect(reverse("admin:index"))
                return view(request, version)

            return path(
                f"<path:object_id>/{suffix}/",
                self.admin_site.admin_view(require_POST(wrapped)),
                name=f"registry_modelversion_{suffix}",
            )

        return [
            action_url("activate", self._activate),
            action_url("archive", self._archive),
            action_url("retrain", self._retrain),
            action_url("evaluate", self._evaluate),
        ] + super().get_urls()

    def _card(self, version: ModelVersion) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:registry_modelversion_change", args=[version.pk]))

    def _reason(self, request: HttpRequest, version: ModelVersion) -> str | None:
        form = ReasonForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "Give a reason: it is recorded with the change.", messages.ERROR)
            return None
        return form.cleaned_data["reason"]

    def _activate(self, request: HttpRequest, version: ModelVersion) -> HttpResponse:
        reason = self._reason(request, version)
        if reason is not None:
            try:
                model_version_activate(model_version=version, actor=_actor(request), reason=reason)
            except ApplicationError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                bundle_forget(version.pk)
                self.log_change(request, version, f"Activated: {reason}")
                self.message_user(request, f"{version.name} v{version.version} is now active.", messages.SUCCESS)
        return self._card(version)

    def _archive(self, request: HttpRequest, version: ModelVersion) -> HttpResponse:
        reason = self._reason(request, version)
        if reason is not None:
            try:
                model_version_archive(model_version=version, actor=_actor(request), reason=reason)
            except ApplicationError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.log_change(request, version, f"Archived: {reason}")
                self.message_user(request, f"{version.name} v{version.version} archived.", messages.SUCCESS)
        return self._card(version)

    def _retrain(self, request: HttpRequest, version: ModelVersion) -> HttpResponse:
        reason = request.POST.get("reason", "").strip() or "retrain requested in the admin"
        try:
            decision = retrain_request(version=version, actor=_actor(request), reason=reason)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
            return self._card(version)
        assert decision.job is not None
        self.log_change(request, version, f"Retrain requested: {reason}")
        self.message_user(request, f"Retrain of {version.name} v{version.version} queued.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:training_trainingjob_change", args=[decision.job.pk]))

    def _evaluate(self, request: HttpRequest, version: ModelVersion) -> HttpResponse:
        decision = retrain_evaluate(version=version, actor=_actor(request))
        self.log_change(request, version, f"Triggers evaluated: {decision.action}")
        level = messages.WARNING if decision.action == "failed" else messages.INFO
        self.message_user(request, decision.line(), level)
        if decision.job is not None:
            return HttpResponseRedirect(reverse("admin:training_trainingjob_change", args=[decision.job.pk]))
        return self._card(version)

    @admin.action(description="Retrain now (own algorithm and configuration)", permissions=["change"])
    def retrain_now(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for version in queryset:
            try:
                decision = retrain_request(version=version, actor=_actor(request), reason="retrain requested in the admin")
            except ApplicationError as error:
                self.message_user(request, f"{version}: {error.message}", messages.WARNING)
            else:
                self.log_change(request, version, "Retrain requested from the list")
                self.message_user(request, f"{version}: retrain queued (job {decision.job.id if decision.job else '?'})")

    @admin.action(description="Evaluate retraining triggers (retrain what is due)", permissions=["change"])
    def evaluate_triggers(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for version in queryset:
            decision = retrain_evaluate(version=version, actor=_actor(request))
            level = messages.WARNING if decision.action == "failed" else messages.INFO
            self.message_user(request, decision.line(), level)


@admin.register(PromotionEvent)
class PromotionEventAdmin(admin.ModelAdmin):
    list_display = ("tenant", "model_type", "from_version", "to_version", "actor", "reason", "created_at")
    list_filter = ("model_type", "tenant", "created_at")
    list_select_related = ("from_version", "to_version")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the history is a record, not editable


class ApiTokenCreateForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("name", "tenant", "is_service")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("is_service") == bool(data.get("tenant")):
            raise forms.ValidationError("A token is either for one tenant (give its user_id) or a service token, not both.")
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "is_service", "key_prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("is_service", "tenant", "created_at")
    search_fields = ("name", "tenant", "key_prefix")
    readonly_fields = ("key_prefix", "key_hash", "last_used_at", "created_at", "revoked_at")
    actions = ("revoke",)

    def get_form(self, request: HttpRequest, obj: ApiToken | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiTokenCreateForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        return () if obj is None else ("name", "tenant", "is_service", *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            return  # tokens are not edited; revoke and create another
        token, key = api_token_create(name=obj.name, tenant=obj.tenant or None, is_service=obj.is_service)
        obj.pk = token.pk
        obj.key_prefix, obj.key_hash, obj.created_at = token.key_prefix, token.key_hash, token.created_at
        self.message_user(
            request,
            format_html("Token created. Copy the key now, it is not shown again: <code class=\"leadml-new-key\">{}</code>", key),
            messages.SUCCESS,
        )

    def delete_model(self, request: HttpRequest, obj: ApiToken) -> None:
        api_tokens_delete(tokens=[obj])  # serving processes forget the token at once

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        api_tokens_delete(tokens=list(queryset))

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token)
            self.log_change(request, token, "Revoked")
            count += 1
        self.message_user(request, f"{count} token(s) revoked.")
