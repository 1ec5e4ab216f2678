"""The scheduler tick (docs/triggers.md).

`celery -A project beat` sends `flows.scheduler_tick` every SCHEDULER_TICK_SECONDS; the executor
runs `scheduler_tick()`, which does only what is due:

1. It records that a tick ran, by when beat sent it. If none sent earlier ran for longer than
   `downtime_seconds()` (no beat, or no executor: ticks expire), the Schedule triggers overdue now
   were missed: `recoverMissedSchedules` LAST and NONE move them on before anything fires (ALL lets
   every missed date fire). A busy executor that runs ticks late, but runs them, misses nothing.
2. It reads the trigger states whose `next_date` has come (an indexed range: the cost follows the
   due triggers, not the defined ones) and handles each in its own transaction, holding its row
   (`select_for_update(skip_locked=True)` on PostgreSQL, so two ticks share the work) and claiming
   it by moving `next_date` on from the value it read (a conditional update, which is what holds on
   SQLite): however many ticks run at once, a due date fires once and an interval is sent once.
   - a Schedule starts one execution per due date;
   - a polling trigger is routed like a task (flows/routing.py) and sent to a worker of its group,
     or, by the fallback policy (flows/fallback.py), skipped for this interval.
"""
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import dispatch
from .context import trigger_context
from .definition import parse_flow_cached
from .fallback import WAIT, fallback_decide
from .models import SchedulerTick, State, TriggerState, queue_for_group
from .routing import RoutingError, route_resolve, worker_group_problem
from .scheduling import SCHEDULE, interval_of, schedule_next, schedule_previous
from .selectors import alive_workers, namespace_defaults, triggers_due
from .triggers import (
    schedule_fire, schedule_recover, trigger_evaluation_abandon, trigger_evaluation_publish, trigger_interval_skip,
    trigger_model,
)

logger = logging.getLogger(__name__)

DUE_PER_TICK = 1000  # trigger states handled by one tick at most; the next tick takes the rest
DATES_PER_TICK = 100  # a Schedule catching up (recoverMissedSchedules ALL) fires at most this many dates per tick


def downtime_seconds() -> float:
    """A silence between two ticks longer than this means no scheduler ran meanwhile."""
    return max(5.0, settings.SCHEDULER_TICK_EXPIRES)


def tick_sent(expires) -> datetime | None:
    """When beat sent a tick: a message carries no send time, but beat gives each tick an expiry
    SCHEDULER_TICK_EXPIRES after sending it. None for a tick sent otherwise (no expiry)."""
    if not expires:
        return None
    expiry = expires if isinstance(expires, datetime) else datetime.fromisoformat(expires)
    return expiry - timedelta(seconds=settings.SCHEDULER_TICK_EXPIRES)


@dataclass
class Routing:
    """What routing needs for several polling triggers of one tick, read once."""

    _alive: set | None = None
    _hosts: set | None = None
    problems: dict = field(default_factory=dict)
    namespaces: dict = field(default_factory=dict)

    def _read(self) -> None:
        workers = alive_workers()
        self._alive = {queue for worker in workers for queue in worker.groups}
        self._hosts = {worker.hostname for worker in workers}

    def alive(self, key: str) -> bool:
        if self._alive is None:
            self._read()
        return queue_for_group(key) in self._alive

    def host_alive(self, hostname: str) -> bool:
        if self._hosts is None:
            self._read()
        return hostname in self._hosts

    def namespace_defaults(self, tenant, name: str) -> tuple[str, str]:
        if (tenant.pk, name) not in self.namespaces:
            self.namespaces[(tenant.pk, name)] = namespace_defaults(tenant, name)
        return self.namespaces[(tenant.pk, name)]

    def problem(self, key: str, tenant) -> str | None:
        if (key, tenant.pk) not in self.problems:
            self.problems[(key, tenant.pk)] = worker_group_problem(key, tenant)
        return self.problems[(key, tenant.pk)]


def scheduler_tick(*, now: datetime | None = None, sent: datetime | None = None) -> dict:
    """One tick; `sent`: when beat sent it (default now). Returns counts of what it did."""
    now = now or timezone.now()
    counts = {"recovered": _heartbeat(now, min(sent or now, now)), "fired": 0, "sent": 0, "skipped": 0}
    routing = Routing()
    for state_id, due_date in triggers_due(now=now, limit=DUE_PER_TICK):
        with transaction.atomic():
            state = (
                TriggerState.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("flow__tenant").filter(pk=state_id, next_date=due_date).first()
            )
            if state is None:  # another tick holds it or has moved it on
                continue
            if state.trigger_type == SCHEDULE:
                counts["fired"] += schedule_fire(state=state, now=now, limit=DATES_PER_TICK)
            elif _send_evaluation(state, now, routing):
                counts["sent"] += 1
            else:
                counts["skipped"] += 1
    if any(counts.values()):
        logger.info("scheduler tick: %s", counts)
    return counts


