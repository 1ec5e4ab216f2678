"""Trigger state, and the executions triggers start (docs/triggers.md).

Writes only. Each flow trigger has one TriggerState, kept in step with the flow by every upload and
delete (`triggers_sync`). Executions are started here for every trigger type: a Schedule's due dates
(by the tick, flows/scheduler.py), a polling trigger's evaluation (by the group worker that ran it),
a Flow trigger (when another execution ends, by the engine), a Webhook (by the API). A change that
a concurrent process could race is a conditional update that must touch exactly one row: the
scheduler claims a due date by moving `next_date` from the value it read, a worker claims an
evaluation by its id, and whoever loses does nothing.
"""
import base64
import hashlib
import hmac
import json
import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from pydantic import TypeAdapter

from . import engine
from .context import outputs_context, trigger_context
from .definition import parse_flow_cached
from .errors import NotFound, UserError
from .expressions import ExpressionError, render, render_deep
from .models import Execution, Flow, LogLine, TriggerState
from .scheduling import (
    EVENT_TYPES, FLOW, WEBHOOK, first_due, resumed_due, schedule_due, schedule_variables,
)
from .schema import FlowDocument, Trigger

logger = logging.getLogger(__name__)

TRIGGER_MODEL = TypeAdapter(Trigger)
# Properties that change nothing about when or how a trigger fires: editing them keeps its state.
NOT_FINGERPRINTED = ("description", "disabled")
# What a trigger whose definition changed starts again from.
FRESH = {
    "last_date": None, "evaluated": None, "worker_id": "", "last_result": "", "last_error": "",
    "last_execution": None, "disabled": False, "evaluation": None, "published": None, "lock_owner": "",
    "locked": None, "memory": {},
}
RELEASED = {"evaluation": None, "published": None, "lock_owner": "", "locked": None}


def trigger_model(state: TriggerState):
    """The trigger's pydantic model, from its stored definition."""
    return TRIGGER_MODEL.validate_python(state.definition)


def trigger_log(*, state_id: int, level: str, message: str) -> None:
    """A log line of the trigger (the admin's logs, filtered by trigger), also in the process log."""
    LogLine.objects.create(trigger_state_id=state_id, level=level, message=message)
    logger.log(logging.ERROR if level == "ERROR" else logging.WARNING if level == "WARN" else logging.INFO,
               "trigger %s: %s", state_id, message)


def _record(state: TriggerState, *, result: str, error: str = "", when: datetime, **fields) -> None:
    """The outcome of an evaluation or firing. An error is logged once, not again on every interval
    while it stays the same."""
    TriggerState.objects.filter(pk=state.pk).update(last_result=result, last_error=error, evaluated=when, **fields)
    if error and error != state.last_error:
        trigger_log(state_id=state.pk, level="ERROR", message=error)


# --- keeping trigger states in step with flows --------------------------------------------------


def trigger_definition(trigger) -> tuple[dict, str]:
    """The trigger as stored, and the fingerprint that tells an unchanged trigger from a changed one."""
    definition = trigger.model_dump(mode="json", by_alias=True)
    significant = {key: value for key, value in definition.items() if key not in NOT_FINGERPRINTED}
    return definition, hashlib.sha256(json.dumps(significant, sort_keys=True).encode()).hexdigest()


