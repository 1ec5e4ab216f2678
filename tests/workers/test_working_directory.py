"""WorkingDirectory end to end, on the session's real executor and group workers
(docs/core-tasks.md): one worker of the block's group runs all its tasks in one directory they
share, each with a task run of its own. A worker killed mid-block is in
tests/reliability/test_working_directory_faults.py."""
import pytest

from flows.engine import execution_create, execution_kill
from flows.models import State, TaskRun
from flows.services import flow_upload
from tests.support import run_flow, stored_texts, task_runs, wait_execution, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_tasks_of_a_block_share_its_directory_on_one_worker_of_its_group(engine):
    execution = run_flow("""
id: shared
namespace: company.team
tasks:
  - id: wdir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    workerGroup: {key: gpu}
    inputFiles:
      query.sql: "SELECT 1"
    outputFiles: ["out/*.txt"]
    cache: {patterns: ["*.txt"], ttl: PT1H}
    tasks:
      - id: write
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - mkdir -p out && echo "{{ taskrun.id }}" > {{ workingDir }}/out/stay.txt && cat query.sql > out/query.txt
      - id: read
        type: io.kestra.plugin.scripts.python.Script
        script: |
          import json
          print('::' + json.dumps({"outputs": {"stay": open("out/stay.txt").read().strip()}}) + '::')
      - id: value
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.read.vars.stay }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.value.value }} {{ outputs.wdir.outputFiles['out/stay.txt'] }}"
""")
    runs = task_runs(execution)
    block, children = runs["wdir"], [runs["write"], runs["read"], runs["value"]]
    assert execution.state == State.SUCCESS, [(run.task_id, run.state, run.error) for run in runs.values()]
    assert block.worker_group == "gpu" and block.worker_id.startswith("gpu@")
    # every task of the block ran on the block's worker, one after another, each its own task run
    assert all((run.state, run.worker_id, run.parent_id) == (State.SUCCESS, block.worker_id, block.id)
               for run in children)
    assert all(first.end_date <= second.start_date for first, second in zip(children, children[1:]))
    # the file the first task wrote was read by the second; the block's outputFiles were stored
    assert runs["value"].outputs == {"value": str(runs["write"].id)}
    assert stored_texts(block.outputs["outputFiles"]) == {"out/stay.txt": f"{runs['write'].id}\n",
                                                          "out/query.txt": "SELECT 1"}
    assert runs["after"].outputs["value"] == f"{runs['write'].id} {block.outputs['outputFiles']['out/stay.txt']}"


def test_a_failed_task_stops_the_block_and_its_errors_run(engine):
    # Kestra's working-directory.yaml, with failed=true (its LocalFiles tasks as shell commands)
    execution = run_flow("""
id: working-directory
namespace: io.kestra.tests
inputs:
  - id: failed
    type: STRING
tasks:
  - id: worker
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: first
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["mkdir out && echo '{{ inputs.failed == 'true' ? ko : taskrun.id }}' > out/stay.txt"]
      - id: second
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["cat out/stay.txt"]
        outputFiles: ["out/*"]
      - id: disabled
        type: io.kestra.plugin.core.debug.Return
        disabled: true
    errors:
      - id: error-t1
        type: io.kestra.plugin.core.debug.Return
        format: "Error Trigger ! {{task.id}}"
  - id: 2_end
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.second.outputFiles['out/stay.txt'] }}"
""", inputs={"failed": "true"})
    runs = task_runs(execution)
    assert execution.state == State.FAILED
    assert {task_id: run.state for task_id, run in runs.items()} == {
        "worker": State.FAILED, "first": State.FAILED, "error-t1": State.SUCCESS}
    assert "ko" in runs["first"].error and runs["worker"].error == "task 'first' of the WorkingDirectory ended FAILED"


def test_kestra_working_directory_flows_with_local_files(engine):
    # Kestra's working-directory.yaml (failed=false) and working-directory-each.yaml, as Kestra's tests run them
    execution = run_flow(KESTRA_WORKING_DIRECTORY, inputs={"failed": "false"})
    runs = task_runs(execution)
    assert execution.state == State.SUCCESS and len(runs) == 4
    assert list(runs["second"].outputs["uris"]) == ["out/stay.txt"]
    assert stored_texts(runs["second"].outputs["uris"]) == {"out/stay.txt": str(runs["first"].id)}
    assert runs["2_end"].outputs["value"] == runs["second"].outputs["uris"]["out/stay.txt"]

    execution = run_flow("""
id: working-directory-each
namespace: io.kestra.tests
tasks:
  - id: 1_each
    type: io.kestra.plugin.core.flow.ForEach
    values: '["s1"]'
    tasks:
    - id: 1-1_each
      type: io.kestra.plugin.core.flow.ForEach
      values: '["s2"]'
      tasks:
        - id: worker
          type: io.kestra.plugin.core.flow.WorkingDirectory
          tasks:
          - id: first
            type: io.kestra.plugin.core.storage.LocalFiles
            inputs:
              out/stay.txt: "{{ taskrun.id }} {{ taskrun.value }} {{ workerTaskrun.value }}"
          - id: second
            type: io.kestra.plugin.core.storage.LocalFiles
            outputs:
              - out/*
  - id: 2_end
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.second.s1.s2.uris['out/stay.txt'] }}"
""")
    runs = task_runs(execution)
    assert execution.state == State.SUCCESS and len(runs) == 6
    assert runs["2_end"].outputs["value"].startswith("kestra:///")
    assert stored_texts({"stay": runs["2_end"].outputs["value"]}) == {"stay": f"{runs['first'].id} s2 s2"}


