"""django-q2 tasks: thin wrappers that take an id and call the service."""
from training.services.reaper import training_jobs_reap
from training.services.run import training_job_run


def training_job_run_task(job_id: str) -> None:
    training_job_run(job_id=job_id)


def training_jobs_reap_task() -> None:
    """The reaper schedule's task: queue again or end the jobs whose worker is gone."""
    training_jobs_reap()
