"""django-q2 tasks: thin wrappers that take an id and call the service."""
from training.services.jobs import training_job_run, training_jobs_reap


def training_job_run_task(job_id: str) -> None:
    training_job_run(job_id=job_id)


def training_jobs_reap_task() -> None:
    """The reaper schedule's task: queue again or end the jobs whose worker is gone."""
    training_jobs_reap()
