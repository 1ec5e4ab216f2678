"""Fuzzing the expression renderer (flows/expressions.py): expressions built from Jinja's and Pebble's
grammar, and raw text, rendered against an execution-like context. The only exception is
ExpressionError; a render returns text."""
from hypothesis import example, given
from hypothesis import strategies as st

from flows.expressions import ExpressionError, check_syntax, is_truthy, render, render_deep

from .conftest import FUZZ

CONTEXT = {
    "inputs": {"group": "gpu", "count": 3, "items": [1, 2, 3], "nested": {"a": {"b": [1, {"c": "d"}]}}, "flag": False},
    "outputs": {"a": {"value": "x"}, "child": {"1": {"value": 10}, "2": {"value": 20}}},
    "vars": {"greeting": "hello", "n": 7},
    "flow": {"id": "f", "namespace": "company.team", "revision": 1, "tenantId": "main"},
    "execution": {"id": "e", "startDate": "2025-01-01T00:00:00+00:00", "state": "RUNNING"},
    "taskrun": {"id": "t", "value": "1", "attemptsCount": 1, "startDate": None},
    "task": {"id": "t", "type": "io.kestra.plugin.core.log.Log"},
    "parents": [], "parent": None, "labels": {"team": "x"}, "trigger": {},
}

names = st.sampled_from(["inputs", "outputs", "vars", "flow", "execution", "taskrun", "task", "labels", "trigger",
                         "parent", "parents", "undefined_name", "range", "lipsum", "cycler", "joiner", "namespace",
                         "dict", "fromJson", "toJson", "now", "self", "loop", "__class__", "render", "renderOnce",
                         "currentEachOutput", "secret", "envs", "globals", "yaml", "json"])
attributes = st.sampled_from(["group", "count", "items", "nested", "a", "b", "value", "id", "__class__", "__globals__",
                              "__init__", "mro", "upper", "format", "join", "center", "ljust", "zfill", "split",
                              "replace", "keys", "items", "append", "pop", "real", "__mro__", "__subclasses__"])
literals = st.one_of(
    st.integers(-10**6, 10**6).map(str), st.sampled_from(["9999999", "2", "0", "-1", "1e308", "0.5", "True", "none",
                                                          "null", "'a'", '"%s"', "'%04000000000d'", "'{:>99999}'",
                                                          "[]", "{}", "[1, 2, 3]", "{'a': 1}", "(1,)", "'x' * 3"]),
    st.text(alphabet="abc{}%'\"\\", max_size=6).map(repr),
)
binary = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">=", "and", "or", "in", "not in",
                          "is", "??", "???", "equals", "contains"])
filters = st.sampled_from(["length", "upper", "lower", "join", "join(',')", "default('d')", "int", "float", "string",
                           "list", "first", "last", "sort", "unique", "reverse", "sum", "max", "min", "abs", "round",
                           "center(100000)", "center(10)", "indent(1000000)", "wordwrap(1)", "batch(3)", "slice(2)",
                           "json", "toJson", "fromJson", "tojson", "replace('a', 'bb')", "format(1)", "truncate(3)",
                           "attr('__class__')", "map('upper')", "select", "reject", "dictsort", "items", "trim",
                           "urlencode", "e", "safe", "striptags", "title", "capitalize", "wordcount", "filesizeformat",
                           "pprint", "nonexistent_filter", "date", "jq('.')", "number", "keys", "values", "slugify",
                           "split(',')", "base64encode", "base64decode", "urldecode", "yaml", "date('yyyy-MM-dd')",
                           "dateAdd(1, 'DAYS')", "replace({'a': 'bb'})", "jq('.[]')", "jq('[range(1e9)]')"])
tests = st.sampled_from(["defined", "none", "number", "string", "mapping", "iterable", "json", "odd", "divisibleby(0)",
                         "equalto(1)", "nonexistent_test", "null", "empty", "not null"])


def _expression(children):
    return st.one_of(
        st.tuples(children, binary, children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(children, filters).map(lambda t: f"{t[0]}|{t[1]}"),
        st.tuples(children, tests).map(lambda t: f"({t[0]} is {t[1]})"),
        st.tuples(children, attributes).map(lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(children, children).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(children, st.lists(children, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),  # Pebble
        st.lists(children, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
        children.map(lambda c: f"not {c}"),
        children.map(lambda c: f"-{c}"),
        children.map(lambda c: "(" * 30 + c + ")" * 30),
    )


expressions = st.recursive(st.one_of(names, literals), _expression, max_leaves=12)


@st.composite
def templates(draw):
    expression = draw(expressions)
    shape = draw(st.sampled_from([
        "{{ %s }}", "x {{ %s }} y", "{%% if %s %%}a{%% else %%}b{%% endif %%}", "{%% for i in %s %%}{{ i }}{%% endfor %%}",
        "{%% set v = %s %%}{{ v }}", "{{ %s }}{{ %s }}", "{{ %s", "%s }}", "{%% raw %%}{{ %s }}{%% endraw %%}",
        "{%% macro m() %%}{{ %s }}{%% endmacro %%}{{ m() }}", "{{ %s }}" * 3,
    ]))
    return shape.replace("%s", expression).replace("%%", "%")


texts = st.one_of(templates(), st.text(max_size=80).map(lambda text: "{{" + text), st.text(max_size=80))


@FUZZ
@given(texts)
@example("{{ not not (inputs if 0.group else inputs) }}")  # found by this fuzzing: Jinja folds constants
@example("{{ 1 if 2.__class__ else 2 }}")  # while compiling, and raised UndefinedError or SecurityError
def test_check_syntax_raises_only_expression_errors(text):
    try:
        check_syntax(text)
    except ExpressionError as error:
        assert str(error)


@FUZZ
@given(texts)
def test_render_raises_only_expression_errors_and_returns_text(text):
    try:
        rendered = render(text, CONTEXT)
    except ExpressionError as error:
        assert str(error)
    else:
        assert isinstance(rendered, str) or rendered == text


@FUZZ
@given(st.recursive(texts, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                    st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                    max_leaves=6))
def test_render_deep_and_truthiness_raise_only_expression_errors(value):
    try:
        is_truthy(render_deep(value, CONTEXT))
    except ExpressionError:
        pass
