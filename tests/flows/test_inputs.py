"""Every Kestra input type (docs/inputs.md): coercion, checks, defaults, dependsOn, nesting, and
every fault of one request at once."""
import pytest
from pydantic import TypeAdapter

from flows import masking
from flows.definition import parse_flow
from flows.errors import UserError
from flows.inputs import inputs_for_context, inputs_resolve
from flows.schema import Input

INPUT = TypeAdapter(Input)


def _declared(**types):
    return [INPUT.validate_python({"id": name, **spec}) for name, spec in types.items()]


def _resolve(given, **types):
    return inputs_resolve(_declared(**types), given)


def _fault(given, **types) -> str:
    with pytest.raises(UserError) as error:
        _resolve(given, **types)
    return error.value.message


def test_values_are_coerced_to_their_declared_types():
    resolved = _resolve(
        {"n": "42", "x": "1.5", "flag": "false", "toggle": "1", "doc": '{"a": [1]}', "conf": "a: [1, 2]",
         "when": "2026-01-02T03:04:05+01:00", "day": "2042-12-03", "at": "10:15", "wait": "pt5m",
         "env": "prod", "name": 7, "site": "https://example.com/a.csv", "mail": "a.b@example.com",
         "level": "HIGH"},
        n={"type": "INT"}, x={"type": "FLOAT"}, flag={"type": "BOOLEAN"}, toggle={"type": "BOOL"},
        doc={"type": "JSON"}, conf={"type": "YAML"}, when={"type": "DATETIME"}, day={"type": "DATE"},
        at={"type": "TIME"}, wait={"type": "DURATION"}, env={"type": "SELECT", "values": ["dev", "prod"]},
        name={"type": "STRING"}, site={"type": "URI"}, mail={"type": "EMAIL"},
        level={"type": "ENUM", "values": ["LOW", "HIGH"]},
    )
    assert resolved == {
        "n": 42, "x": 1.5, "flag": False, "toggle": True, "doc": {"a": [1]}, "conf": {"a": [1, 2]},
        "when": "2026-01-02T02:04:05Z", "day": "2042-12-03", "at": "10:15:00", "wait": "PT5M", "env": "prod",
        "name": "7", "site": "https://example.com/a.csv", "mail": "a.b@example.com", "level": "HIGH",
    }


def test_lists_take_json_arrays_repeated_fields_and_single_values():
    resolved = _resolve(
        {"ints": "[1, 2, 3]", "days": ["2024-01-01", "2024-01-02"], "one": "7",
         "picked": '["a", "c"]'},
        ints={"type": "ARRAY", "itemType": "INT"}, days={"type": "ARRAY", "itemType": "DATE"},
        one={"type": "ARRAY", "itemType": "INT"}, picked={"type": "MULTISELECT", "values": ["a", "b", "c"]},
    )
    assert resolved == {"ints": [1, 2, 3], "days": ["2024-01-01", "2024-01-02"], "one": [7], "picked": ["a", "c"]}


def test_defaults_fill_missing_inputs_and_optional_ones_are_none():
    declared = _declared(group={"type": "STRING", "defaults": "gpu"}, note={"type": "STRING", "required": False},
                         ints={"type": "ARRAY", "itemType": "INT", "defaults": [1, 2]},
                         opt={"type": "STRING", "required": False, "prefill": "suggested"})
    assert inputs_resolve(declared, {}) == {"group": "gpu", "note": None, "ints": [1, 2], "opt": None}


