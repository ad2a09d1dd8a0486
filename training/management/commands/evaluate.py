"""Train on a CSV through the service's own training code and print the figures.

Reproduces the model-quality figures in the README without a database or a server:
the same config parser as `POST /train`, the same customer-table builder as
`POST /datasets kind=transactions`, the same `train_model` the job runs.

    python manage.py evaluate ../shared/datasets/bank_marketing_additional/bank-additional-full.csv \\
        --model-type lead_conversion --target y --algorithm auto
    python manage.py evaluate ../shared/datasets/cdnow/CDNOW_master.txt --kind transactions --sep '\\s+' \\
        --customer-column customer_id --date-column date --amount-column dollar_value \\
        --calibration-end 1997-09-30 --horizon-days 273 --config '{"test_size": 0.5}'
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pandas as pd
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from sklearn.model_selection import train_test_split

from leadml.api.errors import ApplicationError
from leadml.ml.errors import MLError
from leadml.ml.parsing import read_csv_typed
from leadml.ml.pipeline import ALGORITHM_CHOICES
from leadml.ml.targets import encode_target
from leadml.ml.train import train_model
from leadml.ml.transactions import TransactionColumns, read_transactions, training_table
from leadml.ml.types import CUSTOMER_LIFETIME_VALUE, MODEL_TYPES, TrainResult, is_classification
from training.config import job_config_parse


class Command(BaseCommand):
    help = "Train on a CSV with the service's training code and print test metrics, candidates and reports."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("csv", help="Path of the CSV (or whitespace-separated) file.")
        parser.add_argument("--kind", choices=("records", "transactions"), default="records")
        parser.add_argument("--model-type", choices=MODEL_TYPES, help="Required for --kind records.")
        parser.add_argument("--target", help="Target column (--kind records).")
        parser.add_argument("--positive-values", default="", help="Comma-separated values meaning 'converted'.")
        parser.add_argument("--sep", default=None, help="Column separator (default: sniffed; '\\s+' for whitespace).")
        parser.add_argument("--drop", default="", help="Comma-separated columns to leave out.")
        parser.add_argument("--sample", type=int, default=0, help="Use a (stratified) random sample of N rows.")
        parser.add_argument("--algorithm", choices=ALGORITHM_CHOICES, default="auto")
        parser.add_argument("--config", default="{}", help="training_config as JSON, as POST /train takes it.")
        parser.add_argument("--customer-column", default="customer_id")
        parser.add_argument("--date-column", default="date")
        parser.add_argument("--amount-column", default="amount")
        parser.add_argument("--calibration-end", help="YYYY-MM-DD (--kind transactions).")
        parser.add_argument("--horizon-days", type=int, help="Days after calibration-end the target sums (--kind transactions).")
        parser.add_argument("--json", action="store_true", help="Print the full result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            raw_config = json.loads(options["config"])
        except json.JSONDecodeError as error:
            raise CommandError(f"--config is not JSON: {error}") from error
        try:
            config = job_config_parse(raw_config).training
        except ApplicationError as error:
            raise CommandError(error.message) from error
        config = replace(config, n_jobs=settings.LEADML_TRAIN_N_JOBS)
        frame = self._read(options)
        if options["kind"] == "transactions":
            model_type = CUSTOMER_LIFETIME_VALUE
            features, labels = self._customer_table(frame, options)
            config = replace(
                config, feature_options=replace(config.feature_options, btyd_horizon_days=options["horizon_days"])
            )
        else:
            model_type = options["model_type"]
            if not model_type or not options["target"]:
                raise CommandError("--kind records needs --model-type and --target")
            if options["target"] not in frame.columns:
                raise CommandError(f"--target {options['target']!r} is not a column: {', '.join(frame.columns)}")
            positives = [value.strip() for value in options["positive_values"].split(",") if value.strip()]
            try:
                labels = encode_target(frame.pop(options["target"]), model_type=model_type, positive_values=positives or None)
            except MLError as error:
                raise CommandError(error.message) from error
            features = frame
        features, labels = self._sample(features, labels, options["sample"], is_classification(model_type))

        started = time.perf_counter()

        def progress(step: str, percent: int) -> None:
            if " fit " not in step:
                self.stderr.write(f"{time.perf_counter() - started:8.1f}s  {percent:3d}%  {step}")

        try:
            result = train_model(
                features, labels, model_type=model_type, algorithm=options["algorithm"], config=config, progress=progress
            )
        except MLError as error:
            raise CommandError(error.message) from error
        if options["json"]:
            self.stdout.write(json.dumps(_as_json(result), indent=2, default=str))
        else:
            self._print(result, model_type)

    def _read(self, options: dict[str, Any]) -> pd.DataFrame:
        sep = options["sep"]
        try:
            frame = read_csv_typed(options["csv"], sep=sep, engine="python" if sep in (None, r"\s+") else "c")
        except (OSError, ValueError) as error:
            raise CommandError(f"cannot read {options['csv']}: {error}") from error
        dropped = [name.strip() for name in options["drop"].split(",") if name.strip()]
        unknown = [name for name in dropped if name not in frame.columns]
        if unknown:
            raise CommandError(f"--drop names columns the file lacks: {', '.join(unknown)}")
        return frame.drop(columns=dropped)

    def _customer_table(self, frame: pd.DataFrame, options: dict[str, Any]) -> tuple[pd.DataFrame, pd.Series]:
        if not options["calibration_end"] or not options["horizon_days"]:
            raise CommandError("--kind transactions needs --calibration-end and --horizon-days")
        columns = TransactionColumns(options["customer_column"], options["date_column"], options["amount_column"])
        try:
            read = read_transactions(frame, columns)
            features, target = training_table(
                read.log, calibration_end=options["calibration_end"], horizon_days=options["horizon_days"]
            )
        except MLError as error:
            raise CommandError(error.message) from error
        skipped = f" ({read.skipped_without_customer} without a customer id skipped)" if read.skipped_without_customer else ""
        self.stderr.write(f"{len(read.log)} transactions{skipped} -> {len(features)} customers")
        return features, target

    @staticmethod
    def _sample(
        features: pd.DataFrame, labels: pd.Series, size: int, classification: bool
    ) -> tuple[pd.DataFrame, pd.Series]:
        if not size or size >= len(features):
            return features, labels
        kept = labels.notna()
        features, labels = features[kept], labels[kept]
        sample_x, _, sample_y, _ = train_test_split(
            features, labels, train_size=size, random_state=0, stratify=labels if classification else None
        )
        return sample_x, sample_y

    def _print(self, result: TrainResult, model_type: str) -> None:
        report = result.report
        write = self.stdout.write
        write(f"rows {report['labelled_rows']} (train {report['train_rows']}, test {report['test_rows']})")
        write(f"chosen: {result.algorithm} {json.dumps(result.best_params)}")
        metric = report["cross_validation"]["metric"]
        write(f"\n{'algorithm':<22}{'CV ' + metric:>16}{'test ' + metric:>14}{'seconds':>10}")
        for candidate in report["candidates"]:
            if "skipped" in candidate:
                write(f"{candidate['algorithm']:<22}  skipped: {candidate['skipped']}")
                continue
            cv = f"{candidate['cv_mean']:.4f}±{candidate['cv_std']:.4f}"
            extra = ""
            if "cv_mae" in candidate:
                extra = (f"   CV MAE {candidate['cv_mae']:.2f}, capture {candidate['cv_top_decile_capture']:.3f}; "
                         f"test MAE {candidate['test_mae']:.2f}, capture {candidate['test_top_decile_capture']:.3f}")
            write(f"{candidate['algorithm']:<22}{cv:>16}{candidate.get('test_' + metric, float('nan')):>14.4f}"
                  f"{candidate['seconds']:>10.1f}{extra}")
        selection = report.get("selection")
        if selection:
            write(f"selection: {selection['criterion']}")
            write(f"run-rate check: {selection['run_rate_check']}")
        write("\ntest metrics of the chosen model:")
        for name, value in result.metrics.items():
            if not isinstance(value, list):  # curves, histograms and pairs are for the charts
                write(f"  {name:<20} {value}")
        if is_classification(model_type):
            write(f"  confusion_matrix     {result.metrics['confusion_matrix']}")
            calibration = report.get("calibration")
            if calibration:
                write(f"calibration ({calibration['method']}; CV log-loss {calibration['cv_log_loss']}): Brier "
                      f"{calibration['brier_before']} -> {calibration['brier_after']}, log-loss "
                      f"{calibration['log_loss_before']} -> {calibration['log_loss_after']}, ROC-AUC "
                      f"{calibration['roc_auc_before']} -> {calibration['roc_auc_after']}")
                for rejected in calibration["rejected"]:
                    write(f"  not used: {rejected}")
        leakage = report["leakage"]
        for item in leakage["evidence"]:
            if item["verdict"]:
                state = "excluded" if item["excluded"] else ("allowed" if item["allowed"] else "warned")
                costs = f"; probe importance {item['probe_importance_share']}, drop cost {item['drop_cost']}"
                write(f"leakage {state}: {item['column']}: {item['reason']}{costs if leakage['probe'] else ''}")
        if leakage["probe"]:
            write(f"CV {leakage['probe']['metric']} with the suspects {leakage['cv_with_suspects']}, without "
                  f"{leakage['cv_without_suspects']} (the leak was worth {leakage['leak_worth']})")
        for warning in report.get("column_warnings", []):
            write(f"column: {warning}")
        btyd = report["feature_engineering"].get("btyd")
        if btyd:
            write(f"BTYD: {btyd['message']}; BG/NBD {btyd['bgnbd_params']}; Gamma-Gamma {btyd['gamma_gamma_params']}")
        write("top features: " + ", ".join(f"{name} {weight:.3f}" for name, weight in result.feature_importance[:8]))
        write(f"timings (s): {report['timings_seconds']}")


def _as_json(result: TrainResult) -> dict[str, Any]:
    return {
        "algorithm": result.algorithm,
        "best_params": result.best_params,
        "cross_validation": result.cross_validation.__dict__,
        "metrics": result.metrics,
        "feature_importance": result.feature_importance,
        "report": result.report,
    }
