"""The fallback policy: what happens to a task run whose group cannot take it now.

One function decides, for the engine when it creates a task run and for the reconciler on every
tick while the task run waits, so both apply the same rule with the same words. The behaviour, for
users, is in docs/fallback.md.
"""
from dataclasses import dataclass

from .models import State, queue_for_group

PUBLISH = "PUBLISH"  # a worker of the group is alive: send it
WAIT = "WAIT"  # no worker alive, fallback WAIT: send it anyway and let it wait in the queue


@dataclass(frozen=True)
class Decision:
    action: str  # PUBLISH, WAIT, or the state the task run ends in: FAILED, CANCELLED
    message: str = ""

    @property
    def ends_taskrun(self) -> bool:
        return self.action in (State.FAILED, State.CANCELLED)


def fallback_decide(*, group_key: str, fallback: str, max_wait_seconds: float | None, problem: str | None,
                    alive: bool, waited_seconds: float) -> Decision:
    """`problem`: why the tenant may not use the group (None: it may); `alive`: the group has an alive worker."""
    if problem:
        return Decision(State.FAILED, problem)
    if alive:
        return Decision(PUBLISH)
    label = queue_for_group(group_key)
    if fallback == "FAIL":
        return Decision(State.FAILED, f"no alive worker in worker group '{label}' (fallback FAIL)")
    if fallback == "CANCEL":
        return Decision(State.CANCELLED, f"no alive worker in worker group '{label}': task run cancelled (fallback CANCEL)")
    if max_wait_seconds is not None and waited_seconds > max_wait_seconds:
        return Decision(State.FAILED, f"waited more than {max_wait_seconds:g}s (workerGroup.maxWait) for a worker of "
                                      f"worker group '{label}'")
    limit = f" (at most {max_wait_seconds:g}s)" if max_wait_seconds else ""
    return Decision(WAIT, f"waiting for a worker of worker group '{label}'{limit}")
