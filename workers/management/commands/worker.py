import os

from django.core.management.base import BaseCommand, CommandError

from flows.models import DEFAULT_QUEUE, RESERVED_GROUP_KEYS, WorkerGroup
from project.celery import app


class Command(BaseCommand):
    help = "Start a Celery worker for one or more worker groups (their keys are the queues it consumes)."

    def add_arguments(self, parser):
        parser.add_argument("--worker-group", default=os.environ.get("WORKER_GROUP", ""),
                            help="group key(s), comma separated; default: $WORKER_GROUP, else the default group")
        parser.add_argument("--concurrency", type=int, default=None, help="task runs this worker runs at once")
        parser.add_argument("--hostname", default=None, help="worker name (default: <first group>@%%h)")
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, worker_group: str, concurrency: int | None, hostname: str | None, loglevel: str, **options):
        keys = [key.strip() for key in (worker_group or DEFAULT_QUEUE).split(",") if key.strip()] or [DEFAULT_QUEUE]
        for key in keys:
            if key in RESERVED_GROUP_KEYS - {DEFAULT_QUEUE}:
                raise CommandError(f"'{key}' is reserved: it is not a worker group")
            if key != DEFAULT_QUEUE and not WorkerGroup.objects.filter(key=key).exists():
                raise CommandError(f"worker group '{key}' does not exist (create it with: manage.py workergroup create {key})")
        argv = ["worker", "-Q", ",".join(keys), "-n", hostname or f"{keys[0]}@%h", f"--loglevel={loglevel}"]
        if concurrency is not None:
            if concurrency < 1:
                raise CommandError("--concurrency must be at least 1")
            argv.append(f"--concurrency={concurrency}")
        app.worker_main(argv)
