"""A flow's `concurrency`: at most `limit` of its executions run at once (docs/flow-properties.md).

The places are counted in the database, under a row lock on the flow, in the transaction that
starts the execution: two processes starting executions of the same flow at once take the lock in
turn, so the limit holds across every executor and worker. Queued executions start in the order
they were created: an execution also counts the ones queued before it.
"""
from django.utils import timezone

from .. import dispatch
from ..definition import parse_flow_cached
from ..models import Execution, Flow, State
from ..selectors import executions_ahead
from ..states import execution_end_early, execution_queue, execution_start

WAITING_TO_START = (State.CREATED, State.QUEUED)


def concurrency_admits(execution: Execution) -> bool:
    """Under the execution's row lock. True when it may run now (a QUEUED one is started, a CREATED
    one is left to the evaluation, as without a limit); otherwise it is queued, cancelled or failed
    as the flow's `behavior` says, and False."""
    if execution.state not in WAITING_TO_START:
        return True
    concurrency = parse_flow_cached(execution.flow_revision.source).document.concurrency
    now = timezone.now()
    if concurrency is None:
        if execution.state == State.QUEUED:  # the limit was removed by a later revision
            execution_start(execution=execution, when=now)
        return True
    # The flow's row lock serializes every start of this flow (on SQLite the write transaction does).
    list(Flow.objects.select_for_update().filter(tenant_id=execution.tenant_id, namespace=execution.namespace,
                                                 flow_id=execution.flow_id).values_list("id", flat=True))
    ahead = executions_ahead(execution)
    if ahead < concurrency.limit:
        execution_start(execution=execution, when=now)
        return True
    if concurrency.behavior == "QUEUE":
        if execution.state == State.CREATED:
            execution_queue(execution=execution, when=now)
        return False
    state = State.CANCELLED if concurrency.behavior == "CANCEL" else State.FAILED
    execution_end_early(execution=execution, state=state, when=now,
                        message=f"flow concurrency limit of {concurrency.limit} reached: {ahead} execution(s) of "
                                f"'{execution.namespace}.{execution.flow_id}' running (behavior {concurrency.behavior})")
    return False


def concurrency_release(execution: Execution) -> None:
    """An execution of the flow has ended: the oldest queued one is advanced (it takes the place if
    it is still free when its message arrives)."""
    queued = (
        Execution.objects.filter(tenant_id=execution.tenant_id, namespace=execution.namespace,
                                 flow_id=execution.flow_id, state=State.QUEUED)
        .order_by("created", "id").values_list("id", flat=True).first()
    )
    if queued is not None:
        dispatch.send([dispatch.advance_message(execution_id=queued)])
