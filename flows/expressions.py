"""Expressions: `{{ ... }}` Jinja rendered in one immutable sandbox, undefined names are errors.

Every render has a budget (docs/limits.md): it may run MAX_RENDER_SECONDS, build strings and lists
of at most MAX_BUILD items, turn into text values of at most MAX_VALUE_WEIGHT, and produce at most
MAX_RENDERED_CHARS. The sandbox checks sizes before it allocates (the operators `*`, `**`, `%`,
`+` and `~`, format widths, the filters and string methods that pad, repeat or join), so an
expression that would exceed the budget fails at once, with an error naming it, instead of
growing the process. Time is checked as the template runs: on every attribute, call, operator,
loop iteration and output.
"""
import contextvars
import functools
import json
import operator
import re
import time
import types
from collections.abc import Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import StrictUndefined, Undefined, nodes, pass_context, pass_environment, pass_eval_context
from jinja2.exceptions import SecurityError
from jinja2.filters import do_replace
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from . import environment_values, jq_process, kestra_functions, storage
from .errors import UserError
from .pebble_syntax import GuardMissing, PebbleLexer, PebbleParser

MAX_RENDERED_CHARS = 1_000_000  # the text one expression renders to
MAX_BUILD = 1_000_000  # characters or items of a string or list built by one operation
MAX_VALUE_WEIGHT = 10_000_000  # characters plus items of a value turned into text or JSON
MAX_INT_BITS = 14_000  # about 4,200 digits: Python prints integers up to 4,300 digits
MAX_FORMAT_WIDTH = 10_000  # widths and precisions in `%` and `{}` formats
MAX_NESTING = 20  # brackets nested in an expression
MAX_RENDER_SECONDS = 0.25
MAX_RENDER_PASSES = 20  # render(): an expression that renders to an expression, at most this deep
FOREACH_TYPE = "io.kestra.plugin.core.flow.ForEach"


class ExpressionError(Exception):
    """An expression that does not compile or render; the message names the expression."""


class RenderRefused(Exception):
    """Raised instead of rendering within `rendering_refused()`: the caller holds a lock that other
    executions need, and must render after releasing it (docs/architecture.md)."""


_refusing: contextvars.ContextVar = contextvars.ContextVar("rendering_refused", default=False)


@contextmanager
def rendering_refused():
    """Within the block, `render` of a template raises RenderRefused (plain text still passes)."""
    token = _refusing.set(True)
    try:
        yield
    finally:
        _refusing.reset(token)


class _OverBudget(SecurityError):
    pass


class _Budget:
    __slots__ = ("deadline", "ticks")

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.ticks = 0


_budget: contextvars.ContextVar = contextvars.ContextVar("expression_budget", default=None)


def _tick() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.ticks += 1
        if not budget.ticks & 127 and time.monotonic() > budget.deadline:
            raise _OverBudget(f"it ran longer than its budget of {MAX_RENDER_SECONDS:g}s")


def _check_build(size: int, what: str) -> None:
    if size > MAX_BUILD:
        raise SecurityError(f"{what} would have more than {MAX_BUILD} characters or items")


def _check_weight(value: Any) -> None:
    """Refuse a value whose text would be too long, before Python builds that text. Lists may hold
    the same big value many times: every reference counts, and the walk stops at the limit."""
    if isinstance(value, str):
        if len(value) > MAX_VALUE_WEIGHT:
            raise SecurityError(f"a value has more than {MAX_VALUE_WEIGHT} characters")
        return
    if isinstance(value, (int, float, bool)) or value is None:
        return
    total, steps, stack = 0, 0, [value]
    while stack:
        item = stack.pop()
        steps += 1
        if not steps & 4095:
            _tick()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)
            if total <= MAX_VALUE_WEIGHT:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + len(item)
            if total <= MAX_VALUE_WEIGHT:
                stack.extend(item)
        elif isinstance(item, Namespace):
            total += 12
            stack.append(dict(item.items()))  # noqa: its repr shows every attribute
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        else:
            total += 1
        if total > MAX_VALUE_WEIGHT:
            raise SecurityError(f"a value would turn into more than {MAX_VALUE_WEIGHT} characters")


