"""`execute NAMESPACE FLOW_ID [--input k=v ...] [--tenant T] [--wait] [--timeout SECONDS]`.

Starts an execution; with --wait, follows it: one line per task-run state change and the task
runs' log lines as they are stored, then each task run with its state, worker group and worker; exits
0 only when the execution ends SUCCESS or WARNING.
"""
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from flows.definition import parse_flow_cached
from flows.engine import execution_create
from flows.errors import UserError
from flows.models import TERMINAL_STATES, State
from flows.selectors import DEFAULT_TENANT, execution_progress, execution_task_runs

OK_STATES = {State.SUCCESS, State.WARNING}
FOLLOW_EVERY = 0.2  # seconds between two reads of a followed execution
COLUMNS = ("TASK", "VALUE", "STATE", "GROUP", "WORKER", "ATTEMPTS")


def parse_inputs(items: list[str]) -> dict[str, str]:
    """`--input k=v` pairs; the values stay strings, the engine types them."""
    inputs = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise CommandError(f"--input '{item}' must be written NAME=VALUE")
        inputs[key.strip()] = value
    return inputs


def _attempts(run) -> int:
    """Attempts made: those recorded, plus the current one if a worker started it."""
    recorded = {item.get("attempt") for item in run.attempts}
    return len(recorded) + (1 if run.worker_id and run.attempt not in recorded else 0)


class Command(BaseCommand):
    help = "Start an execution of a flow; with --wait, wait for it to end and show its task runs."

    def add_arguments(self, parser):
        parser.add_argument("namespace", metavar="NAMESPACE")
        parser.add_argument("flow_id", metavar="FLOW_ID")
        parser.add_argument("--input", action="append", default=[], dest="inputs", metavar="NAME=VALUE",
                            help="an input of the flow (repeat for more)")
        parser.add_argument("--tenant", default=DEFAULT_TENANT, help=f"tenant key (default: {DEFAULT_TENANT})")
        parser.add_argument("--wait", action="store_true", help="wait for the execution to end; exit 1 unless it "
                                                                 "ends SUCCESS or WARNING")
        parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                            help="with --wait, give up (exit 1) after this long (default: 600)")

    def handle(self, *args, namespace: str, flow_id: str, inputs: list[str], tenant: str, wait: bool,
               timeout: float, **options):
        try:
            execution = execution_create(
                tenant_key=tenant, namespace=namespace, flow_id=flow_id, inputs=parse_inputs(inputs), trigger=None,
            )
        except UserError as error:
            raise CommandError(error.message)
        self.stdout.write(
            f"execution {execution.id} of {namespace}.{flow_id} revision {execution.flow_revision.revision} "
            f"(tenant {tenant}): {execution.state}"
        )
        if not wait:
            return
        self._follow(execution, timeout=timeout)
        execution.refresh_from_db()
        if execution.state not in TERMINAL_STATES:
            raise CommandError(f"execution {execution.id} is still {execution.state} after {timeout:g}s")
        self.stdout.write(self._task_runs(execution))
        duration = (execution.end_date - execution.created).total_seconds()
        self.stdout.write(f"execution {execution.id}: {execution.state} in {duration:.2f}s")
        if execution.state not in OK_STATES:
            raise CommandError(f"execution {execution.id} ended {execution.state}")

    def _follow(self, execution, *, timeout: float) -> None:
        """Print each task-run state change and each log line as it is stored, until the execution
        ends or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        seen: dict = {}
        last_log = 0
        while True:
            state, runs, logs = execution_progress(execution.id, logs_after=last_log)
            for run in runs:
                if seen.get(run["id"]) != (run["state"], run["attempt"]):
                    seen[run["id"]] = (run["state"], run["attempt"])
                    self.stdout.write(self._change_line(run))
            for line in logs:
                label = line.task_id or "execution"
                self.stdout.write(f"{line.timestamp:%H:%M:%S}   {label} {line.level}: {line.message}")
                last_log = line.id
            if (state in TERMINAL_STATES and len(logs) < 1000) or time.monotonic() > deadline:
                return
            time.sleep(FOLLOW_EVERY)

    @staticmethod
    def _change_line(run: dict) -> str:
        where = ""
        if run["published"] is not None:  # sent to a group: flowable task runs are run by the executor
            where = f" on {run['worker_group'] or 'default'}" + (f" by {run['worker_id']}" if run["worker_id"] else "")
        value = f"[{run['value']}]" if run["value"] is not None else ""
        attempt = f" (attempt {run['attempt']})" if run["attempt"] > 1 else ""
        return f"{timezone.now():%H:%M:%S} {run['task_id']}{value} {run['state']}{attempt}{where}"

    def _task_runs(self, execution) -> str:
        """A table of the task runs; flowable tasks, run by the executor, have no group ('-')."""
        tasks = parse_flow_cached(execution.flow_revision.source).tasks_by_id
        rows, errors = [COLUMNS], []
        for run in execution_task_runs(execution):
            task = tasks.get(run.task_id)
            group = "-" if task is not None and task.flowable else run.worker_group or "default"
            rows.append((run.task_id, run.value or "-", run.state, group, run.worker_id or "-", str(_attempts(run))))
            if run.error:
                errors.append(f"  {run.task_id}: {run.error}")
        widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
        return "\n".join(lines + (["errors:", *errors] if errors else []))
