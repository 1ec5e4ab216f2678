"""YAML loading refuses, with a line and column, what it cannot or should not build: documents too
large, deep or expanding, and values its converters cannot make. Nothing here may raise anything
but UserError, and none of it may take long."""
import resource
import time

import pytest

from flows.definition import parse_flow
from flows.errors import UserError
from flows.yaml_source import MAX_ALIASES, MAX_DEPTH, MAX_SOURCE_CHARS, MAX_VALUES, load_located

FLOW = "id: demo\nnamespace: company.team\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: hi\n"


def refused(source: str) -> list[tuple[str, int | None, int | None]]:
    with pytest.raises(UserError) as caught:
        parse_flow(source)
    return [(fault.message, fault.line, fault.column) for fault in caught.value.faults]


def alias_bomb(levels: int = 7, width: int = 10) -> str:
    """The classic billion laughs: 350 bytes that expand to 10**7 strings."""
    lines = ["variables:", '  a: &a ["lol"' + ', "lol"' * (width - 1) + "]"]
    names = "abcdefghijklmnop"
    for level in range(1, levels):
        lines.append(f"  {names[level]}: &{names[level]} [" + ", ".join([f"*{names[level - 1]}"] * width) + "]")
    return FLOW + "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_is_expanded():
    source = alias_bomb()
    assert len(source) < 600
    memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    [(message, line, column)] = refused(source)
    assert time.monotonic() - started < 2  # today: 12 s and 630 MB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_before < 50_000  # KiB
    assert f"more than {MAX_VALUES} values once its aliases are expanded" in message
    assert line is not None and line > 6 and column is not None


def test_small_anchors_aliases_and_merge_keys_still_work():
    source = FLOW + "variables:\n  base: &base {retries: 2, group: gpu}\n  copy: *base\n  merged:\n    <<: *base\n    group: cpu\n"
    variables = parse_flow(source).document.variables
    assert variables["copy"] == {"retries": 2, "group": "gpu"}
    assert variables["merged"] == {"retries": 2, "group": "cpu"}  # a written key overrides a merged one
    assert "duplicate key 'group'" in refused(source + "    group: gpu\n")[0][0]


def test_lists_nested_300_deep_are_refused_with_their_line():
    source = FLOW + "variables:\n  deep: " + "[" * 300 + "]" * 300 + "\n"
    [(message, line, column)] = refused(source)
    assert f"nested more than {MAX_DEPTH} levels deep" in message
    assert line == 8


def test_nesting_through_aliases_counts_too():
    inner = "[" * 40 + "]" * 40
    source = FLOW + f"variables:\n  a: &a {inner}\n  b: &b [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n"
    [(message, _, _)] = refused(source)
    assert "levels deep once its aliases are expanded" in message


def test_an_alias_inside_its_own_anchor_is_refused():
    [(message, line, column)] = refused(FLOW + "variables: &loop\n  again: *loop\n")
    assert "an alias that refers to a value containing it" in message
    assert line == 7


def test_too_many_aliases_are_refused():
    source = FLOW + "variables:\n  a: &a 1\n  b: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    [(message, line, _)] = refused(source)
    assert f"more than {MAX_ALIASES} aliases" in message and line == 9


def test_too_many_values_are_refused_while_reading():
    source = FLOW + "variables:\n  many: [" + ", ".join(["1"] * (MAX_VALUES + 10)) + "]\n"
    [(message, line, _)] = refused(source)
    assert f"more than {MAX_VALUES} values" in message and line == 8


def test_a_source_over_the_size_limit_is_refused_before_reading():
    source = FLOW + "description: " + "x" * MAX_SOURCE_CHARS + "\n"
    [(message, _, _)] = refused(source)
    assert f"the limit is {MAX_SOURCE_CHARS}" in message


@pytest.mark.parametrize("value, message", [
    ("2001-13-14", "invalid date '2001-13-14': month must be in 1..12"),
    ("9" * 5000, "invalid integer '999"),
    ("!!python/name:os.system", "unsupported YAML tag 'tag:yaml.org,2002:python/name:os.system'"),
    ("!!python/object/apply:os.system [id]", "unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    ("!!binary aGVsbG8=", "unsupported YAML tag 'tag:yaml.org,2002:binary'"),
    ("!!set {a, b}", "unsupported YAML tag 'tag:yaml.org,2002:set'"),
    ("!custom x", "unsupported YAML tag '!custom'"),
    (".nan", "'.nan' is not a finite number"),
])
def test_values_the_converters_cannot_make_are_located(value, message):
    source = FLOW + f"variables:\n  v: {value}\n"
    [(found, line, column)] = refused(source)
    assert message in found, found
    assert (line, column) == (8, 6)


def test_a_5000_digit_integer_names_the_digit_limit():
    [(message, _, _)] = refused(FLOW + "variables:\n  v: " + "9" * 5000 + "\n")
    assert "4300 digits" in message


def test_valid_dates_stay_the_text_the_user_wrote():
    assert parse_flow(FLOW + "variables:\n  d: 2001-12-14\n").document.variables == {"d": "2001-12-14"}


def test_control_characters_are_located():
    with pytest.raises(UserError) as caught:
        load_located("a: 1\nb: \"é\x01\"\n")
    [fault] = caught.value.faults
    assert "U+0001 is not allowed" in fault.message and (fault.line, fault.column) == (2, 6)


def test_keys_must_be_plain_scalars():
    with pytest.raises(UserError) as caught:
        load_located("? [a, b]\n: 1\n")
    assert [f.message for f in caught.value.faults] == ["mapping keys must be plain scalars"]


def test_an_expression_with_100_nested_parentheses_is_refused_at_upload():
    source = FLOW.replace("format: hi", 'format: "{{ ' + "(" * 100 + "1" + ")" * 100 + ' }}"')
    [(message, line, column)] = refused(source)
    assert "brackets nested more than" in message and (line, column) == (6, 13)


@pytest.mark.parametrize("template", [
    "{% for x in y %}" * 30 + "x" + "{% endfor %}" * 30,  # deeper than Python's own block nesting
    "{{ " + "not " * 2000 + "true }}",
    "{{ " + "- " * 2000 + "1 }}",
])
def test_templates_too_deep_to_compile_are_located_errors(template):
    source = FLOW.replace("format: hi", "format: '" + template + "'")
    [(message, line, _)] = refused(source)
    assert "template syntax error" in message and line == 6