# --- formats ----------------------------------------------------------------------------------

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?[diouxXeEfFgGcrsa%]")
_DIGITS = re.compile(r"\d+")


def _check_width(digits: str) -> None:
    if digits == "*":
        raise SecurityError("'*' widths are not allowed in formats")
    if digits and (len(digits) > 6 or int(digits) > MAX_FORMAT_WIDTH):
        raise SecurityError(f"format width {digits[:12]} is larger than {MAX_FORMAT_WIDTH}")


def _percent(text: str, args: Any) -> str:
    """`text % args` with bounded widths: `'%04000000000d' % 1` is refused before it is built."""
    for width, precision in _PERCENT_SPEC.findall(text):
        _check_width(width)
        _check_width(precision)
    _check_weight(args)
    return text % args


class _BoundedFormatter(SandboxedFormatter):
    """str.format in the sandbox, with bounded widths."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        for digits in _DIGITS.findall(format_spec):
            _check_width(digits)
        _check_weight(value)
        return super().format_field(value, format_spec)


# --- string methods that grow their result ------------------------------------------------------


def _padded(method: str):
    def bounded(text: str, width, *args):
        if isinstance(width, int):
            _check_build(width, f"str.{method}()")
        return getattr(text, method)(width, *args)

    return bounded


def _expandtabs(text: str, tabsize=8):
    _check_build(len(text) * max(int(tabsize), 1), "str.expandtabs()")
    return text.expandtabs(tabsize)


def _replace(text: str, old, new, count=-1):
    if isinstance(old, str) and isinstance(new, str):
        found = text.count(old) if old else len(text) + 1
        if count is not None and count >= 0:
            found = min(found, count)
        _check_build(len(text) + found * len(new), "replace()")
    return text.replace(old, new, count)


def _join(separator: str, items):
    items = list(items)
    for item in items:
        _check_weight(item)
    _check_build(len(separator) * max(len(items) - 1, 0) + sum(len(item) for item in items if isinstance(item, str)),
                 "join()")
    return separator.join(items)


def _translate(text: str, table):
    longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1) if isinstance(table, dict) else 1
    _check_build(len(text) * max(longest, 1), "str.translate()")
    return text.translate(table)


_STR_METHODS = {
    "center": _padded("center"), "ljust": _padded("ljust"), "rjust": _padded("rjust"), "zfill": _padded("zfill"),
    "expandtabs": _expandtabs, "replace": _replace, "join": _join, "translate": _translate,
}
_REFUSED_METHODS = {"encode", "to_bytes"}  # bytes have no use in expressions, and their own ways to grow


def _refused(name: str):
    def refuse(*args, **kwargs):
        raise SecurityError(f"{name}() is not available in expressions")

    return refuse


# --- filters ------------------------------------------------------------------------------------


def _bounded_filter(name: str, function):
    """Every filter refuses inputs too large to turn into text; those that pad, repeat or wrap
    check their own arguments too (with Jinja's parameter names, after its context argument)."""
    check = _FILTER_CHECKS.get(name)
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(function)
    def bounded(*args, **kwargs):
        _tick()
        for value in args[skip:]:
            _check_weight(value)
        for value in kwargs.values():
            _check_weight(value)
        if check is not None:
            try:
                check(*args[skip:], **kwargs)
            except (TypeError, ValueError):  # wrong arguments: the filter itself says so
                pass
        return function(*args, **kwargs)

    return bounded


def _center_check(value, width=80):
    _check_build(int(width), "center")


def _indent_check(s, width=4, first=False, blank=False):
    pad = len(width) if isinstance(width, str) else int(width)
    _check_build(len(str(s)) + pad * (str(s).count("\n") + 1), "indent")


def _wordwrap_check(s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
    _check_build(len(str(s)) * (1 + len(wrapstring or "\n")), "wordwrap")


def _join_check(value, d="", attribute=None):
    count = len(value) if hasattr(value, "__len__") else 0
    _check_build(len(str(d)) * max(count - 1, 0), "join")


def _batch_check(value, linecount, fill_with=None):
    _check_build(int(linecount), "batch")


def _slice_check(value, slices, fill_with=None):
    _check_build(int(slices), "slice")


def _replace_check(s, old, new, count=None):
    text, old, new = str(s), str(old), str(new)
    found = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    _check_build(len(text) + found * len(new), "replace")


def _tojson_check(value, indent=None):
    if indent is not None and int(indent) > 16:
        raise SecurityError("tojson indent is larger than 16")


_FILTER_CHECKS = {
    "center": _center_check, "indent": _indent_check, "wordwrap": _wordwrap_check, "join": _join_check,
    "batch": _batch_check, "slice": _slice_check, "replace": _replace_check, "tojson": _tojson_check,
}


def _format_filter(value, *args, **kwargs):
    """Jinja's `format` filter (printf style), through the bounded `%`."""
    if args and kwargs:
        raise jinja2.exceptions.FilterArgumentError("can't handle positional and keyword arguments at the same time")
    return _percent(str(value), kwargs or args)


class _Filters(dict):
    """The filters, each wrapped by `_bounded_filter` when a template looks it up, so that a filter
    added later is bounded too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._bounded: dict = {}

    def __getitem__(self, name):
        function = super().__getitem__(name)
        if name in _BUDGET_FILTERS:
            return function
        known = self._bounded.get(name)
        if known is None or known[0] is not function:
            known = self._bounded[name] = (function, _bounded_filter(name, function))
        return known[1]

    def get(self, name, default=None):
        return self[name] if name in self else default


# --- templates: loops and `~` go through the budget ----------------------------------------------


class _Budgeted(NodeTransformer):
    """Loops tick the budget on every iteration, and `~` checks its size before it joins."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        if isinstance(node.target, nodes.Tuple) and len(node.target.items) == 2:  # Pebble's `for k, v in map`
            node.iter = nodes.Filter(node.iter, "_pairs", [], [], None, None, lineno=node.lineno)
        elif isinstance(node.target, nodes.Name):  # Pebble's `for entry in map`: entry.key, entry.value
            node.iter = nodes.Filter(node.iter, "_entries", [], [], None, None, lineno=node.lineno)
        node.iter = nodes.Filter(node.iter, "_budget_iter", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), "_budget_concat", [], [], None, None,
                            lineno=node.lineno)


def _pairs(iterable):
    return iterable.items() if isinstance(iterable, Mapping) else iterable


class _MapEntry(str):
    """A key of a map walked by a loop: the key, as Jinja gives it, with Pebble's `.key` and
    `.value` too."""

    def __new__(cls, key: str, value: Any):
        entry = super().__new__(cls, key)
        entry.key, entry.value = key, value
        return entry


def _entries(iterable):
    if not isinstance(iterable, Mapping):
        return iterable
    return [_MapEntry(key, value) if isinstance(key, str) else key for key, value in iterable.items()]


# --- Pebble's operators (flows/pebble_syntax.py turns them into these filters) --------------------


@pass_environment
def _soft_getattr(environment, value, attribute):
    _tick()
    return value if isinstance(value, Undefined) else environment.getattr(value, attribute)


@pass_environment
def _soft_getitem(environment, value, key):
    _tick()
    return value if isinstance(value, Undefined) else environment.getitem(value, key)


def _is_known(value) -> bool:
    return not isinstance(value, Undefined)


def _is_present(value) -> bool:
    return value is not None and not isinstance(value, Undefined)


def _contains(container, item) -> bool:
    """Pebble's `contains`: a substring, a list item, a map key; all of a list on the right."""
    _tick()
    if container is None:
        return False
    if isinstance(container, str):
        return str(item) in container
    if not isinstance(container, (Mapping, list, tuple, set)):
        raise SecurityError(f"contains needs a string, a list or a map on its left, got {type(container).__name__}")
    if isinstance(item, (list, tuple)):
        return all(element in container for element in item)
    return item in container


_SYNTAX_FILTERS = {"_pairs": _pairs, "_entries": _entries, "_soft_getattr": _soft_getattr, "_soft_getitem": _soft_getitem,
                   "_is_known": _is_known, "_is_present": _is_present, "_contains": _contains}
_BUDGET_FILTERS = {"_budget_iter", "_budget_concat", *_SYNTAX_FILTERS}


def _budget_iter(iterable):
    for item in iterable:
        _tick()
        yield item


def _budget_concat(parts: list) -> str:
    texts, total = [], 0
    for part in parts:
        _check_weight(part)
        text = str(part)
        total += len(text)
        _check_build(total, "~")
        texts.append(text)
    return "".join(texts)


def _finalize(value: Any) -> Any:
    """Every `{{ ... }}` value, before it becomes text: booleans and null print as in Kestra."""
    _tick()
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return ""
    _check_weight(value)
    return value


def _divide(left, right):
    """`10 / 2` is 5 as in Kestra (Pebble divides integers as integers), and `7 / 2` is 3.5 as in
    Jinja: an exact quotient of two integers stays an integer."""
    if type(left) is int and type(right) is int and right and not left % right:
        return left // right
    return operator.truediv(left, right)


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja with Pebble's forms (flows/pebble_syntax.py), every operation within the budget."""
    intercepted_binops = frozenset({"*", "**", "%", "+", "/"})

    @property
    def lexer(self):
        lexer = self.__dict__.get("_pebble_lexer")
        if lexer is None:
            lexer = self.__dict__["_pebble_lexer"] = PebbleLexer(self)
        return lexer

    def _parse(self, source, name, filename):
        return PebbleParser(self, source, name, filename).parse()

    def _generate(self, source, name, filename, defer_init=False):
        source = _Budgeted().visit(GuardMissing().visit(source))
        return super()._generate(source, name, filename, defer_init=defer_init)

    def call_binop(self, context, operator_name, left, right):
        _tick()
        if operator_name == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                if left.bit_length() * right > MAX_INT_BITS:
                    raise SecurityError(f"the result of ** would have more than {MAX_INT_BITS} bits")
            return operator.pow(left, right)
        if operator_name == "*":
            if isinstance(left, int) and isinstance(right, int) and not isinstance(left, bool):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise SecurityError(f"the result of * would have more than {MAX_INT_BITS} bits")
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
                    _check_build(len(sequence) * count, "a repeated sequence")
            return operator.mul(left, right)
        if operator_name == "/":
            return _divide(left, right)
        if operator_name == "%":
            if isinstance(left, str):
                return _percent(left, right)
            return operator.mod(left, right)
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):  # "+"
            _check_build(len(left) + len(right), "+")
        return operator.add(left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (Jinja's own signature)
        _tick()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj, attribute):
        _tick()
        if isinstance(obj, dict) and attribute in obj:  # as Pebble: `outputs.task.values` is the key, not dict.values
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        _tick()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value):
        """Called on every attribute a template reads: bounds the string methods that grow."""
        if isinstance(value, types.BuiltinMethodType):
            owner, name = value.__self__, value.__name__
            if name in _REFUSED_METHODS:
                return _refused(name)
            if isinstance(owner, str) and not isinstance(owner, Markup):
                if name in ("format", "format_map"):
                    return self._bounded_format(owner, name == "format_map")
                if name in _STR_METHODS:
                    return functools.partial(_STR_METHODS[name], owner)
        return super().wrap_str_format(value)

    def _bounded_format(self, text: str, is_format_map: bool):
        formatter = _BoundedFormatter(self)

        def bounded(*args, **kwargs):
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                args, kwargs = (), args[0]
            return formatter.vformat(text, args, kwargs)

        return bounded


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002 (Jinja's names)
    _check_build(int(n) * int(max), "lipsum")
    return jinja2.utils.generate_lorem_ipsum(n=n, html=html, min=min, max=max)


# --- Kestra's functions that need the budget or the context (docs/expressions.md) -----------------


def _remaining_seconds() -> float:
    budget = _budget.get()
    return MAX_RENDER_SECONDS if budget is None else budget.deadline - time.monotonic()


def _jq(value, expression):
    """Kestra's `jq(expression)`: the list of every result (`| first` for one), run by a real jq."""
    if value is None:
        return None
    if not isinstance(expression, str):
        raise kestra_functions.FunctionError("jq takes its program as a string")
    if isinstance(value, str):
        value = kestra_functions.from_json(value)
    _check_weight(value)
    budget = _budget.get()
    started_in = jq_process.start()
    if budget is not None:
        budget.deadline += started_in  # starting the helper is not the expression's time
    try:
        return jq_process.run(expression, json.loads(kestra_functions.to_json(value)), _remaining_seconds())
    except jq_process.JqTimeout:
        raise _OverBudget(f"jq '{_short(expression, 80)}' ran longer than the render's budget of "
                          f"{MAX_RENDER_SECONDS:g}s") from None
    except jq_process.JqError as error:
        raise kestra_functions.FunctionError(f"jq '{_short(expression, 80)}': {error}") from None


@pass_eval_context
def _replace_filter(eval_ctx, value, old, new=None, count=None, regexp=False):
    """Jinja's `replace(old, new, count)`, and Kestra's `replace({old: new, ...})` on a string or
    on every string in a list or map. Regular expressions are refused: Python's cannot be stopped
    when they backtrack without end."""
    if not isinstance(old, Mapping):
        return do_replace(eval_ctx, value, old, new, count)
    if regexp:
        raise kestra_functions.FunctionError("replace with regexp=true is not available (docs/expressions.md#filters)")
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {key: _replace_filter(eval_ctx, item, old) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_filter(eval_ctx, item, old) for item in value]
    text = str(value)
    for search, replacement in old.items():
        text = _replace(text, str(search), str(replacement))
    return text


@pass_context
def _render_function(context, toRender, recursive=True):  # noqa: N803 (Kestra's argument name)
    """Kestra's `render(expression)`: renders a value that holds an expression (a variable, an
    input), again until it holds no more when `recursive`, within the same budget."""
    if not isinstance(recursive, bool):
        raise kestra_functions.FunctionError("render's recursive argument is true or false")
    variables = context.get_all()
    value = toRender
    for _ in range(MAX_RENDER_PASSES):
        if isinstance(value, (Mapping, list)):
            return _render_deep_within_budget(value, variables, recursive)
        if not is_template(value):
            return value
        rendered = _generate(_compile(value), variables, value)
        if not recursive or rendered == value:
            return rendered
        value = rendered
    raise kestra_functions.FunctionError(f"render() still found an expression after {MAX_RENDER_PASSES} passes")


def _render_deep_within_budget(value, variables, recursive):
    if isinstance(value, Mapping):
        return {key: _render_deep_within_budget(item, variables, recursive) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_deep_within_budget(item, variables, recursive) for item in value]
    if is_template(value):
        return _render_function(_BareContext(variables), value, recursive)
    return value


class _BareContext:
    """What `_render_function` reads of a Jinja context, for the items of a map or list."""

    def __init__(self, variables: dict):
        self.variables = variables

    def get_all(self) -> dict:
        return self.variables


@pass_context
def _render_once(context, toRender):  # noqa: N803
    return _render_function(context, toRender, recursive=False)


@pass_context
def _current_each_output(context, outputs):
    """Kestra's `currentEachOutput(outputs.task)`: the outputs of `task` in the current iteration of
    every enclosing ForEach (outputs in loops are keyed by iteration value, outermost first)."""
    taskrun, parents = context.get("taskrun"), context.get("parents") or []
    if not isinstance(outputs, Mapping):
        raise kestra_functions.FunctionError("currentEachOutput takes the outputs of a task, a map")
    if not isinstance(taskrun, Mapping):
        raise kestra_functions.FunctionError("currentEachOutput is only known while a task runs")
    values, child_value = [], taskrun.get("value")
    for parent in parents:  # nearest first
        if (parent.get("task") or {}).get("type") == FOREACH_TYPE:
            values.append(child_value)
        child_value = (parent.get("taskrun") or {}).get("value")
    if not values:
        raise kestra_functions.FunctionError("currentEachOutput is used inside a ForEach")
    found = outputs
    for value in reversed(values):
        if not isinstance(found, Mapping) or value not in found:
            raise kestra_functions.FunctionError(f"currentEachOutput: no outputs for the iteration '{value}'")
        found = found[value]
    return found


@pass_context
def _read(context, path):
    """Kestra's `read(path)`: the text of a file of the flow's namespace, given as a `kestra:///`
    URI (an output file, a FILE input) or as a namespace file's path. Reading the storage is not
    the expression's time; the file's size is checked before it is read."""
    flow = context.get("flow")
    if not isinstance(flow, Mapping) or not flow.get("tenantId") or not flow.get("namespace"):
        raise kestra_functions.FunctionError("read() is only known while a flow runs")
    if not isinstance(path, str) or not path:
        raise kestra_functions.FunctionError("read() takes a kestra:/// URI or the path of a namespace file")
    tenant, namespace = flow["tenantId"], flow["namespace"]
    started = time.monotonic()
    try:
        if storage.is_uri(path):
            stored = storage.path_of_uri(path, namespace=namespace, where="read()")
        else:
            stored = f"{storage.namespace_files_prefix(namespace)}/{storage.clean_path(path, where='read()')}"
        if storage.exists(tenant_key=tenant, path=stored) and storage.size(tenant_key=tenant, path=stored) > MAX_BUILD:
            raise kestra_functions.FunctionError(f"read('{_short(path, 80)}'): the file is larger than {MAX_BUILD} bytes")
        content = storage.read(tenant_key=tenant, path=stored, where="read()")
    except UserError as error:
        raise kestra_functions.FunctionError(f"read('{_short(path, 80)}'): {error}") from None
    finally:
        budget = _budget.get()
        if budget is not None:
            budget.deadline += time.monotonic() - started
    try:
        return content.decode()
    except UnicodeDecodeError:
        raise kestra_functions.FunctionError(f"read('{_short(path, 80)}'): the file is not UTF-8 text") from None


def _secret(key):
    try:
        return environment_values.secret(key)
    except (environment_values.SecretNotFound, ValueError) as error:
        raise kestra_functions.FunctionError(str(error)) from None


@pass_context
def _kv(context, key, namespace=None, errorOnMissing=False):  # noqa: N803 (Kestra's argument name)
    """Kestra's `kv('key', namespace=, errorOnMissing=)`: a value of the flow's (or `namespace`'s) KV
    store in the flow's tenant, null when missing (docs/core-tasks.md)."""
    from .errors import UserError
    from .selectors import MISSING, kv_value  # the store is read when the function is called

    flow = context.get("flow")
    if not isinstance(flow, Mapping) or not flow.get("tenantId"):
        raise kestra_functions.FunctionError("kv() is only known within a flow")
    namespace = namespace or flow.get("namespace")
    try:
        value = kv_value(tenant_key=flow["tenantId"], namespace=namespace, key=key)
    except UserError as error:
        raise kestra_functions.FunctionError(f"kv(): {error}") from None
    if value is MISSING:
        if errorOnMissing is True:
            raise kestra_functions.FunctionError(f"The key '{key}' does not exist in the namespace '{namespace}'.")
        return None
    return value


@pass_context
def _error_logs(context):
    """Kestra's `errorLogs()`: the ERROR log lines of the running execution (its `errors` tasks say
    what failed), each with taskId, message, level, timestamp (docs/expressions.md)."""
    from .selectors import execution_error_logs  # the logs are read when the function is called

    flow, execution = context.get("flow"), context.get("execution")
    if not isinstance(flow, Mapping) or not isinstance(execution, Mapping) or not execution.get("id"):
        raise kestra_functions.FunctionError("errorLogs() is only known while an execution runs")
    return execution_error_logs(tenant_key=flow["tenantId"], execution_id=execution["id"])


def _bounded_function(name: str, function):
    """A global function, with its arguments' sizes checked as a filter's."""
    bounded = _bounded_filter(name, function)
    if getattr(function, "jinja_pass_arg", None) is not None:
        bounded = pass_context(bounded)
    return bounded


ENVIRONMENT = _BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                              finalize=_finalize)
ENVIRONMENT.filters = _Filters(ENVIRONMENT.filters)
ENVIRONMENT.filters.update(kestra_functions.FILTERS)
ENVIRONMENT.filters.update(format=_format_filter, jq=_jq, replace=_replace_filter, _budget_iter=_budget_iter,
                           _budget_concat=_budget_concat, **_SYNTAX_FILTERS)