def triggers_sync(*, flow: Flow, document: FlowDocument | None, now: datetime | None = None) -> None:
    """After an upload or a delete: one state per trigger of the flow's current revision. An
    unchanged trigger keeps its state, a changed or new one starts afresh, a removed one (or every
    one of a deleted flow) is dropped; a disabled flow or trigger stops being due, and starts again
    (as a trigger enabled again) when it is enabled."""
    now = now or timezone.now()
    if flow.deleted or document is None:
        flow.trigger_states.all().delete()
        return
    wanted = {trigger.id: trigger for trigger in document.triggers}
    flow.trigger_states.exclude(trigger_id__in=list(wanted)).delete()
    states = {state.trigger_id: state for state in flow.trigger_states.all()}
    for trigger in document.triggers:
        definition, fingerprint = trigger_definition(trigger)
        state = states.get(trigger.id)
        runs = not flow.disabled and not trigger.disabled
        if state is None:
            TriggerState.objects.create(
                flow=flow, trigger_id=trigger.id, trigger_type=trigger.type, definition=definition,
                fingerprint=fingerprint, next_date=first_due(definition, now) if runs else None,
            )
        elif state.fingerprint != fingerprint:
            TriggerState.objects.filter(pk=state.pk).update(
                trigger_type=trigger.type, definition=definition, fingerprint=fingerprint, updated=now,
                next_date=first_due(definition, now) if runs else None, **FRESH,
            )
            trigger_log(state_id=state.pk, level="INFO", message="the trigger changed: its state starts afresh")
        elif definition != state.definition or _due_changes(state, runs):
            next_date = state.next_date
            if _due_changes(state, runs):
                next_date = resumed_due(definition, now, state.last_date or state.created) if runs else None
            TriggerState.objects.filter(pk=state.pk).update(definition=definition, next_date=next_date, updated=now)


def _due_changes(state: TriggerState, runs: bool) -> bool:
    """A trigger that starts (its flow or itself enabled in the YAML) or stops (disabled)."""
    if state.trigger_type in EVENT_TYPES or state.disabled:
        return False
    return runs == (state.next_date is None)


# --- the admin's actions ------------------------------------------------------------------------


def _state(state_id: int) -> TriggerState:
    state = TriggerState.objects.select_related("flow").filter(pk=state_id).first()
    if state is None:
        raise NotFound(f"trigger state {state_id} does not exist")
    return state


@transaction.atomic
def trigger_state_disable(*, state_id: int, reason: str = "disabled by hand") -> TriggerState:
    """The trigger stops: no due date, no webhook, no Flow trigger, until it is enabled."""
    state = _state(state_id)
    TriggerState.objects.filter(pk=state.pk).update(disabled=True, next_date=None, updated=timezone.now())
    trigger_log(state_id=state.pk, level="INFO", message=reason)
    return _state(state_id)


@transaction.atomic
def trigger_state_enable(*, state_id: int) -> TriggerState:
    """The trigger runs again, as Kestra enables one: a Schedule from its next date (LAST: the last date
    it missed first), a polling trigger one interval from now."""
    state = _state(state_id)
    if state.disabled:
        runs = not state.flow.disabled and not state.definition.get("disabled")
        now = timezone.now()
        next_date = resumed_due(state.definition, now, state.last_date or state.created) if runs else None
        TriggerState.objects.filter(pk=state.pk).update(disabled=False, next_date=next_date, updated=now)
        trigger_log(state_id=state.pk, level="INFO", message="enabled by hand")
    return _state(state_id)


@transaction.atomic
def trigger_state_unlock(*, state_id: int) -> TriggerState:
    """Forget the evaluation under way (a worker that will never answer): the next interval sends a new one."""
    state = _state(state_id)
    if state.evaluation is not None:
        TriggerState.objects.filter(pk=state.pk).update(**RELEASED, updated=timezone.now())
        trigger_log(state_id=state.pk, level="WARN",
                    message=f"unlocked by hand (evaluation {state.evaluation} of {state.lock_owner or 'no worker yet'})")
    return _state(state_id)


# --- starting executions ------------------------------------------------------------------------


def _start(state: TriggerState, *, variables: dict, inputs: dict | None = None, source: dict | None = None) -> Execution:
    """An execution of the state's flow carrying the trigger (`trigger.*` in expressions), with the
    trigger's `inputs` rendered against its variables (and, for a Flow trigger, `source`: the
    `outputs` of the execution that ended, as Kestra renders them). Raises UserError; changes nothing then."""
    flow = state.flow
    document = parse_flow_cached(flow.source).document
    try:
        context = {**(source or {}), **trigger_context(flow=flow, document=document, variables=variables)}
        rendered = render_deep(inputs or {}, context)
    except ExpressionError as error:
        raise UserError(str(error), path="inputs") from None
    return engine.execution_create(  # checks everything before it writes, in a transaction of its own
        tenant_key=flow.tenant.key, namespace=flow.namespace, flow_id=flow.flow_id, inputs=rendered,
        trigger={"id": state.trigger_id, "type": state.trigger_type, "variables": variables},
    )


