"""Flow YAML validation: each rule with a failing and a passing document.

Every failing document asserts the message and the YAML line:column of the fault. Documents are
written with a two-line head (`id`, `namespace`), so their own lines start at line 3.
"""
import textwrap

import pytest

from flows.definition import parse_flow
from flows.errors import UserError

HEAD = "id: demo\nnamespace: company.team\n"
LOG = "io.kestra.plugin.core.log.Log"
RETURN = "io.kestra.plugin.core.debug.Return"
SCHEDULE = "io.kestra.plugin.core.trigger.Schedule"
HTTP_TRIGGER = "io.kestra.plugin.core.http.Trigger"


def doc(body: str) -> str:
    return HEAD + textwrap.dedent(body)


def rename_last(text: str, old: str, new: str) -> str:
    head, _, tail = text.rpartition(old)
    return head + new + tail


def faults(source: str) -> list[tuple[str, int, int]]:
    with pytest.raises(UserError) as caught:
        parse_flow(source)
    return [(fault.message, fault.line, fault.column) for fault in caught.value.faults]


def assert_single_fault(source: str, message: str, line: int, column: int) -> None:
    found = faults(source)
    assert len(found) == 1, found
    found_message, found_line, found_column = found[0]
    assert message in found_message, found_message
    assert (found_line, found_column) == (line, column), found


# --- unknown types and properties ---------------------------------------------------------


def test_unknown_task_type_is_refused_at_its_type():
    bad = doc("""\
        tasks:
          - id: hello
            type: io.kestra.plugin.core.log.Nope
            message: hi
        """)
    assert_single_fault(bad, "unknown task type 'io.kestra.plugin.core.log.Nope'", 5, 11)
    parse_flow(bad.replace("io.kestra.plugin.core.log.Nope", LOG))


def test_unknown_trigger_type_is_refused_at_its_type():
    bad = doc(f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: hi
        triggers:
          - id: nightly
            type: io.kestra.plugin.core.trigger.Nope
            cron: "0 2 * * *"
        """)
    assert_single_fault(bad, "unknown trigger type 'io.kestra.plugin.core.trigger.Nope'", 9, 11)
    parse_flow(bad.replace("io.kestra.plugin.core.trigger.Nope", SCHEDULE))


def test_unknown_property_is_refused():
    bad = doc(f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: hi
            colour: blue
        """)
    assert_single_fault(bad, "unknown property 'colour'", 7, 13)
    parse_flow(bad.replace("    colour: blue\n", "    level: WARN\n"))


def test_unknown_top_level_property_is_refused():
    bad = doc(f"""\
        owner: me
        tasks:
          - id: hello
            type: {LOG}
            message: hi
        """)
    assert_single_fault(bad, "unknown property 'owner'", 3, 8)
    parse_flow(bad.replace("owner: me", "description: me"))


def test_missing_required_property_is_located_at_the_task():
    bad = doc(f"""\
        tasks:
          - id: hello
            type: {LOG}
        """)
    assert_single_fault(bad, "missing required property 'message'", 4, 5)
    parse_flow(bad + "    message: hi\n")


def test_missing_tasks_is_refused():
    assert_single_fault(HEAD, "missing required property 'tasks'", 1, 1)


# --- duplicates -----------------------------------------------------------------------------


def test_duplicate_yaml_key_is_refused_at_the_second_key():
    bad = doc(f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: hi
            message: again
        """)
    assert_single_fault(bad, "duplicate key 'message'", 7, 5)
    parse_flow(bad.replace("    message: again\n", ""))


def test_duplicate_top_level_key_is_refused():
    bad = HEAD + "id: again\n" + textwrap.dedent(f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: hi
        """)
    assert_single_fault(bad, "duplicate key 'id'", 3, 1)