KESTRA_WORKING_DIRECTORY = """
id: working-directory
namespace: io.kestra.tests
inputs:
  - id: failed
    type: STRING
tasks:
  - id: worker
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: first
        type: io.kestra.plugin.core.storage.LocalFiles
        inputs:
          out/stay.txt: "{{ inputs.failed == 'true' ? ko: taskrun.id }}"
      - id: second
        type: io.kestra.plugin.core.storage.LocalFiles
        outputs:
          - out/*
      - id: disabled
        type: io.kestra.plugin.core.debug.Return
        disabled: true
    errors:
      - id: error-t1
        type: io.kestra.plugin.core.debug.Return
        format: "Error Trigger ! {{task.id}}"
  - id: 2_end
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.second.uris['out/stay.txt'] }}"
"""


def test_killing_the_execution_mid_block_kills_the_running_task_and_starts_no_other(engine):
    flow = flow_upload(tenant_key="main", source="""
id: killed-block
namespace: company.team
tasks:
  - id: wdir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    workerGroup: {key: gpu}
    tasks:
      - id: long
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["sleep 60"]
      - id: never
        type: io.kestra.plugin.core.log.Log
        message: never
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: never
""")
    execution = execution_create(tenant_key="main", namespace=flow.namespace, flow_id=flow.flow_id)
    wait_for(lambda: TaskRun.objects.filter(execution=execution, task_id="long", state=State.RUNNING).exists(),
             message="the block's first task to run")

    execution_kill(execution_id=execution.id)

    execution = wait_execution(execution.id, timeout=30)
    assert execution.state == State.KILLED
    assert {run.task_id: run.state for run in execution.task_runs.all()} == {"wdir": State.KILLED, "long": State.KILLED}


def test_the_cache_keeps_files_for_the_next_execution_until_its_ttl(engine):
    # Kestra's working-directory-cache.yml: the first execution finds no hello.txt, the second the kept one
    source = """
id: working-directory-cache
namespace: io.kestra.tests
tasks:
  - id: workingDir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    cache:
      ttl: PT5m
      patterns:
        - "*.txt"
    tasks:
      - id: exists
        type: io.kestra.plugin.core.storage.LocalFiles
        outputs:
          - hello.txt
      - id: inputFiles
        type: io.kestra.plugin.core.storage.LocalFiles
        inputs:
          hello.txt: |
            HELLO WORLD
"""
    first = run_flow(source)
    assert first.state == State.SUCCESS and task_runs(first)["exists"].outputs == {"uris": {}}
    second = run_flow(source)
    kept = task_runs(second)["exists"].outputs["uris"]
    assert second.state == State.SUCCESS and stored_texts(kept) == {"hello.txt": "HELLO WORLD\n"}
    # past its ttl, the kept archive is not used
    third = run_flow(source.replace("ttl: PT5m", "ttl: PT0S"))
    assert third.state == State.SUCCESS and task_runs(third)["exists"].outputs == {"uris": {}}


def test_a_block_with_a_retry_runs_again_whole_as_its_next_attempt(engine):
    execution = run_flow("""
id: retried-block
namespace: company.team
tasks:
  - id: wdir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    retry: {type: constant, interval: PT0.1S, maxAttempt: 2}
    tasks:
      - id: write
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["test ! -e mark.txt && echo {{ workerTaskrun.attemptsCount }} > mark.txt"]
      - id: fail_first
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ workerTaskrun.attemptsCount == 0 }}"
""")
    block = execution.task_runs.get(task_id="wdir")
    assert execution.state == State.SUCCESS and (block.state, block.attempt) == (State.SUCCESS, 2)
    # each attempt made its own task runs, in a directory of its own (mark.txt was not there again)
    assert [(run.task_id, run.state) for run in block.children.order_by("created")] == [
        ("write", State.SUCCESS), ("fail_first", State.FAILED), ("write", State.SUCCESS), ("fail_first", State.SUCCESS)]
