"""A worker group's init script (docs/operations.md): each worker of the group runs it once when it
starts, before it takes work. Its output goes to the worker's log, line by line; a script that fails
(non-zero status, or longer than WORKER_INIT_SCRIPT_TIMEOUT) stops the worker with a message that
says which group's script failed and how."""
import logging
import os
import subprocess
import threading

from django.conf import settings
from django.db import close_old_connections

from flows.models import WorkerGroup

logger = logging.getLogger(__name__)


class InitScriptFailed(Exception):
    pass


def init_scripts_run(*, hostname: str, queues: list[str]) -> None:
    """Run the init script of each group among `queues` that has one, in that order."""
    close_old_connections()
    scripts = dict(WorkerGroup.objects.filter(key__in=queues).exclude(init_script="").values_list("key", "init_script"))
    close_old_connections()
    for queue in queues:
        if queue in scripts:
            _run(scripts[queue], group=queue, hostname=hostname)


def _run(script: str, *, group: str, hostname: str) -> None:
    timeout = settings.WORKER_INIT_SCRIPT_TIMEOUT
    logger.info("worker %s: running the init script of worker group '%s'", hostname, group)
    process = subprocess.Popen(
        ["/bin/sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace", env={**os.environ, "WORKER_GROUP": group, "WORKER_HOSTNAME": hostname},
        start_new_session=True,
    )
    reader = threading.Thread(target=_log_lines, args=(process.stdout, group), daemon=True)
    reader.start()
    try:
        status = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()
        reader.join(timeout=5)
        raise InitScriptFailed(f"the init script of worker group '{group}' ran longer than {timeout:g}s "
                               f"(WORKER_INIT_SCRIPT_TIMEOUT): worker {hostname} stops") from None
    reader.join(timeout=5)
    if status != 0:
        raise InitScriptFailed(f"the init script of worker group '{group}' failed (exit status {status}): "
                               f"worker {hostname} stops; its output is above")
    logger.info("worker %s: the init script of worker group '%s' succeeded", hostname, group)


def _log_lines(stream, group: str) -> None:
    for line in stream:
        logger.info("init script of worker group '%s': %s", group, line.rstrip("\n"))
