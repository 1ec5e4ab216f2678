import time

import pytest

from flows.expressions import ExpressionError, check_syntax, is_truthy, render, render_deep


def test_renders_with_the_context():
    assert render("{{ inputs.x }}-{{ outputs.t.value | upper }}", {"inputs": {"x": 1}, "outputs": {"t": {"value": "a"}}}) == "1-A"
    assert render_deep({"k": ["{{ a }}", 3]}, {"a": "b"}) == {"k": ["b", 3]}


def test_undefined_names_are_errors_that_name_the_expression():
    with pytest.raises(ExpressionError) as error:
        render("{{ outputs.nope.value }}", {"outputs": {}})
    assert "{{ outputs.nope.value }}" in str(error.value) and "nope" in str(error.value)


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ inputs.__class__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{% set x = inputs.update({'a': 1}) %}",
])
def test_the_sandbox_refuses_attribute_escapes_and_mutation(template):
    with pytest.raises(ExpressionError):
        render(template, {"inputs": {}})


def test_sizes_are_bounded():
    with pytest.raises(ExpressionError):
        render("{{ 'x' * 10000000 }}", {})
    with pytest.raises(ExpressionError):
        render("{{ 10 ** 100000 }}", {})


def test_syntax_errors_are_found_before_rendering():
    with pytest.raises(ExpressionError) as error:
        check_syntax("{{ inputs.x ")
    assert "syntax error" in str(error.value)


@pytest.mark.parametrize("value, expected", [
    (False, False), ("false", False), (0, False), ("0", False), ("-0", False), ("", False), (None, False),
    (True, True), ("true", True), (1, True), ("yes", True), ("anything", True), ([1], True),
])
def test_truthiness_follows_kestra(value, expected):
    assert is_truthy(value) is expected


# --- the render budget: sizes checked before they are allocated, time checked as it runs ---------


@pytest.mark.parametrize("template, message", [
    ("{{ ('%04000000000d' % 1)|length }}", "format width 4000000000 is larger than"),
    ("{{ (((9**999)**999)**22) > 1 }}", "the result of ** would have more than"),
    ("{{ (10 ** 3000) * (10 ** 3000) }}", "the result of * would have more than"),
    ("{{ '%0999999999d'|format(1) }}", "format width"),
    ("{{ '%*d' % (999999999, 1) }}", "'*' widths are not allowed"),
    ("{{ '{:>1000000000}'.format(1) }}", "format width"),
    ("{{ '{:.1000000000f}'.format(1.5) }}", "format width"),
    ("{{ 'x'|center(1000000000) }}", "center would have more than"),
    ("{{ 'x'.center(1000000000) }}", "str.center() would have more than"),
    ("{{ 'x'.zfill(1000000000) }}", "str.zfill() would have more than"),
    ("{{ 'x'|indent(1000000000) }}", "indent would have more than"),
    ("{{ ('x' * 100000)|wordwrap(1, wrapstring='y' * 100) }}", "wordwrap would have more than"),
    ("{{ range(100000)|join('x' * 100000) }}", "join would have more than"),
    ("{{ ('a' * 1000000).replace('a', 'bb') }}", "replace() would have more than"),
    ("{{ ('a' * 1000000)|replace('a', 'bb') }}", "replace would have more than"),
    ("{{ [1, 2]|batch(1000000000)|list }}", "batch would have more than"),
    ("{{ range(1000000000) }}", "MAX_RANGE"),
    ("{{ lipsum(1000000) }}", "lipsum would have more than"),
    ("{{ (1).to_bytes(1000000000, 'big') }}", "to_bytes() is not available"),
    ("{% set ns = namespace(x='ab') %}{% for i in range(60) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}", "~ would have more than"),
    ("{% set ns = namespace(x=[1]) %}{% for i in range(60) %}{% set ns.x = ns.x + ns.x %}{% endfor %}", "+ would have more than"),
    # the same big string held 10**3 times: its text would be 10**9 characters
    ("{% set x = 'a' * 1000000 %}{% set a = [x, x, x, x, x, x, x, x, x, x] %}{% set b = [a, a, a, a, a, a, a, a, a, a] %}"
     "{% set c = [b, b, b, b, b, b, b, b, b, b] %}{{ c }}", "a value would turn into more than"),
    ("{% set x = 'a' * 1000000 %}{% set a = [x, x, x, x, x, x, x, x, x, x, x, x] %}{{ a|string|length }}",
     "a value would turn into more than"),
    ("{% set x = 'a' * 1000000 %}{% set a = [x, x, x, x, x, x, x, x, x, x, x, x] %}{{ a|tojson|length }}",
     "a value would turn into more than"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "ran longer than its budget"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(1) }}", "recursion"),
    ("{{ fromJson('[' * 100000 + ']' * 100000) }}", "recursion"),
])
def test_a_render_over_budget_fails_fast_naming_the_expression(template, message):
    started = time.monotonic()
    with pytest.raises(ExpressionError) as error:
        render(template, {})
    assert time.monotonic() - started < 5  # the budget is a fraction of a second; today some take minutes or memory
    assert message in str(error.value), str(error.value)
    assert template[:40] in str(error.value)


def test_ordinary_expressions_still_render():
    template = ("{{ 'x' ~ 'y' }} {{ 'a %s %05d' % ('b', 3) }} {{ '{:>5}'.format('z') }} {{ 'a-b'.replace('-', '+') }} "
                "{{ [1, 2]|join(',') }} {{ 'x'|center(5) }} {{ 2 ** 100 }} {{ [0] * 3 }} {{ 7 % 3 }} {{ [1] + [2] }} "
                "{% for i in range(3) %}{{ loop.index }}/{{ loop.length }}{% endfor %} {{ '%(a)s'|format(a=1) }}")
    assert render(template, {}) == ("xy a b 00003     z a+b 1,2   x   1267650600228229401496703205376 [0, 0, 0] 1 [1, 2] "
                                    "1/32/33/3 1")


def test_syntax_checks_are_bounded():
    with pytest.raises(ExpressionError, match="brackets nested more than"):
        check_syntax("{{ " + "(" * 100 + "1" + ")" * 100 + " }}")
    with pytest.raises(ExpressionError, match="too complex to compile"):
        check_syntax("{% for x in y %}" * 30 + "{% endfor %}" * 30)


def test_rendering_can_be_refused_where_a_lock_is_held():
    from flows.expressions import RenderRefused, rendering_refused

    with rendering_refused():
        assert render("plain text", {}) == "plain text"
        with pytest.raises(RenderRefused):
            render("{{ 1 + 1 }}", {})
    assert render("{{ 1 + 1 }}", {}) == "2"


def test_a_mapping_key_wins_over_a_method_of_the_same_name_as_in_pebble():
    context = {"outputs": {"out": {"values": {"count": "4"}, "items": [1, 2]}}}
    assert render("{{ outputs.out.values.count }}-{{ outputs.out.items | length }}", context) == "4-2"
