"""Fuzzing flow documents: the YAML loader (flows/yaml_source.py), the schema (flows/definition.py
`parse_flow`) and the upload (flows/services.py `flow_upload`). Whatever the text, the only
exception is the product's UserError, each fault located when it has a line; a refused upload
stores nothing, and an accepted one can be read back."""
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from flows.definition import parse_flow
from flows.errors import UserError
from flows.models import Flow, FlowRevision
from flows.services import flow_upload
from flows.yaml_source import load_located

from .conftest import FUZZ

TASK_TYPES = [
    "io.kestra.plugin.core.debug.Return", "io.kestra.plugin.core.log.Log", "io.kestra.plugin.core.flow.Sleep",
    "io.kestra.plugin.core.flow.Parallel", "io.kestra.plugin.core.flow.Sequential", "io.kestra.plugin.core.flow.If",
    "io.kestra.plugin.core.flow.Switch", "io.kestra.plugin.core.flow.ForEach", "io.kestra.plugin.core.execution.Fail",
    "io.kestra.plugin.scripts.shell.Commands", "io.kestra.plugin.scripts.python.Script",
    "io.kestra.plugin.core.http.Request", "io.kestra.plugin.core.output.OutputValues", "io.kestra.plugin.unknown.Thing",
]
TRIGGER_TYPES = ["io.kestra.plugin.core.trigger.Schedule", "io.kestra.plugin.core.http.Trigger",
                 "io.kestra.plugin.core.trigger.Flow", "io.kestra.plugin.core.trigger.Webhook"]
WORDS = ["id", "type", "tasks", "then", "else", "cases", "values", "message", "format", "duration", "condition",
         "workerGroup", "key", "fallback", "maxWait", "retry", "timeout", "cron", "interval", "inputs", "defaults",
         "variables", "errors", "pluginDefaults", "forced", "allowFailure", "runIf", "disabled", "labels", "script",
         "commands", "uri", "outputFiles", "inputFiles", "concurrencyLimit", "namespace", "triggers", "value"]

# Scalars a careless or hostile author writes: templates, durations, crons, dates, huge numbers, tags.
tricky_scalars = st.sampled_from([
    "{{ inputs.x }}", "{{ outputs.a[taskrun.value].value }}", "{{", "}}", "{% if %}", "{{ 9**999 }}",
    "{{ ('%04000000000d' % 1)|length }}", "PT1S", "PT-1S", "P1000000000D", "PTS", "* * * * *", "0 2 * * *",
    "61 * * * *", "@hourly", "2001-13-14", "2001-02-03", "2001-02-03T04:05:06Z", "9" * 5000, "-0", "0x1F",
    "1e400", ".nan", ".inf", "~", "null", "yes", "NO", "WAIT", "FAIL", "CANCEL", "gpu", "default", "main\n",
    "../../etc/passwd", "/etc/hostname", "**/*", "", " ", "\t", "é", "\u2028", "a: b", "- x", "&a", "*a",
])
scalars = st.one_of(
    tricky_scalars, st.text(max_size=20), st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(),
    st.sampled_from(TASK_TYPES + TRIGGER_TYPES),
)
keys = st.one_of(st.sampled_from(WORDS), st.text(min_size=1, max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=25)


@st.composite
def tasks(draw, depth: int = 0):
    task = {"id": draw(st.one_of(st.sampled_from(["a", "b", "c", "a"]), st.text(max_size=6))),
            "type": draw(st.sampled_from(TASK_TYPES))}
    for key in draw(st.lists(st.sampled_from(WORDS), max_size=4, unique=True)):
        task[key] = draw(values)
    if depth < 2 and draw(st.booleans()):
        task[draw(st.sampled_from(["tasks", "then", "else", "errors"]))] = draw(st.lists(tasks(depth + 1), max_size=3))
    if draw(st.booleans()):
        task["workerGroup"] = {"key": draw(st.one_of(tricky_scalars, st.just("gpu"))),
                               "fallback": draw(st.sampled_from(["WAIT", "FAIL", "CANCEL", "NOPE"]))}
    return task


@st.composite
def flows(draw):
    flow = {"id": draw(st.sampled_from(["fuzzed", "x", "", "bad id"])),
            "namespace": draw(st.sampled_from(["company.team", "fuzz", "Bad.NS", ""])),
            "tasks": draw(st.lists(tasks(), max_size=4))}
    for key in draw(st.lists(st.sampled_from(["inputs", "variables", "triggers", "errors", "pluginDefaults",
                                              "labels", "workerGroup", "revision", "description"]),
                             max_size=3, unique=True)):
        flow[key] = draw(values)
    if draw(st.booleans()):
        flow["triggers"] = [{"id": "t", "type": draw(st.sampled_from(TRIGGER_TYPES)), "cron": draw(tricky_scalars),
                             "interval": draw(tricky_scalars)}]
    return flow


def _dumped(value) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


# Text mutations of a dumped document: what YAML allows that a dump never writes.
FRAGMENTS = ["&a ", "*a", "<<: *a\n", "!!python/name:os.system ", "!!python/object/apply:os.system ['id']",
             "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [a: 1]", "!!timestamp 2001-13-14", "!custom x", "? [a, b]\n",
             "{", "[", "]", "}", ": ", "\n- ", "\n  ", "'", '"', "#", "%YAML 1.1\n---\n", "---\n", "...\n",
             "\t", "\x00", "\ufeff", "[" * 70, "]" * 70, "- " * 40, "9" * 5000]


@st.composite
def yaml_texts(draw):
    text = _dumped(draw(st.one_of(flows(), values)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(FRAGMENTS)) + text[at:]
    return text


any_text = st.one_of(yaml_texts(), st.text(max_size=300))


def _located(error: UserError) -> None:
    assert error.faults and all(fault.message for fault in error.faults)
    assert all(fault.line is None or fault.line >= 1 for fault in error.faults)


# Found by this fuzzing, each once an exception other than UserError (and a 500 from the API):
FOUND = ["a: !!timestamp x", "a: !!bool x", "# nothing but a comment", "id: a\nnamespace: b\ntasks: []\ntriggers: 5"]


@FUZZ
@given(any_text)
@example(FOUND[0])
@example(FOUND[1])
@example(FOUND[2])
def test_the_loader_raises_only_located_user_errors(text):
    try:
        load_located(text)
    except UserError as error:
        _located(error)


@FUZZ
@given(st.one_of(st.builds(_dumped, flows()), any_text))
@example(FOUND[3])
@example(FOUND[3] + "\npluginDefaults: [{type: io, values: {x: 1}}]")
def test_parse_flow_raises_only_located_user_errors(text):
    try:
        parse_flow(text)
    except UserError as error:
        _located(error)


@pytest.mark.django_db
@FUZZ
@given(st.one_of(st.builds(_dumped, flows()), yaml_texts()))
def test_a_refused_upload_stores_nothing_and_an_accepted_one_reads_back(text):
    before = (Flow.objects.count(), FlowRevision.objects.count())
    try:
        flow = flow_upload(source=text, tenant_key="main")
    except UserError as error:
        _located(error)
        assert (Flow.objects.count(), FlowRevision.objects.count()) == before
    else:
        parse_flow(Flow.objects.get(pk=flow.pk).source)