def test_duplicate_task_id_is_refused():
    bad = doc(f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: one
          - id: hello
            type: {LOG}
            message: two
        """)
    assert_single_fault(bad, "duplicate task id 'hello'", 7, 9)
    parse_flow(rename_last(bad, "- id: hello", "- id: hello_again"))


NESTED_DUPLICATES = {
    "parallel": f"""\
        tasks:
          - id: branches
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: first
                type: {RETURN}
                format: a
              - id: twin
                type: {RETURN}
                format: b
          - id: twin
            type: {RETURN}
            format: c
        """,
    "if-then-else": f"""\
        tasks:
          - id: check
            type: io.kestra.plugin.core.flow.If
            condition: "{{{{ true }}}}"
            then:
              - id: first
                type: {RETURN}
                format: a
            else:
              - id: twin
                type: {RETURN}
                format: b
          - id: twin
            type: {RETURN}
            format: c
        """,
    "foreach": f"""\
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.ForEach
            values: [1, 2]
            tasks:
              - id: first
                type: {RETURN}
                format: a
              - id: twin
                type: {RETURN}
                format: b
          - id: twin
            type: {RETURN}
            format: c
        """,
    "flowable-errors": f"""\
        tasks:
          - id: block
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: first
                type: {RETURN}
                format: a
            errors:
              - id: twin
                type: {RETURN}
                format: b
          - id: twin
            type: {RETURN}
            format: c
        """,
    "flow-errors": f"""\
        tasks:
          - id: first
            type: {RETURN}
            format: a
          - id: twin
            type: {RETURN}
            format: b
          - id: fourth
            type: {RETURN}
            format: c
          - id: fifth
            type: {RETURN}
            format: c
        errors:
          - id: twin
            type: {LOG}
            message: failed
        """,
}


@pytest.mark.parametrize("shape", NESTED_DUPLICATES)
def test_duplicate_task_id_is_refused_inside_flowable_tasks_and_errors(shape):
    bad = doc(NESTED_DUPLICATES[shape])
    (message, line, column), = faults(bad)
    assert message.startswith("duplicate task id 'twin'"), message
    assert bad.splitlines()[line - 1].strip() == "- id: twin" and column == bad.splitlines()[line - 1].index("twin") + 1
    assert line == max(i for i, text in enumerate(bad.splitlines(), 1) if text.strip() == "- id: twin")
    parse_flow(rename_last(bad, "- id: twin", "- id: another_twin"))


def test_duplicate_trigger_id_is_refused():
    bad = doc(f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: hi
        triggers:
          - id: nightly
            type: {SCHEDULE}
            cron: "0 2 * * *"
          - id: nightly
            type: {SCHEDULE}
            cron: "0 3 * * *"
        """)
    assert_single_fault(bad, "duplicate trigger id 'nightly'", 11, 9)
    parse_flow(rename_last(bad, "- id: nightly", "- id: early"))


# --- ISO-8601 durations ------------------------------------------------------------------

DURATION_PLACES = {
    "Sleep.duration": ("""\
        tasks:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: DURATION
        """, "'duration'", 6, 15),
    "timeout": (f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: hi
            timeout: DURATION
        """, "'timeout'", 7, 14),
    "retry.interval": (f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: hi
            retry:
              type: constant
              maxAttempt: 3
              interval: DURATION
        """, "'interval'", 10, 17),
    "workerGroup.maxWait": (f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: hi
            workerGroup:
              key: "{{{{ inputs.group }}}}"
              maxWait: DURATION
        """, "'maxWait'", 9, 16),
    "trigger interval": (f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: hi
        triggers:
          - id: poll
            type: {HTTP_TRIGGER}
            uri: http://127.0.0.1:8080/status
            interval: DURATION
        """, "'interval'", 11, 15),
}


@pytest.mark.parametrize("place", DURATION_PLACES)
@pytest.mark.parametrize("bad_duration", ["30s", "5 minutes", "PT", "30"])
def test_bad_duration_is_refused(place, bad_duration):
    template, prefix, line, column = DURATION_PLACES[place]
    bad = doc(template.replace("DURATION", bad_duration))
    expected = f"{prefix}: '{bad_duration}' is not an ISO-8601 duration"
    assert_single_fault(bad, expected, line, column)


@pytest.mark.parametrize("place", DURATION_PLACES)
@pytest.mark.parametrize("good_duration", ["PT30S", "PT1H30M", "P1DT2H", "PT0.5S"])
def test_iso_duration_is_accepted(place, good_duration):
    template = DURATION_PLACES[place][0]
    parse_flow(doc(template.replace("DURATION", good_duration)))


# --- cron, timezone ------------------------------------------------------------------------


