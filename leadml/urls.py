"""Root URLs: the CRM's original paths (no trailing slash), the new ones, docs and admin."""
from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from bench.floor import floor_urlpatterns
from leadml.health import HealthApi
from monitoring.apis.events import MonitoringEventsApi, TriggerSettingsApi, WebhookApi
from monitoring.apis.outcomes import OutcomesApi
from monitoring.apis.reports import InsightsApi, MonitoringApi
from monitoring.apis.retrain import ModelRetrainApi
from predictions.apis import PredictApi, PredictBatchApi
from registry.apis import ModelActivateApi, ModelDeleteApi, ModelListApi
from training.apis.datasets import DatasetCreateApi, DatasetDetailApi
from training.apis.jobs import JobCancelApi, JobDetailApi, TrainApi
from training.apis.preprocess import PreprocessApi

urlpatterns = [
    path("health", HealthApi.as_view(), name="health"),
    path("train", TrainApi.as_view(), name="train"),
    path("predict", PredictApi.as_view(), name="predict"),
    path("predict/batch", PredictBatchApi.as_view(), name="predict-batch"),
    path("models/<str:user_id>", ModelListApi.as_view(), name="models"),
    path("models/<str:user_id>/<str:model_name>", ModelDeleteApi.as_view(), name="model-delete"),
    path("models/<str:user_id>/<str:model_name>/activate", ModelActivateApi.as_view(), name="model-activate"),
    path("models/<str:user_id>/<str:model_name>/retrain", ModelRetrainApi.as_view(), name="model-retrain"),
    path("outcomes", OutcomesApi.as_view(), name="outcomes"),
    path("monitoring/<str:user_id>/webhook", WebhookApi.as_view(), name="monitoring-webhook"),
    path("monitoring/<str:user_id>/<str:model_type>", MonitoringApi.as_view(), name="monitoring"),
    path("monitoring/<str:user_id>/<str:model_type>/events", MonitoringEventsApi.as_view(), name="monitoring-events"),
    path("monitoring/<str:user_id>/<str:model_type>/triggers", TriggerSettingsApi.as_view(), name="monitoring-triggers"),
    path("insights/<str:user_id>/<str:model_type>", InsightsApi.as_view(), name="insights"),
    path("preprocess", PreprocessApi.as_view(), name="preprocess"),
    path("datasets", DatasetCreateApi.as_view(), name="datasets"),
    path("datasets/<str:dataset_id>", DatasetDetailApi.as_view(), name="dataset-detail"),
    path("jobs/<str:job_id>", JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<str:job_id>/cancel", JobCancelApi.as_view(), name="job-cancel"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
]
# Only for `manage.py bench` (LEADML_BENCH_FLOOR=1): a constant answer behind the same
# authentication and throttle, the floor /predict is measured against.
urlpatterns += floor_urlpatterns()

# A path no route matches: the API's JSON error, not Django's HTML page.
handler404 = "leadml.api.errors.path_not_found"