def _start_all(state: TriggerState, fired: list[dict], inputs: dict | None,
               source: dict | None = None) -> tuple[list, list[str]]:
    started, errors = [], []
    for variables in fired:
        try:
            started.append(_start(state, variables=variables, inputs=inputs, source=source).id)
        except UserError as error:
            errors.append(f"no execution started: {error.message}")
    return started, errors


def _summary(started: list, what: str) -> str:
    if not started:
        return f"{what}: no execution started"
    if len(started) == 1:
        return f"{what}: started execution {started[0]}"
    return f"{what}: started {len(started)} executions, the last {started[-1]}"


def schedule_fire(*, state: TriggerState, now: datetime, limit: int) -> int:
    """The tick found this Schedule due (and holds its row): one execution per due date up to now, at
    most `limit`, then the next date. Returns how many executions it started."""
    definition = state.definition
    dates, following = schedule_due(definition, state.next_date, now, limit)
    claimed = TriggerState.objects.filter(pk=state.pk, next_date=state.next_date).update(
        next_date=following, last_date=dates[-1] if dates else state.last_date,
    )
    if not claimed or not dates:
        return 0
    fired = [schedule_variables(definition, date) for date in dates]
    started, errors = _start_all(state, fired, definition.get("inputs"))
    last = fired[-1]["date"]
    _record(state, result=_summary(started, f"due {last}"), error="\n".join(errors), when=now,
            last_execution=started[-1] if started else state.last_execution)
    return len(started)


def schedule_recover(*, state: TriggerState, next_date: datetime, policy: str, now: datetime) -> bool:
    """After the scheduler did not run for a while: a Schedule with recoverMissedSchedules LAST or NONE
    skips (some of) the dates it missed. Conditional on the due date read."""
    moved = TriggerState.objects.filter(pk=state.pk, next_date=state.next_date).update(next_date=next_date)
    if moved:
        kept = "the last one runs" if policy == "LAST" else "none runs"
        message = (f"recoverMissedSchedules {policy}: the scheduler missed the dates from {state.next_date.isoformat()}; "
                   f"{kept}, next due {next_date.isoformat()}")
        TriggerState.objects.filter(pk=state.pk).update(last_result=message, evaluated=now)
        trigger_log(state_id=state.pk, level="WARN", message=message)
    return bool(moved)


# --- polling triggers: sent to a worker of their group, evaluated there ------------------------


def trigger_interval_skip(*, state: TriggerState, next_date: datetime, now: datetime, reason: str = "",
                          error: bool = False) -> bool:
    """This interval is not evaluated: the trigger is due again at `next_date`. With a `reason` (its
    group cannot take it), that is its last result (and error) and a log line; without one (the last
    evaluation is still under way, which the state shows), its last result stays."""
    claimed = TriggerState.objects.filter(pk=state.pk, next_date=state.next_date).update(next_date=next_date)
    if claimed and reason:
        TriggerState.objects.filter(pk=state.pk).update(last_result=f"skipped: {reason}", evaluated=now,
                                                        last_error=reason if error else "")
        if state.last_result != f"skipped: {reason}":
            trigger_log(state_id=state.pk, level="ERROR" if error else "WARN", message=f"evaluation skipped: {reason}")
    return bool(claimed)


def trigger_evaluation_publish(*, state: TriggerState, next_date: datetime, now: datetime, evaluation_id,
                               waiting: str = "") -> bool:
    """Claims this interval for a new evaluation (the caller sends it). `waiting`: the group has no
    alive worker and the fallback WAIT keeps the evaluation queued (said once in the logs)."""
    claimed = TriggerState.objects.filter(pk=state.pk, next_date=state.next_date).update(
        next_date=next_date, evaluation=evaluation_id, published=now, lock_owner="", locked=None,
    )
    if claimed and waiting:
        TriggerState.objects.filter(pk=state.pk).update(last_result=waiting)
        if state.last_result != waiting:
            trigger_log(state_id=state.pk, level="WARN", message=waiting)
    return bool(claimed)


