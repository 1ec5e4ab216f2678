import pytest

from flows.errors import UserError
from flows.inputs import inputs_resolve
from flows.schema import Input


def _declared(**types):
    return [Input(id=name, **spec) for name, spec in types.items()]


def test_values_are_coerced_to_their_declared_types():
    declared = _declared(
        n={"type": "INT"}, x={"type": "FLOAT"}, flag={"type": "BOOLEAN"}, doc={"type": "JSON"},
        when={"type": "DATETIME"}, env={"type": "SELECT", "values": ["dev", "prod"]}, name={"type": "STRING"},
    )
    resolved = inputs_resolve(declared, {
        "n": "42", "x": "1.5", "flag": "false", "doc": '{"a": [1]}', "when": "2026-01-02T03:04:05Z",
        "env": "prod", "name": 7,
    })
    assert resolved == {"n": 42, "x": 1.5, "flag": False, "doc": {"a": [1]}, "when": "2026-01-02T03:04:05+00:00",
                        "env": "prod", "name": "7"}


def test_defaults_fill_missing_inputs_and_optional_ones_are_none():
    declared = _declared(group={"type": "STRING", "defaults": "gpu"}, note={"type": "STRING", "required": False})
    assert inputs_resolve(declared, {}) == {"group": "gpu", "note": None}


@pytest.mark.parametrize("given, fragment", [
    ({"n": "abc"}, "input 'n' must be INT: 'abc' is not an integer"),
    ({"n": True}, "input 'n' must be INT"),
    ({}, "missing required input 'n' (INT)"),
    ({"n": 1, "extra": 2}, "unknown input 'extra'"),
])
def test_bad_inputs_are_refused_with_the_input_named(given, fragment):
    with pytest.raises(UserError) as error:
        inputs_resolve(_declared(n={"type": "INT"}), given)
    assert fragment in error.value.message


def test_every_fault_is_reported_at_once():
    declared = _declared(a={"type": "BOOLEAN"}, b={"type": "SELECT", "values": ["x"]}, c={"type": "JSON"})
    with pytest.raises(UserError) as error:
        inputs_resolve(declared, {"a": "maybe", "b": "y", "c": "{bad"})
    assert [fault.path for fault in error.value.faults] == ["inputs.a", "inputs.b", "inputs.c"]