def schedule(cron: str, extra: str = "") -> str:
    return doc(f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: hi
        triggers:
          - id: nightly
            type: {SCHEDULE}
            cron: "{cron}"
        """) + extra


@pytest.mark.parametrize("cron", ["0 2 * *", "0 0 2 * * *", "* * * * * * *"])
def test_cron_needs_five_fields(cron):
    found = len(cron.split())
    assert_single_fault(schedule(cron), f"invalid cron expression '{cron}': expected 5 fields, found {found}", 10, 11)


def test_cron_with_out_of_range_field_is_refused():
    assert_single_fault(schedule("99 2 * * *"), "invalid cron expression '99 2 * * *': a field is out of range", 10, 11)


@pytest.mark.parametrize("cron", ["0 2 * * *", "*/15 9-17 * * MON-FRI", "@daily"])
def test_five_field_cron_is_accepted(cron):
    parse_flow(schedule(cron))


def test_with_seconds_needs_six_fields_seconds_first():
    bad = schedule("0 2 * * *", "    withSeconds: true\n")
    assert_single_fault(bad, "invalid cron expression '0 2 * * *': expected 6 fields, seconds first (withSeconds: true)", 10, 11)
    parse_flow(schedule("*/10 0 2 * * *", "    withSeconds: true\n"))


def test_bad_timezone_is_refused():
    bad = schedule("0 2 * * *", "    timezone: Mars/Olympus_Mons\n")
    assert_single_fault(bad, "unknown timezone 'Mars/Olympus_Mons'", 11, 15)
    parse_flow(schedule("0 2 * * *", "    timezone: Europe/Paris\n"))


# --- expressions, YAML syntax --------------------------------------------------------------


@pytest.mark.parametrize("template", ["{{ outputs.first.value ", "{{ 1 + }}", "{% if %}", "{{ inputs.x | }}"])
def test_template_syntax_error_is_refused_where_it_stands(template):
    bad = doc(f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: 'TEMPLATE'
        """).replace("TEMPLATE", template)
    assert_single_fault(bad, "template syntax error in '" + template + "'", 6, 14)


def test_template_syntax_is_checked_in_triggers_and_nested_values():
    bad = schedule("0 2 * * *", "    inputs:\n      when: '{{ trigger.date '\n")
    assert_single_fault(bad, "template syntax error", 12, 13)