def trigger_evaluation_abandon(*, state: TriggerState, reason: str) -> bool:
    """The evaluation under way is lost (its worker died, its message never arrived)."""
    released = TriggerState.objects.filter(pk=state.pk, evaluation=state.evaluation).update(**RELEASED)
    if released:
        trigger_log(state_id=state.pk, level="WARN", message=f"evaluation {state.evaluation} abandoned: {reason}")
    return bool(released)


def trigger_evaluation_claim(*, state_id: int, evaluation_id, worker_id: str, when: datetime) -> TriggerState | None:
    """A worker takes the evaluation it received; a stale or duplicate message finds nothing to take."""
    taken = TriggerState.objects.filter(pk=state_id, evaluation=evaluation_id, lock_owner="").update(
        lock_owner=worker_id, locked=when,
    )
    if not taken:
        return None
    return TriggerState.objects.select_related("flow__tenant").get(pk=state_id)


def trigger_evaluation_end(*, state: TriggerState, worker_id: str, fired: list[dict], memory: dict, result: str,
                           error: str, when: datetime) -> bool:
    """The worker that holds the evaluation ended it: one execution per entry of `fired` (the trigger's
    variables), what the trigger type remembers, the result. False (and nothing started) if the
    evaluation was taken from it meanwhile (unlocked, abandoned, the trigger changed)."""
    with transaction.atomic():
        ended = TriggerState.objects.filter(pk=state.pk, evaluation=state.evaluation, lock_owner=worker_id).update(
            **RELEASED, last_date=when, worker_id=worker_id, memory=memory,
        )
        if not ended:
            return False
        started, errors = _start_all(state, fired, None)
        _record(state, result=_summary(started, result) if fired else result, error="\n".join([error, *errors]).strip(),
                when=when, last_execution=started[-1] if started else state.last_execution)
    return True


# --- Flow triggers and stopAfter: when an execution ends ----------------------------------------


def _namespace_matches(condition: dict, namespace: str) -> bool:
    comparison = condition.get("comparison") or ("PREFIX" if condition.get("prefix") else "EQUALS")
    wanted = condition["namespace"]
    if comparison == "PREFIX":
        return namespace.startswith(wanted)
    if comparison == "SUFFIX":
        return namespace.endswith(wanted)
    return namespace == wanted


def conditions_hold(conditions: list[dict], execution: Execution) -> bool:
    """Every condition of a Flow trigger holds for `execution`, which has just ended."""
    for condition in conditions:
        kind = condition["type"]
        if kind.endswith(("ExecutionStatus", "ExecutionStatusCondition")):
            if condition.get("in") and execution.state not in condition["in"]:
                return False
            if execution.state in (condition.get("notIn") or []):
                return False
        elif kind.endswith(("ExecutionFlow", "ExecutionFlowCondition")):
            if (execution.namespace, execution.flow_id) != (condition["namespace"], condition["flowId"]):
                return False
        elif kind.endswith(("ExecutionNamespace", "ExecutionNamespaceCondition")):
            if not _namespace_matches(condition, execution.namespace):
                return False
    return True


def _source_context(execution: Execution) -> dict:
    """What a Flow trigger's `inputs` may read of the execution that ended: its `outputs`."""
    runs = list(execution.task_runs.all())
    return {"outputs": outputs_context(runs, {run.id: run for run in runs})}


def flow_trigger_variables(execution: Execution) -> dict:
    return {
        "executionId": str(execution.id), "namespace": execution.namespace, "flowId": execution.flow_id,
        "flowRevision": execution.flow_revision.revision, "state": execution.state,
        "executionLabels": execution.labels,
    }


