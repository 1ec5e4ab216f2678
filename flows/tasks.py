from celery import shared_task

from . import engine, reconciler


@shared_task(name="flows.execution_advance")
def execution_advance(execution_id: str) -> None:
    engine.execution_advance(execution_id=execution_id)


@shared_task(name="flows.scheduler_tick")
def scheduler_tick() -> None:
    reconciler.taskruns_reconcile()
