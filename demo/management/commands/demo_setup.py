"""Create the demo tenant with data and trained models for both model types.

Idempotent: data and models are created once; each run prints (and writes to
`.demo-token`) a fresh token for the demo tenant, since stored keys cannot be shown again.
"""
from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from demo.data import generate_customers, generate_leads
from monitoring.services.outcomes import outcomes_record
from predictions.models import Prediction
from predictions.services import predictions_make
from predictions.prediction_log import predictions_backdate
from registry.models import ModelVersion
from registry.services import api_token_create
from training.models import Dataset, TrainingJob
from training.services.datasets import dataset_create
from training.config import job_config_parse
from training.services.run import training_job_run_now

DEMO_TENANT = "demo"
# Demo traffic: leads scored per day over the last days (customers: half as many), and
# the days after which their outcomes are known.
TRAFFIC_DAYS = 14
TRAFFIC_PER_DAY = 60
OUTCOME_DELAY_DAYS = 3
DEMO_MODELS = (
    # (model type, model name, algorithm, dataset name, target, positive values, generator)
    ("lead_conversion", "demo_lead_model", "gradient_boosting", "demo leads", "status", ["customer", "won"]),
    ("customer_lifetime_value", "demo_clv_model", "random_forest", "demo customers", "lifetime_value", None),
)


class Command(BaseCommand):
    help = "Create the demo tenant, its datasets and trained models (both model types), and print a token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", default=DEMO_TENANT)
        parser.add_argument("--leads", type=int, default=3000, help="Number of synthetic leads.")
        parser.add_argument("--customers", type=int, default=2000, help="Number of synthetic customers.")
        parser.add_argument("--token-file", default=str(settings.BASE_DIR / ".demo-token"))

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = options["tenant"]
        frames = {
            "lead_conversion": lambda: generate_leads(options["leads"]),
            "customer_lifetime_value": lambda: generate_customers(options["customers"]),
        }
        for model_type, model_name, algorithm, dataset_name, target, positives in DEMO_MODELS:
            dataset = Dataset.objects.filter(tenant=tenant, model_type=model_type, name=dataset_name).first()
            if dataset is None:
                rows = json.loads(frames[model_type]().to_json(orient="records"))
                dataset = dataset_create(
                    tenant=tenant,
                    model_type=model_type,
                    name=dataset_name,
                    target=target,
                    rows=rows,
                    positive_values=positives,
                )
                self.stderr.write(f"Loaded {dataset.row_count} rows into dataset '{dataset_name}' ({dataset.id}).")
            if ModelVersion.objects.filter(tenant=tenant, name=model_name).exists():
                self.stderr.write(f"Model '{model_name}' already trained.")
                continue
            self.stderr.write(f"Training '{model_name}' ({algorithm}) ...")
            job = training_job_run_now(
                tenant=tenant,
                model_type=model_type,
                algorithm=algorithm,
                model_name=model_name,
                training_config=job_config_parse({"dataset_id": str(dataset.id)}),
                requested_by="demo_setup",
            )
            if job.status != TrainingJob.Status.SUCCEEDED:
                self.stderr.write(self.style.ERROR(f"Training '{model_name}' {job.status}: {job.error}"))
                continue
            version = job.model_version
            metric, value = version.main_metric
            self.stderr.write(f"Trained '{model_name}' v{version.version}: {metric}={value}")

        if not Prediction.objects.filter(tenant=tenant).exists():
            self._traffic(tenant)

        _, key = api_token_create(name="demo", tenant=tenant)
        token_file = Path(options["token_file"])
        token_file.write_text(key + "\n")
        os.chmod(token_file, 0o600)
        self.stderr.write(f"Demo tenant user_id='{tenant}'. API token (also in {token_file}):")
        self.stdout.write(key)

    def _traffic(self, tenant: str) -> None:
        """Two weeks of scored leads and customers, outcomes for the older ones: what the
        admin's charts and GET /monitoring show before a real CRM has called."""
        now = timezone.now()
        generators = {
            "lead_conversion": (lambda seed: generate_leads(TRAFFIC_PER_DAY, seed=seed), "status", "id"),
            "customer_lifetime_value": (
                lambda seed: generate_customers(TRAFFIC_PER_DAY // 2, seed=seed), "lifetime_value", "customer_id",
            ),
        }
        for model_type, (generate, target, id_column) in generators.items():
            if not ModelVersion.objects.filter(tenant=tenant, model_type=model_type, status="active").exists():
                continue
            for days_ago in range(TRAFFIC_DAYS, 0, -1):
                frame = generate(1000 + days_ago)
                frame[id_column] = [f"live-{days_ago}-{index}" for index in range(len(frame))]
                rows = json.loads(frame.to_json(orient="records"))
                result = predictions_make(
                    tenant=tenant,
                    model_type=model_type,
                    records=[{key: value for key, value in row.items() if key != target} for row in rows],
                    batch=True,
                )
                scored_at = now - timedelta(days=days_ago, hours=-9)
                predictions_backdate(prediction_ids=result.prediction_ids, created_at=scored_at)
                if days_ago > OUTCOME_DELAY_DAYS:  # outcomes take a few days to come back
                    outcomes_record(
                        tenant=tenant,
                        model_type=model_type,
                        items=[
                            {"entity_id": row[id_column], "outcome": row[target],
                             "observed_at": (scored_at + timedelta(days=OUTCOME_DELAY_DAYS)).isoformat()}
                            for row in rows
                        ],
                    )
        self.stderr.write(f"Scored {TRAFFIC_DAYS} days of demo traffic, with outcomes for the older days.")
