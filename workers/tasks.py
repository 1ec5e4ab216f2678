from celery import shared_task

from . import services


@shared_task(bind=True, name="workers.run_taskrun", acks_late=True)
def run_taskrun(self, taskrun_id: str, attempt: int) -> None:
    services.taskrun_execute(taskrun_id=taskrun_id, attempt=attempt, worker_id=self.request.hostname)


@shared_task(bind=True, name="workers.ping", ignore_result=False)
def ping(self) -> str:
    """Answers with the worker's name: a liveness probe, and the raw round trip the benchmarks compare with."""
    return self.request.hostname
