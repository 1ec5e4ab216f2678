"""`workergroup create|list|delete|set|drain|resume` (docs/operations.md)."""
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from flows.errors import UserError
from flows.selectors import worker_group_health, worker_group_list
from flows.services import (
    worker_group_create, worker_group_delete, worker_group_drain, worker_group_resume, worker_group_update,
)

DEFAULT_LABEL = "(default)"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]


def _health_cells(health: dict) -> list[str]:
    """ALIVE WORKERS (undrained count, then every alive hostname), QUEUED, BROKER, OLDEST, RUNNING,
    LIMIT, STATUS: the health selector's view of one group (flows/selectors.py)."""
    hostnames = [worker["hostname"] + (" drained" if worker["drained"] else "") for worker in health["aliveWorkers"]]
    alive = f"{health['alive']} ({', '.join(hostnames)})" if hostnames else "0"
    oldest = health["oldestQueuedSince"]
    broker = health["brokerQueueLength"]
    status = [word for word, on in (("FLAGGED", health["flagged"]), ("DRAINED", health["drained"])) if on]
    return [alive, str(health["queued"]), "?" if broker is None else str(broker),
            "-" if oldest is None else f"{(timezone.now() - oldest).total_seconds():.0f}s", str(health["running"]),
            str(health["concurrencyLimit"] or "-"), ",".join(status) or "ok"]


class Command(BaseCommand):
    help = "Create, list and delete worker groups (a group key is the Celery queue its workers consume)."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="{create,list,delete,set,drain,resume}")
        create = verbs.add_parser("create", help="create a worker group")
        create.add_argument("key")
        create.add_argument("--description", default="")
        create.add_argument("--allowed-tenant", dest="allowed_tenants", action="append", default=[], metavar="TENANT",
                            help="a tenant allowed to run on the group (repeatable; none = every tenant)")
        verbs.add_parser("list", help="list worker groups with their alive workers and task runs")
        delete = verbs.add_parser("delete", help="delete a worker group")
        delete.add_argument("key")
        change = verbs.add_parser("set", help="change a worker group's concurrency limit or init script, live")
        change.add_argument("key")
        change.add_argument("--concurrency-limit", metavar="N|none",
                            help="at most N task runs RUNNING at once across the group; 'none' removes the limit")
        change.add_argument("--init-script", metavar="FILE",
                            help="a shell script each worker of the group runs once at start ('-' for stdin, "
                                 "an empty file removes it)")
        for verb, words in (("drain", "stop taking new work (running task runs finish)"),
                            ("resume", "take new work again")):
            control = verbs.add_parser(verb, help=f"a worker group, or one worker of it, {words}; live")
            control.add_argument("key")
            control.add_argument("--worker", default="", metavar="HOST", help="only this worker (<group>@<host>)")

    def handle(self, *args, verb: str, **options):
        try:
            getattr(self, f"_{verb}")(**options)
        except UserError as error:
            raise CommandError(error.message)

    def _create(self, *, key: str, description: str, allowed_tenants: list[str], **options):
        group = worker_group_create(key=key, description=description, allowed_tenants=allowed_tenants)
        self.stdout.write(f"created worker group '{group.key}' (queue '{group.key}')")

    def _delete(self, *, key: str, **options):
        worker_group_delete(key=key)
        self.stdout.write(f"deleted worker group '{key}'")

    def _set(self, *, key: str, concurrency_limit: str | None, init_script: str | None, **options):
        changes = {}
        if concurrency_limit is not None:
            text = concurrency_limit.strip().lower()
            if text != "none" and not text.isdigit():
                raise CommandError(f"--concurrency-limit '{concurrency_limit}' must be a whole number or 'none'")
            changes["concurrency_limit"] = None if text == "none" else int(text)
        if init_script is not None:
            try:
                with open(0 if init_script == "-" else init_script, encoding="utf-8") as script:
                    changes["init_script"] = script.read()
            except OSError as error:
                raise CommandError(f"--init-script: {error}")
        if not changes:
            raise CommandError("nothing to change: give --concurrency-limit or --init-script")
        group = worker_group_update(key=key, **changes)
        limit = group.concurrency_limit or "none"
        self.stdout.write(f"worker group '{key}': concurrency limit {limit}, init script "
                          f"{len(group.init_script.splitlines())} line(s)")

    def _drain(self, **options):
        self._control(worker_group_drain, "drained", **options)

    def _resume(self, **options):
        self._control(worker_group_resume, "resumed", **options)

    def _control(self, service, done: str, *, key: str, worker: str, **options):
        told = service(key=key, worker=worker)
        self.stdout.write(f"{done} {f'worker {worker} of ' if worker else ''}worker group '{key}'; told "
                          f"{', '.join(told) or 'no alive worker'}")

    def _list(self, **options):
        groups = worker_group_list()
        health = worker_group_health()
        rows = [[DEFAULT_LABEL, "tasks with no worker group", "(all)", *_health_cells(health[""])]]
        for group in groups:
            tenants = ", ".join(tenant.key for tenant in group.allowed_tenants.all()) or "(all)"
            rows.append([group.key, group.description, tenants, *_health_cells(health[group.key])])
        header = ["KEY", "DESCRIPTION", "ALLOWED TENANTS", "ALIVE WORKERS", "QUEUED", "BROKER", "OLDEST", "RUNNING",
                  "LIMIT", "STATUS"]
        for line in _table(header, rows):
            self.stdout.write(line)