def _heartbeat(now: datetime, sent: datetime) -> int:
    """Records this tick (by when it was sent); after a silence, applies recoverMissedSchedules.
    Returns how many Schedule triggers it moved on. The row stays locked until the recovery is done,
    so a tick running at the same time waits for it instead of firing dates the recovery skips."""
    with transaction.atomic():
        tick = SchedulerTick.objects.select_for_update().filter(pk=1).first()
        if tick is None:
            try:
                with transaction.atomic():
                    SchedulerTick.objects.create(pk=1, last_tick=sent)
            except IntegrityError:  # another tick created it first
                return _heartbeat(now, sent)
            return _recover(now)
        previous = tick.last_tick
        if sent > previous:
            SchedulerTick.objects.filter(pk=1).update(last_tick=sent)
        if (sent - previous).total_seconds() > downtime_seconds():
            return _recover(now)
    return 0


def _recover(now: datetime) -> int:
    """The Schedule triggers due now were due while no scheduler ran: LAST keeps only the last date
    missed, NONE none of them (docs/triggers.md); ALL keeps them all."""
    moved = 0
    overdue = TriggerState.objects.select_for_update().filter(trigger_type=SCHEDULE, next_date__lte=now)
    for state in overdue:
        policy = state.definition.get("recoverMissedSchedules") or "ALL"
        if policy == "NONE":
            next_date = schedule_next(state.definition, now)
        elif policy == "LAST":
            next_date = max(state.next_date, schedule_previous(state.definition, now))
        else:
            continue
        if next_date != state.next_date:
            moved += schedule_recover(state=state, next_date=next_date, policy=policy, now=now)
    return moved


def _send_evaluation(state: TriggerState, now: datetime, routing: Routing) -> bool:
    """A due polling trigger: send this interval's evaluation to its group, or skip it."""
    next_date = now + interval_of(state.definition)
    flow = state.flow
    document = parse_flow_cached(flow.source).document
    try:
        route = route_resolve(holder=trigger_model(state), document=document, tenant=flow.tenant,
                              context=trigger_context(flow=flow, document=document),
                              namespace_defaults_of=routing.namespace_defaults)
    except RoutingError as error:
        trigger_interval_skip(state=state, next_date=next_date, now=now, reason=str(error), error=True)
        return False
    if state.evaluation is not None:
        lost = _lost(state, now, routing, route.key)
        if lost is None:  # still under way: this interval is skipped, not queued behind it
            trigger_interval_skip(state=state, next_date=next_date, now=now)
            return False
        trigger_evaluation_abandon(state=state, reason=lost)
    problem = routing.problem(route.key, flow.tenant)
    decision = fallback_decide(group_key=route.key, fallback=route.fallback, max_wait_seconds=None, problem=problem,
                               alive=routing.alive(route.key), waited_seconds=0.0)
    label = queue_for_group(route.key)
    if decision.action in (State.FAILED, State.CANCELLED):
        reason = problem or f"no alive worker in worker group '{label}' (fallback {route.fallback})"
        trigger_interval_skip(state=state, next_date=next_date, now=now, reason=reason, error=bool(problem))
        return False
    evaluation_id = uuid.uuid4()
    waiting = decision.message if decision.action == WAIT else ""
    if not trigger_evaluation_publish(state=state, next_date=next_date, now=now, evaluation_id=evaluation_id,
                                      waiting=waiting):
        return False
    dispatch.send([dispatch.trigger_evaluation_message(trigger_state_id=state.pk, evaluation_id=evaluation_id,
                                                       queue=label)])
    return True


def _lost(state: TriggerState, now: datetime, routing: Routing, group_key: str) -> str | None:
    """Why the evaluation under way will never end, or None while it may still."""
    if state.lock_owner:
        if not routing.host_alive(state.lock_owner):
            return f"worker {state.lock_owner} stopped heartbeating"
        return None
    waited = (now - state.published).total_seconds() if state.published else 0.0
    if waited > settings.REPUBLISH_AFTER_SECONDS and routing.alive(group_key):
        return f"sent {waited:.0f}s ago and still not taken, while its group has workers"
    return None
