"""Celery tasks of the executor queue. Each is an interface: ids in, one service called."""
import logging

from celery import shared_task

from . import engine, reconciler

logger = logging.getLogger(__name__)


@shared_task(name="flows.execution_advance")
def execution_advance(execution_id: str) -> None:
    engine.execution_advance(execution_id=execution_id)


@shared_task(name="flows.scheduler_tick")
def scheduler_tick() -> None:
    logger.debug("scheduler tick")
    reconciler.taskruns_reconcile()
