"""Training's answers as the API gives them: a dataset's summary, a job's, the synchronous /train result."""
from __future__ import annotations

from typing import Any

from registry.presenters import metrics_with_original_names, model_version_metadata
from training.models import Dataset, TrainingJob


def dataset_summary(dataset: Dataset) -> dict[str, Any]:
    return {
        "success": True,
        "dataset_id": str(dataset.id),
        "kind": dataset.kind,
        "status": dataset.status,
        "source_config": dataset.source_config,
        "user_id": dataset.tenant,
        "model_type": dataset.model_type,
        "name": dataset.name,
        "target": dataset.target,
        "positive_values": dataset.positive_values,
        "rows": dataset.row_count,
        "labelled_rows": dataset.labelled_row_count,
        "columns": dataset.columns,
        "quality_report": dataset.quality_report,
        "created_at": dataset.created_at.isoformat(),
    }


def job_summary(job: TrainingJob) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": job.status != TrainingJob.Status.FAILED,
        "job_id": str(job.id),
        "status": job.status,
        "user_id": job.tenant,
        "model_type": job.model_type,
        "algorithm": job.algorithm,
        "model_name": job.model_name,
        "progress": {"step": job.progress_step, "percent": job.progress_percent},
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "duration_seconds": job.duration_seconds,
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "error": job.error or None,
        "log": job.log,
        "model_version": None,
    }
    if job.model_version is not None:
        body["model_version"] = job.model_version.version
        body["result"] = synchronous_result(job)
    return body


def synchronous_result(job: TrainingJob) -> dict[str, Any]:
    """The original service's synchronous `/train` answer."""
    model_version = job.model_version
    assert model_version is not None
    return {
        "success": True,
        "model_path": model_version.artifact_path,
        "metadata": model_version_metadata(model_version),
        "metrics": metrics_with_original_names(model_version.metrics),
        "job_id": str(job.id),
        "status_url": f"/jobs/{job.id}",
        "model_version": model_version.version,
        "status": model_version.status,
    }