def execution_ended(*, execution: Execution) -> None:
    """Called by the engine, in the transaction that ends `execution`: the trigger that started it may
    stop (`stopAfter`), and the Flow triggers of the tenant's other flows whose conditions hold start
    their flow, once (this runs once per execution, under its row lock)."""
    if execution.trigger and execution.trigger.get("id"):
        _stop_after(execution)
    candidates = (
        TriggerState.objects.select_related("flow__tenant")
        .filter(trigger_type=FLOW, disabled=False, flow__tenant_id=execution.tenant_id, flow__disabled=False,
                flow__deleted=False)
        .exclude(flow__namespace=execution.namespace, flow__flow_id=execution.flow_id)  # never itself, as in Kestra
    )
    variables = source = None
    for state in candidates:
        definition = state.definition
        if definition.get("disabled") or execution.state not in definition.get("states", ()):
            continue
        if not conditions_hold(definition.get("conditions") or [], execution):
            continue
        variables = variables or flow_trigger_variables(execution)
        source = source or _source_context(execution)
        started, errors = _start_all(state, [variables], definition.get("inputs"), source)
        _record(state, result=_summary(started, f"execution {execution.id} ended {execution.state}"),
                error="\n".join(errors), when=timezone.now(),
                last_execution=started[-1] if started else state.last_execution)


def _stop_after(execution: Execution) -> None:
    state = TriggerState.objects.filter(
        flow__tenant_id=execution.tenant_id, flow__namespace=execution.namespace, flow__flow_id=execution.flow_id,
        trigger_id=execution.trigger["id"], disabled=False,
    ).first()
    if state is not None and execution.state in (state.definition.get("stopAfter") or []):
        TriggerState.objects.filter(pk=state.pk).update(disabled=True, next_date=None, updated=timezone.now())
        trigger_log(state_id=state.pk, level="WARN",
                    message=f"disabled by stopAfter: execution {execution.id} ended {execution.state}")


# --- webhooks -----------------------------------------------------------------------------------

NO_WEBHOOK = "no webhook at this address"  # the same answer for every miss: it reveals nothing


def webhook_body(raw: bytes):
    """`trigger.body` as Kestra gives it: a JSON object or array parsed, other text as it is, bytes
    that are not UTF-8 in base64."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, (dict, list)) else text


def _webhook_key(state: TriggerState) -> str:
    """The trigger's key, rendered when written as an expression (Kestra renders it against the flow:
    `{{ flow.id }}`, `{{ secret('NAME') }}`); a key that cannot be rendered matches no call."""
    key = str(state.definition.get("key", ""))
    try:
        rendered = render(key, trigger_context(flow=state.flow, document=parse_flow_cached(state.flow.source).document))
    except ExpressionError as error:
        trigger_log(state_id=state.pk, level="ERROR", message=f"the webhook key cannot be rendered: {error}")
        return ""
    return "" if rendered is None else str(rendered)


def webhook_start(*, tenant_key: str, namespace: str, flow_id: str, key: str, body: bytes,
                  headers: dict[str, list[str]], parameters: dict[str, list[str]]) -> tuple[Execution, bool]:
    """A call to a Webhook trigger's URL: the key is the credential, compared in constant time with
    every webhook key of the flow. Any miss (tenant, flow, key, a disabled flow or trigger) is the
    same NotFound. Returns the execution started and whether the trigger asks to wait for its end."""
    candidates = list(
        TriggerState.objects.select_related("flow__tenant")
        .filter(trigger_type=WEBHOOK, flow__tenant__key=tenant_key, flow__namespace=namespace, flow__flow_id=flow_id,
                flow__deleted=False)
    )
    found = None
    for state in candidates:
        if hmac.compare_digest(_webhook_key(state).encode(), key.encode()):
            found = state
    if found is None or found.disabled or found.flow.disabled or found.definition.get("disabled"):
        raise NotFound(NO_WEBHOOK)
    variables = {"body": webhook_body(body), "headers": headers, "parameters": parameters}
    now = timezone.now()
    try:
        execution = _start(found, variables=variables, inputs=found.definition.get("inputs"))
    except UserError as error:
        _record(found, result="called: no execution started", error=f"no execution started: {error.message}", when=now)
        raise
    _record(found, result=_summary([execution.id], "called"), when=now, last_date=now, last_execution=execution.id)
    return execution, bool(found.definition.get("wait"))

