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