def test_valid_templates_are_accepted():
    parse_flow(doc(f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: "{{{{ inputs.name | upper }}}} {{% if true %}}yes{{% endif %}}"
        """))


@pytest.mark.parametrize("broken, message, line, column", [
    ("    message: \"hi\n", "invalid YAML: found unexpected end of stream", 7, 1),
    ("    message: hi: there\n", "invalid YAML: mapping values are not allowed in this context", 6, 16),
    ("    message: hi\n   level: WARN\n", "invalid YAML: did not find expected '-' indicator", 7, 4),
    ("\tmessage: hi\n", "invalid YAML: found a tab character that violates indentation", 6, 1),
])
def test_invalid_yaml_is_located(broken, message, line, column):
    bad = doc(f"""\
        tasks:
          - id: hello
            type: {LOG}
        """) + broken
    assert_single_fault(bad, message, line, column)


def test_a_document_that_is_not_a_mapping_is_refused():
    assert_single_fault("- id: hello\n", "a flow must be a YAML mapping", 1, 1)


# --- task runner, ids, inputs ----------------------------------------------------------------


def script_task(runner: str) -> str:
    return doc(f"""\
        tasks:
          - id: train
            type: io.kestra.plugin.scripts.python.Script
            containerImage: python:3.12
            script: print("hi")
            taskRunner:
              type: {runner}
        """)


def test_only_the_process_task_runner_is_accepted():
    bad = script_task("io.kestra.plugin.scripts.runner.docker.Docker")
    assert_single_fault(
        bad,
        "task runner 'io.kestra.plugin.scripts.runner.docker.Docker' is not available: "
        "the only task runner is io.kestra.plugin.core.runner.Process",
        9, 13,
    )
    parsed = parse_flow(script_task("io.kestra.plugin.core.runner.Process"))
    assert parsed.tasks_by_id["train"].containerImage == "python:3.12"  # accepted, ignored by Process


@pytest.mark.parametrize("body, bad_id, line, column", [
    ("tasks:\n  - id: 'say hello'\n    type: TASK_TYPE\n    message: hi\n", "'say hello'", 4, 9),
    ("tasks:\n  - id: _hidden\n    type: TASK_TYPE\n    message: hi\n", "_hidden", 4, 9),
    ("tasks:\n  - id: hello\n    type: TASK_TYPE\n    message: hi\ntriggers:\n  - id: every night\n    type: TRIGGER_TYPE\n    cron: '0 2 * * *'\n",
     "every night", 8, 9),
])
def test_bad_ids_are_refused(body, bad_id, line, column):
    bad = HEAD + body.replace("TASK_TYPE", LOG).replace("TRIGGER_TYPE", SCHEDULE)
    assert_single_fault(bad, r"'id': String should match pattern '\A[a-zA-Z0-9][a-zA-Z0-9_-]*\Z'", line, column)
    parse_flow(bad.replace(bad_id, "good_id-2"))


def test_bad_flow_id_and_namespace_are_refused():
    bad = f"id: my flow\nnamespace: Company/Team\ntasks:\n  - id: hello\n    type: {LOG}\n    message: hi\n"
    assert faults(bad) == [
        (r"'id': String should match pattern '\A[a-zA-Z0-9][a-zA-Z0-9_-]*\Z'", 1, 5),
        (r"'namespace': String should match pattern '\A[a-z0-9][a-z0-9._-]*\Z'", 2, 12),
    ]
    parse_flow(bad.replace("my flow", "my_flow").replace("Company/Team", "company.team"))


def test_select_input_needs_values():
    bad = doc(f"""\
        inputs:
          - id: size
            type: SELECT
            defaults: small
        tasks:
          - id: hello
            type: {LOG}
            message: "{{{{ inputs.size }}}}"
        """)
    assert_single_fault(bad, "a SELECT input needs a list of values", 4, 5)
    parse_flow(bad.replace("    type: SELECT\n", "    type: SELECT\n    values: [small, large]\n"))


def test_every_fault_is_reported_at_once():
    bad = doc(f"""\
        tasks:
          - id: hello
            type: {LOG}
            message: "{{{{ oops "
            timeout: soon
            colour: blue
          - id: hello
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT1S
        """)
    assert [(line, column) for _, line, column in faults(bad)] == [(6, 14), (7, 14), (8, 13), (9, 9)]


# --- pluginDefaults (Kestra's rules) ------------------------------------------------


def with_defaults(defaults: str, tasks: str, triggers: str = "") -> str:
    return doc("pluginDefaults:\n" + textwrap.indent(textwrap.dedent(defaults), "  ")
               + "tasks:\n" + textwrap.indent(textwrap.dedent(tasks), "  ")
               + ("triggers:\n" + textwrap.indent(textwrap.dedent(triggers), "  ") if triggers else ""))


SCRIPT_TASKS = """\
    - id: unset
      type: io.kestra.plugin.scripts.python.Script
      script: print(1)
    - id: own
      type: io.kestra.plugin.scripts.python.Script
      script: print(2)
      workerGroup: {key: mine}
    - id: other
      type: io.kestra.plugin.core.log.Log
      message: hi
    """


def group_of(parsed, task_id: str):
    group = parsed.tasks_by_id[task_id].workerGroup
    return group and group.key


def test_plugin_defaults_match_task_types_by_prefix():
    parsed = parse_flow(with_defaults("""\
        - type: io.kestra.plugin.scripts
          values: {workerGroup: {key: gpu}}
        """, SCRIPT_TASKS))
    assert group_of(parsed, "unset") == "gpu"
    assert group_of(parsed, "other") is None  # io.kestra.plugin.core.log.Log does not start with the prefix


def test_unforced_plugin_defaults_fill_only_what_the_task_leaves_unset():
    parsed = parse_flow(with_defaults("""\
        - type: io.kestra.plugin.scripts.python.Script
          forced: false
          values: {workerGroup: {key: gpu}}
        """, SCRIPT_TASKS))
    assert (group_of(parsed, "unset"), group_of(parsed, "own")) == ("gpu", "mine")


def test_forced_plugin_defaults_override_the_task():
    parsed = parse_flow(with_defaults("""\
        - type: io.kestra.plugin.scripts.python.Script
          forced: true
          values: {workerGroup: {key: gpu}}
        """, SCRIPT_TASKS))
    assert (group_of(parsed, "unset"), group_of(parsed, "own")) == ("gpu", "gpu")


def test_first_declared_plugin_default_wins():
    parsed = parse_flow(with_defaults("""\
        - type: io.kestra.plugin.scripts.python
          values: {workerGroup: {key: first}}
        - type: io.kestra.plugin.scripts
          values: {workerGroup: {key: second}}
        """, SCRIPT_TASKS))
    assert group_of(parsed, "unset") == "first"


def test_first_declared_forced_plugin_default_wins():
    parsed = parse_flow(with_defaults("""\
        - type: io.kestra.plugin.scripts
          forced: true
          values: {workerGroup: {key: first}}
        - type: io.kestra.plugin.scripts.python
          forced: true
          values: {workerGroup: {key: second}}
        """, SCRIPT_TASKS))
    assert (group_of(parsed, "unset"), group_of(parsed, "own")) == ("first", "first")


def test_plugin_default_maps_merge_deeply():
    parsed = parse_flow(with_defaults("""\
        - type: io.kestra.plugin.scripts
          values:
            workerGroup: {key: gpu, fallback: FAIL}
            env: {FROM_DEFAULTS: "1", SHARED: defaults}
        """, """\
        - id: train
          type: io.kestra.plugin.scripts.python.Script
          script: print(1)
          workerGroup: {maxWait: PT5M}
          env: {FROM_TASK: "1", SHARED: task}
        """))
    task = parsed.tasks_by_id["train"]
    assert (task.workerGroup.key, task.workerGroup.fallback, task.workerGroup.maxWait) == ("gpu", "FAIL", "PT5M")
    assert task.env == {"FROM_DEFAULTS": "1", "FROM_TASK": "1", "SHARED": "task"}


def test_plugin_defaults_apply_to_triggers():
    parsed = parse_flow(with_defaults("""\
        - type: io.kestra.plugin.core.http
          values: {workerGroup: {key: onprem}, interval: PT5M}
        - type: io.kestra.plugin.core.trigger.Schedule
          values: {timezone: Europe/Paris}
        """, """\
        - id: hello
          type: io.kestra.plugin.core.log.Log
          message: hi
        """, f"""\
        - id: poll
          type: {HTTP_TRIGGER}
          uri: http://127.0.0.1:8080/status
        - id: nightly
          type: {SCHEDULE}
          cron: "0 2 * * *"
        """))
    poll, nightly = parsed.document.triggers
    assert (poll.workerGroup.key, poll.interval) == ("onprem", "PT5M")
    assert nightly.timezone == "Europe/Paris"


def test_plugin_defaults_reach_nested_tasks():
    parsed = parse_flow(with_defaults("""\
        - type: io.kestra.plugin.scripts
          values: {workerGroup: {key: gpu}}
        """, """\
        - id: loop
          type: io.kestra.plugin.core.flow.ForEach
          values: [1, 2]
          tasks:
            - id: train
              type: io.kestra.plugin.scripts.shell.Commands
              commands: [echo hi]
        """))
    assert group_of(parsed, "train") == "gpu"
    assert group_of(parsed, "loop") is None


def test_plugin_default_values_are_validated_like_the_task_own():
    bad = with_defaults("""\
        - type: io.kestra.plugin.core.flow.Sleep
          values: {timeout: soon}
        """, """\
        - id: nap
          type: io.kestra.plugin.core.flow.Sleep
          duration: PT1S
        """)
    (message, _, _), = faults(bad)
    assert message == "'timeout': 'soon' is not an ISO-8601 duration (for example PT30S, PT5M, PT1H, P1D)"


DAG_BODY = """\
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {id: one, type: io.kestra.plugin.core.log.Log, message: x}
        dependsOn: [three]
      - task: {id: two, type: io.kestra.plugin.core.log.Log, message: x}
        dependsOn: [one, missing]
      - task: {id: three, type: io.kestra.plugin.core.log.Log, message: x}
        dependsOn: [two]
"""


def test_dag_dependencies_on_unknown_ids_and_cycles_are_refused_where_they_stand():
    found = faults(doc(DAG_BODY))
    assert len(found) == 2, found
    (cycle, cycle_line, cycle_column), (unknown, unknown_line, unknown_column) = found
    assert "cycle" in cycle and "one → three → two → one" in cycle and (cycle_line, cycle_column) == (10, 21)
    assert "'two' depends on 'missing', which is not a task of this Dag" in unknown
    assert (unknown_line, unknown_column) == (10, 26)


def test_a_dag_without_cycles_is_accepted_and_its_tasks_are_known_by_id():
    parsed = parse_flow(doc(DAG_BODY.replace("dependsOn: [three]", "dependsOn: []").replace(", missing", "")))
    assert {"one", "two", "three"} <= set(parsed.tasks_by_id)


def test_duplicate_ids_inside_a_dag_are_refused():
    source = doc(DAG_BODY.replace("id: three", "id: one"))
    assert any("duplicate task id 'one'" in message for message, _, _ in faults(source))