ENVIRONMENT.tests.update(kestra_functions.TESTS)
ENVIRONMENT.globals.update({name: _bounded_function(name, function) for name, function in {
    **kestra_functions.FUNCTIONS, "lipsum": _lipsum, "render": _render_function, "renderOnce": _render_once,
    "currentEachOutput": _current_each_output, "secret": _secret, "kv": _kv, "read": _read,
    "errorLogs": _error_logs}.items()})
ENVIRONMENT.globals.update(envs=environment_values.Envs(), globals=environment_values.Globals())


def is_template(text: Any) -> bool:
    return isinstance(text, str) and ("{{" in text or "{%" in text)


_OPENING, _CLOSING = {"(", "[", "{"}, {")", "]", "}"}


def _check_nesting(text: str) -> None:
    """Jinja's parser recurses on every bracket: refuse deep nesting before parsing."""
    depth = 0
    for _, kind, value in ENVIRONMENT.lex(text):
        if kind == "operator":
            if value in _OPENING:
                depth += 1
                if depth > MAX_NESTING:
                    raise ExpressionError(f"template syntax error in '{_short(text)}': brackets nested more than "
                                          f"{MAX_NESTING} deep")
            elif value in _CLOSING:
                depth -= 1


@lru_cache(maxsize=4096)
def _compile(text: str) -> jinja2.Template:
    try:
        _check_nesting(text)
        return ENVIRONMENT.from_string(text)
    except ExpressionError:
        raise
    except jinja2.TemplateSyntaxError as error:
        raise ExpressionError(f"template syntax error in '{_short(text)}': {error.message} (template line {error.lineno})") from None
    except (RecursionError, SyntaxError, MemoryError, ValueError) as error:  # nested too deep for Python itself
        raise ExpressionError(f"template syntax error in '{_short(text)}': too complex to compile ({type(error).__name__})") from None
    except Exception as error:  # Jinja evaluates constant parts while compiling: `{{ a if 0.x else b }}`
        raise ExpressionError(f"cannot compile '{_short(text)}': {error}") from None


def check_syntax(text: str) -> None:
    _compile(text)


def render(text: Any, context: dict) -> Any:
    """Render a string template within the budget; non-strings are returned unchanged."""
    if not is_template(text):
        return text
    if _refusing.get():
        raise RenderRefused(text)
    template = _compile(text)
    token = _budget.set(_Budget(MAX_RENDER_SECONDS))
    try:
        return _generate(template, context, text)
    except ExpressionError:
        raise
    except Exception as error:  # every render failure becomes a located user error
        raise ExpressionError(f"cannot render '{_short(text)}': {error}") from None
    finally:
        _budget.reset(token)


def _generate(template: jinja2.Template, context: dict, text: str) -> str:
    chunks, size = [], 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise ExpressionError(f"rendering '{_short(text)}' produced more than {MAX_RENDERED_CHARS} characters")
        chunks.append(chunk)
    return "".join(chunks)


def render_deep(value: Any, context: dict) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {key: render_deep(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_deep(item, context) for item in value]
    return value


def is_truthy(value: Any) -> bool:
    """Kestra's truthiness: false, "false", 0, "0", "-0" and "" are false."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() not in {"", "false", "0", "-0", "none", "null"}
    return bool(value)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
