"""django-q2 tasks: thin wrappers that take an id and call the service."""
from training.services.jobs import training_job_run


def training_job_run_task(job_id: str) -> None:
    training_job_run(job_id=job_id)
