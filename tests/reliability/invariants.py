"""What every fault scenario checks from the database once the dust has settled.

- Nothing is stuck: every execution has ended, and so has every task run.
- Every task run ran exactly once per attempt: its state history has one RUNNING per attempt that
  started, each after a CREATED; attempts are numbered 1..n with the ended ones recorded; and a
  task whose message is EVIDENCE wrote exactly one such log line for the attempt that succeeded,
  and at most one for any attempt (the runner ran at most once for it).
- FIFO held within a group: task runs are taken in the order they were published. Exact order
  cannot be asked of several processes that publish and claim concurrently, so this bounds it:
  no task run may start after more than `slack` task runs that were published after it (its
  *displacement*). Prefetching, LIFO consumption or a message held by a busy worker make
  displacement grow with the backlog; concurrency alone keeps it below the number of processes.
  Task runs that were republished or given another attempt joined the back of the queue and are
  left out, as docs/guarantees.md says.
"""
import bisect
from collections import Counter
from datetime import datetime

from flows.models import TERMINAL_STATES, Execution, LogLine, State, TaskRun

# A Log task with this message leaves one line per attempt that ran it.
EVIDENCE = "ran {{ taskrun.id }} attempt {{ taskrun.attemptsCount }}"


def executions_ended(execution_ids) -> bool:
    return Execution.objects.filter(id__in=execution_ids).exclude(state__in=TERMINAL_STATES).count() == 0


def state_counts(execution_ids) -> dict:
    return dict(Counter(Execution.objects.filter(id__in=execution_ids).values_list("state", flat=True)))


def _history_faults(run: TaskRun) -> list[str]:
    faults = []
    states = [entry["state"] for entry in run.state_history]
    if states and states[-1] != run.state:
        faults.append(f"history ends {states[-1]}, state {run.state}")
    if run.published is None and not run.worker_id:  # a flowable task run, run by the executor: no attempts
        return faults
    for index, state in enumerate(states):
        if state == State.RUNNING and (index == 0 or states[index - 1] != State.CREATED):
            faults.append(f"RUNNING not after CREATED: {states}")
    numbers = [attempt["attempt"] for attempt in run.attempts]
    if numbers != list(range(1, len(numbers) + 1)) or len(numbers) not in (run.attempt, run.attempt - 1):
        faults.append(f"attempts {numbers} at attempt {run.attempt}")
    started = states.count(State.RUNNING)
    if started not in (len(numbers), len(numbers) + (run.state == State.KILLED)):
        faults.append(f"{started} RUNNING for {len(numbers)} recorded attempts: {states}")
    if any(not attempt.get("workerId") for attempt in run.attempts):
        faults.append(f"an attempt without a worker: {run.attempts}")
    return faults


def check_ran_once_per_attempt(execution_ids) -> list[str]:
    """Faults, one line each (empty: all good)."""
    faults = []
    runs = list(TaskRun.objects.filter(execution_id__in=execution_ids))
    for run in runs:
        if run.state not in TERMINAL_STATES:
            faults.append(f"{run.task_id} {run.id}: stuck {run.state} (attempt {run.attempt}, worker {run.worker_id!r})")
        faults.extend(f"{run.task_id} {run.id}: {fault}" for fault in _history_faults(run))
    evidence = Counter(
        LogLine.objects.filter(execution_id__in=execution_ids, message__startswith="ran ").values_list("message", flat=True)
    )
    for message, count in evidence.items():
        if count > 1:
            faults.append(f"'{message}' logged {count} times: an attempt ran more than once")
    for run in runs:
        if run.state == State.SUCCESS and run.task_type.endswith("log.Log") and run.logs.filter(message__startswith="ran ").exists():
            if evidence[f"ran {run.id} attempt {run.attempt - 1}"] != 1:  # attemptsCount: attempts before
                faults.append(f"{run.task_id} {run.id}: succeeded at attempt {run.attempt} without its evidence line")
    return faults


def _first_published(run: TaskRun) -> datetime:
    return datetime.fromisoformat(run.state_history[0]["date"])


def fifo_displacement(runs) -> int:
    """The largest number of task runs published after one task run that started before it."""
    eligible = [run for run in runs if run.attempt == 1 and run.start_date and run.published
                and run.published == _first_published(run)]
    eligible.sort(key=lambda run: run.published, reverse=True)
    later_starts: list = []  # start dates of the task runs published strictly later, sorted
    worst, index = 0, 0
    while index < len(eligible):
        same = [run for run in eligible[index:] if run.published == eligible[index].published]
        for run in same:
            worst = max(worst, bisect.bisect_left(later_starts, run.start_date))
        for run in same:
            bisect.insort(later_starts, run.start_date)
        index += len(same)
    return worst


def check_fifo(execution_ids, groups: dict[str, int]) -> tuple[dict, list[str]]:
    """`groups`: group key → slack. Returns (displacement per group, faults)."""
    measured, faults = {}, []
    for group, slack in groups.items():
        runs = TaskRun.objects.filter(execution_id__in=execution_ids, worker_group=group)
        measured[group] = fifo_displacement(runs)
        if measured[group] > slack:
            faults.append(f"group {group}: a task run started {measured[group]} places late (at most {slack} allowed)")
    return measured, faults