@pytest.mark.parametrize("given, types, fragment", [
    ({"n": "abc"}, {"n": {"type": "INT"}}, "input 'n' must be INT: 'abc' is not an integer"),
    ({"n": True}, {"n": {"type": "INT"}}, "input 'n' must be INT"),
    ({}, {"n": {"type": "INT"}}, "missing required input 'n' (INT)"),
    ({"n": 1, "extra": 2}, {"n": {"type": "INT"}}, "unknown input 'extra'"),
    ({"n": "17"}, {"n": {"type": "INT", "min": 18, "max": 64}}, "17 must be at least 18"),
    ({"n": "65"}, {"n": {"type": "INT", "min": 18, "max": 64}}, "65 must be at most 64"),
    ({"x": "5.4"}, {"x": {"type": "FLOAT", "max": 5.3}}, "5.4 must be at most 5.3"),
    ({"u": "studentabc"}, {"u": {"type": "STRING", "validator": r"^student(\d+)?$"}}, "does not match the pattern"),
    ({"d": "PT1M"}, {"d": {"type": "DURATION", "min": "PT5M6S"}}, "PT1M must be at least PT5M6S"),
    ({"d": "5 minutes"}, {"d": {"type": "DURATION"}}, "is not an ISO-8601 duration"),
    ({"day": "2024-04-16"}, {"day": {"type": "DATE", "after": "2024-04-10", "before": "2024-04-15"}},
     "2024-04-16 must be on or before 2024-04-15"),
    ({"day": "2024-13-01"}, {"day": {"type": "DATE"}}, "is not an ISO-8601 date"),
    ({"t": "11:00:00"}, {"t": {"type": "TIME", "after": "11:01:01"}}, "must be on or after 11:01:01"),
    ({"w": "2024-04-16T00:00:00Z"}, {"w": {"type": "DATETIME", "before": "2024-04-15T14:19:00Z"}},
     "must be on or before"),
    ({"w": "2024-04-16T00:00:00"}, {"w": {"type": "DATETIME"}}, "has no time zone"),
    ({"site": "not a uri"}, {"site": {"type": "URI"}}, "is not a URI"),
    ({"mail": "nobody"}, {"mail": {"type": "EMAIL"}}, "is not an e-mail address"),
    ({"s": "c"}, {"s": {"type": "SELECT", "values": ["a", "b"]}}, "'c' is not one of a, b"),
    ({"s": "c"}, {"s": {"type": "ENUM", "values": ["a", "b"]}}, "'c' is not one of a, b"),
    ({"m": '["a", "z"]'}, {"m": {"type": "MULTISELECT", "values": ["a", "b"]}}, "item 1: 'z' is not one of a, b"),
    ({"a": '[1, "x"]'}, {"a": {"type": "ARRAY", "itemType": "INT"}}, "item 1: 'x' is not an integer"),
    ({"doc": "{bad"}, {"doc": {"type": "JSON"}}, "is not valid JSON"),
    ({"conf": "a: [1"}, {"conf": {"type": "YAML"}}, "not valid YAML"),
    ({"f": "hello"}, {"f": {"type": "FILE"}}, "upload one as a multipart part named 'f'"),
])
def test_bad_inputs_are_refused_with_the_input_named(given, types, fragment):
    assert fragment in _fault(given, **types)


def test_custom_values_are_accepted_when_allowed():
    assert _resolve({"s": "c", "m": ["z"]}, s={"type": "SELECT", "values": ["a"], "allowCustomValue": True},
                    m={"type": "MULTISELECT", "options": ["a"], "allowInput": True}) == {"s": "c", "m": ["z"]}


def test_every_fault_is_reported_at_once():
    declared = _declared(a={"type": "BOOLEAN"}, b={"type": "SELECT", "values": ["x"]}, c={"type": "JSON"})
    with pytest.raises(UserError) as error:
        inputs_resolve(declared, {"a": "maybe", "b": "y", "c": "{bad"})
    assert [fault.path for fault in error.value.faults] == ["inputs.a", "inputs.b", "inputs.c"]


def test_dotted_ids_nest_and_may_be_given_flat_or_nested():
    types = {"nested.string": {"type": "STRING"}, "nested.int": {"type": "INT"}}
    assert _resolve({"nested.string": "s", "nested.int": "1"}, **types) == {"nested": {"string": "s", "int": 1}}
    assert _resolve({"nested": {"string": "s", "int": 2}}, **types) == {"nested": {"string": "s", "int": 2}}


def test_depends_on_asks_for_an_input_only_when_its_condition_holds():
    types = {
        "cloud": {"type": "SELECT", "values": ["aws", "gcp"]},
        "region": {"type": "STRING", "dependsOn": {"inputs": ["cloud"], "condition": "{{ inputs.cloud == 'aws' }}"}},
    }
    assert _resolve({"cloud": "aws", "region": "eu-west-1"}, **types) == {"cloud": "aws", "region": "eu-west-1"}
    assert _resolve({"cloud": "gcp"}, **types) == {"cloud": "gcp"}  # disabled: not asked for, not required
    assert "missing required input 'region'" in _fault({"cloud": "aws"}, **types)


def test_defaults_and_choices_may_be_expressions_over_earlier_inputs():
    types = {
        "env": {"type": "STRING", "defaults": "dev"},
        "bucket": {"type": "STRING", "defaults": "data-{{ inputs.env }}"},
        "size": {"type": "SELECT", "expression": "{{ ['small', 'large'] | tojson }}"},
    }
    assert _resolve({"size": "large"}, **types) == {"env": "dev", "bucket": "data-dev", "size": "large"}
    assert "'huge' is not one of small, large" in _fault({"size": "huge"}, **types)


