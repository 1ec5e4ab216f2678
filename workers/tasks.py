"""Celery tasks a group worker runs. The engine sends them by name (see flows/dispatch.py)."""
from celery import shared_task

from .execution import taskrun_execute
from .polling import trigger_evaluate


@shared_task(bind=True, name="workers.run_taskrun", acks_late=True)
def run_taskrun(self, taskrun_id: str, attempt: int) -> None:
    taskrun_execute(taskrun_id=taskrun_id, attempt=attempt, worker_id=self.request.hostname)


@shared_task(bind=True, name="workers.ping", ignore_result=False)
def ping(self) -> str:
    """Answers with the worker's name: a liveness probe, and the raw round trip the benchmarks compare with."""
    return self.request.hostname


@shared_task(bind=True, name="workers.evaluate_trigger", acks_late=True)
def evaluate_trigger(self, trigger_state_id: int, evaluation_id: str) -> None:
    """A polling trigger's evaluation, sent by the scheduler tick to a worker of its group."""
    trigger_evaluate(trigger_state_id=trigger_state_id, evaluation_id=evaluation_id, worker_id=self.request.hostname)
