"""`MAX_DURATION` SLAs, checked by every reconciler pass (docs/flow-properties.md): an execution still
running `duration` after it was created is violated; FAIL and CANCEL end it (and its unfinished
task runs) FAILED or CANCELLED, NONE only adds the SLA's labels. Each violation is acted on once."""
from datetime import datetime, timedelta

from django.db import transaction

from .. import schema, triggers
from ..definition import parse_flow_cached
from ..durations import parse_duration
from ..models import TERMINAL_STATES, Execution, FlowRevision, LogLine, State
from ..states import execution_end_early, execution_save
from .concurrency import concurrency_release
from .ending import VIOLATION_STATES

UNENDED = (State.CREATED, State.QUEUED, State.RUNNING)


def _max_durations(revision_ids) -> dict:
    """{revision id: [MAX_DURATION SLAs]}, for the revisions that have any."""
    found = {}
    for revision_id, source in FlowRevision.objects.filter(id__in=revision_ids).values_list("id", "source"):
        slas = [sla for sla in parse_flow_cached(source).document.sla if isinstance(sla, schema.MaxDurationSla)]
        if slas:
            found[revision_id] = slas
    return found


def _violation_message(sla) -> str:
    return f"SLA '{sla.id}' violated: the execution ran longer than {sla.duration}"


def sla_overdue_enforce(*, now: datetime) -> int:
    """Acts on every MAX_DURATION violation not acted on yet; returns how many."""
    unended = Execution.objects.filter(state__in=UNENDED)
    slas_by_revision = _max_durations(unended.values_list("flow_revision_id", flat=True).distinct())
    acted = 0
    for revision_id, slas in slas_by_revision.items():
        for sla in slas:
            deadline = now - timedelta(seconds=parse_duration(sla.duration).total_seconds())
            overdue = unended.filter(flow_revision_id=revision_id, created__lte=deadline).values_list("id", flat=True)
            for execution_id in overdue:
                acted += _violate(execution_id, sla, now=now)
    return acted


def _violate(execution_id, sla, *, now: datetime) -> int:
    message = _violation_message(sla)
    with transaction.atomic():
        execution = Execution.objects.select_for_update(of=("self",)).filter(id=execution_id).first()
        if execution is None or execution.state in TERMINAL_STATES:
            return 0
        if LogLine.objects.filter(execution=execution, task_run__isnull=True, message=message).exists():
            return 0  # a NONE violation already noted
        execution.labels = {**execution.labels, **sla.label_map}
        state = VIOLATION_STATES.get(sla.behavior)
        if state is None:
            execution_save(execution)
            LogLine.objects.create(execution=execution, level="WARN", message=message)
            return 1
        execution_end_early(execution=execution, state=state, message=message, when=now)
        triggers.execution_ended(execution=execution)
        concurrency_release(execution)
    return 1
