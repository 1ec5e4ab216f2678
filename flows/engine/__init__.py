"""The engine: executions advanced by evaluating their task tree (see `evaluation`), one handler per
flowable task type (`flowables`), retries (`retry`). State writes go through `flows.states`."""
from .executions import (
    execution_advance, execution_create, execution_kill, execution_resume, execution_wait, taskrun_finish,
    taskrun_logs_write,
)
from .restart import execution_replay, execution_restart

__all__ = ["execution_advance", "execution_create", "execution_kill", "execution_replay", "execution_restart",
           "execution_resume", "execution_wait", "taskrun_finish", "taskrun_logs_write"]
