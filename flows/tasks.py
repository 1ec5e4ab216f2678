"""Celery tasks of the executor queue. Each is an interface: ids in, one service called."""
from celery import shared_task

from . import engine, reconciler, scheduler, services


@shared_task(name="flows.execution_advance")
def execution_advance(execution_id: str) -> None:
    engine.execution_advance(execution_id=execution_id)


@shared_task(bind=True, name="flows.scheduler_tick")
def scheduler_tick(self) -> None:
    """Sent by beat every SCHEDULER_TICK_SECONDS: fires what is due (docs/triggers.md)."""
    scheduler.scheduler_tick(sent=scheduler.tick_sent(self.request.expires))


@shared_task(name="flows.reconcile")
def reconcile() -> None:
    """Sent by beat every RECONCILE_SECONDS: task runs waiting or lost (docs/fallback.md, docs/guarantees.md);
    then, at most once a minute, a sample of each group's load for the admin's chart (docs/admin.md)."""
    reconciler.taskruns_reconcile()
    services.worker_group_samples_record()
