"""django-q2 tasks: thin wrappers that take ids and call the services."""
from monitoring.services.events import webhook_deliver
from monitoring.services.retrain import retrain_all


def webhook_deliver_task(event_id: int, attempt: int) -> None:
    webhook_deliver(event_id=event_id, attempt=attempt)


def triggers_evaluate_all_task() -> None:
    """The schedule's task: evaluate every active model's triggers, retrain what is due."""
    retrain_all(actor="schedule")


def source_sync_task() -> None:
    """The source sync schedule's task: terminal status changes in the CRM become outcomes."""
    from monitoring.services.source_sync import source_sync_all

    source_sync_all()