def test_a_secret_is_stored_encrypted_and_revealed_only_to_expressions():
    declared = _declared(token={"type": "SECRET", "validator": "^tok-.*"}, user={"type": "STRING"})
    stored = inputs_resolve(declared, {"token": "tok-s3cr3t", "user": "ann"})
    assert masking.is_encrypted(stored["token"]) and "s3cr3t" not in stored["token"]
    assert masking.hide(stored) == {"token": masking.MASK, "user": "ann"}
    assert inputs_for_context(stored, declared) == {"token": "tok-s3cr3t", "user": "ann"}
    message = _fault({"token": "nope-s3cr3t", "user": "ann"}, token={"type": "SECRET", "validator": "^tok-.*"},
                     user={"type": "STRING"})
    assert "s3cr3t" not in message and masking.MASK in message


FLOW = """\
id: typed
namespace: company.team
inputs:
{inputs}
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


@pytest.mark.parametrize("inputs, fragment", [
    ("  - id: n\n    type: INT\n    defaults: abc", "line 4, column 5 (inputs[0]): 'defaults': 'abc' is not an integer"),
    ("  - id: n\n    type: INT\n    min: 5\n    defaults: 1", "'defaults': 1 must be at least 5"),
    ("  - id: s\n    type: SELECT", "a SELECT input needs a list of values"),
    ("  - id: s\n    type: STRING\n    defaults: a\n    prefill: b", "prefill and defaults cannot be used"),
    ("  - id: x\n    type: NUMBER", "unknown input type 'NUMBER' (use one of STRING, INT,"),
    ("  - id: a\n    type: ARRAY", "missing required property 'itemType'"),
    ("  - id: a\n    type: ARRAY\n    itemType: ARRAY", "'itemType': Input should be"),
    ("  - id: s\n    type: STRING\n    validator: '(['", "invalid regular expression '(['"),
    ("  - id: a\n    type: STRING\n  - id: a\n    type: INT", "duplicate input id 'a'"),
    ("  - id: a\n    type: STRING\n  - id: a.b\n    type: INT", "input 'a.b' is nested under input 'a'"),
    ("  - id: d\n    type: DATE\n    defaults: '2024-02-30'", "is not an ISO-8601 date"),
])
def test_bad_declarations_are_refused_at_upload_with_their_line(inputs, fragment):
    with pytest.raises(UserError) as error:
        parse_flow(FLOW.format(inputs=inputs))
    assert fragment in error.value.message


def test_every_type_and_its_older_spellings_upload():
    inputs = "\n".join(f"  - id: i{index}\n    type: {kind}{extra}" for index, (kind, extra) in enumerate([
        ("STRING", ""), ("INT", ""), ("FLOAT", ""), ("BOOLEAN", ""), ("BOOL", ""), ("DATETIME", ""), ("DATE", ""),
        ("TIME", ""), ("DURATION", ""), ("JSON", ""), ("YAML", ""), ("URI", ""), ("EMAIL", ""),
        ("SELECT", "\n    values: [a]"), ("MULTISELECT", "\n    options: [a]"), ("ENUM", "\n    values: [a]"),
        ("ARRAY", "\n    itemType: FLOAT"), ("SECRET", ""), ("FILE", "\n    required: false"),
    ]))
    inputs += "\n  - name: older\n    type: STRING"
    document = parse_flow(FLOW.format(inputs=inputs)).document
    assert [spec.type for spec in document.inputs][-2:] == ["FILE", "STRING"]
    assert document.inputs[-1].id == "older"


@pytest.mark.parametrize("bad_id", ["my input", "_hidden", "a..b", "a.", ".a"])
def test_input_ids_follow_kestras_pattern(bad_id):
    with pytest.raises(UserError) as error:
        parse_flow(FLOW.format(inputs=f"  - id: '{bad_id}'\n    type: STRING"))
    assert "'id': String should match pattern" in error.value.message


@pytest.mark.parametrize("types", [{"type": "JSON"}, {"type": "ARRAY", "itemType": "JSON"}, {"type": "YAML"}])
def test_inputs_nested_too_deeply_are_refused_naming_the_input(types):
    """The probe: deeply nested JSON inputs answered 500."""
    deep = "[" * 100_000 + "]" * 100_000
    message = _fault({"doc": deep}, doc=types)
    assert "doc" in message and ("nested too deeply" in message or "nested more than" in message), message
