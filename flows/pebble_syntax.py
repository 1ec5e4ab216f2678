"""Kestra's Pebble syntax on Jinja (docs/expressions.md): a lexer, a parser and a code generator
that accept Pebble's forms next to Jinja's, so a Kestra expression runs unchanged.

Tokens, never text: the forms are recognised by Jinja's own lexer, so a `??` or `equals` inside a
string literal stays text.

- `a ?? b` (null coalescing: `a` undefined or null gives `b`) and `a ??? b` (only undefined) bind
  tighter than every other binary operator, as in Kestra (precedence 120); a filter after them
  applies to the whole: `a ?? b | upper` is `(a ?? b) | upper`.
- `cond ? a : b` has the lowest precedence and nests to the right.
- `x equals y` is `x == y`; `list contains item` (string, list or map key; a list on the right
  must all be contained); `null` is `none`; `{% elseif %}` is `{% elif %}`.
- `x | default(...)`, `x is defined`, `x is empty` see a missing attribute anywhere in `x` as
  undefined instead of failing, as Pebble does.
"""
import copy
import re

from jinja2 import nodes
from jinja2.lexer import TOKEN_OPERATOR, Lexer, Token, operators
from jinja2.parser import Parser
from jinja2.visitor import NodeTransformer

# `?`-operators in Jinja's operator rule, longest first as Jinja sorts its own
_PEBBLE_OPERATORS = {"???": "undefinedcoalesce", "??": "nullcoalesce", "?": "question"}
_OPERATOR_RE = re.compile("({})".format("|".join(
    re.escape(text) for text in sorted([*operators, *_PEBBLE_OPERATORS], key=lambda text: -len(text)))))
_RENAMED_NAMES = {"null": "none", "elseif": "elif"}
_COMPARE_TOKENS = {"eq", "ne", "lt", "lteq", "gt", "gteq"}


class PebbleLexer(Lexer):
    def __init__(self, environment):
        super().__init__(environment)
        for state, rules in self.rules.items():
            self.rules[state] = [rule._replace(pattern=_OPERATOR_RE) if rule.tokens == TOKEN_OPERATOR else rule
                                 for rule in rules]

    def wrap(self, stream, name=None, filename=None):
        previous = None
        for token in super().wrap(self._pebble_tokens(stream), name, filename):
            if token.type == "name" and previous != "dot":
                if token.value in _RENAMED_NAMES:
                    token = Token(token.lineno, "name", _RENAMED_NAMES[token.value])
                elif token.value == "equals":
                    token = Token(token.lineno, "eq", "==")
            previous = token.type
            yield token

    @staticmethod
    def _pebble_tokens(stream):
        for lineno, kind, value in stream:
            if kind == TOKEN_OPERATOR and value in _PEBBLE_OPERATORS:
                kind = _PEBBLE_OPERATORS[value]
            yield lineno, kind, value


def _filter(node, name, *args):
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


class _SoftAttributes(NodeTransformer):
    """`a.b[c]` read so that a missing attribute or key gives undefined instead of failing."""

    def visit_Getattr(self, node):
        self.generic_visit(node)
        return _filter(node.node, "_soft_getattr", nodes.Const(node.attr, lineno=node.lineno))

    def visit_Getitem(self, node):
        self.generic_visit(node)
        return _filter(node.node, "_soft_getitem", node.arg)


def soft(node):
    """A copy of `node` that is undefined, never an error, where an attribute or key is missing."""
    return _SoftAttributes().visit(copy.deepcopy(node))


def coalesce(operands: list, undefined_only: list) -> nodes.Expr:
    """`a ?? b ?? c` as `a if a is present else (b if b is present else c)`: grouped to the right,
    which gives the same values, so each operand is tested once."""
    result = operands[-1]
    for operand, only_undefined in zip(reversed(operands[:-1]), reversed(undefined_only)):
        test = _filter(soft(operand), "_is_known" if only_undefined else "_is_present")
        result = nodes.CondExpr(test, soft(operand), result, lineno=operand.lineno)
    return result


class PebbleParser(Parser):
    def parse_condexpr(self):
        lineno = self.stream.current.lineno
        condition = super().parse_condexpr()
        if not self.stream.skip_if("question"):
            return condition
        then = self.parse_condexpr()
        self.stream.expect("colon")
        return nodes.CondExpr(condition, then, self.parse_condexpr(), lineno=lineno)

    def parse_compare(self):
        lineno = self.stream.current.lineno
        node = self._parse_comparisons()
        while self.stream.current.test("name:contains"):
            next(self.stream)
            node = nodes.Filter(node, "_contains", [self._parse_comparisons()], [], None, None, lineno=lineno)
        return node

    def _parse_comparisons(self):
        """Jinja's comparisons, where `equals` arrives as `==` from the lexer."""
        lineno = self.stream.current.lineno
        node = self.parse_math1()
        operands = []
        while True:
            if self.stream.current.type in _COMPARE_TOKENS:
                kind = next(self.stream).type
                operands.append(nodes.Operand(kind, self.parse_math1()))
            elif self.stream.skip_if("name:in"):
                operands.append(nodes.Operand("in", self.parse_math1()))
            elif self.stream.current.test("name:not") and self.stream.look().test("name:in"):
                self.stream.skip(2)
                operands.append(nodes.Operand("notin", self.parse_math1()))
            else:
                break
        return nodes.Compare(node, operands, lineno=lineno) if operands else node

    def parse_unary(self, with_filter=True):
        operands, undefined_only = [super().parse_unary(with_filter=False)], []
        while self.stream.current.type in ("nullcoalesce", "undefinedcoalesce"):
            undefined_only.append(next(self.stream).type == "undefinedcoalesce")
            operands.append(super().parse_unary(with_filter=False))
        node = coalesce(operands, undefined_only) if undefined_only else operands[0]
        return self.parse_filter_expr(node) if with_filter else node


_GUARDED_FILTERS = {"default", "d"}
_GUARDED_TESTS = {"defined", "undefined", "empty"}


class GuardMissing(NodeTransformer):
    """The operand of `default`, `is defined` and `is empty` reads missing attributes as undefined."""

    def visit_Filter(self, node):
        self.generic_visit(node)
        if node.name in _GUARDED_FILTERS and node.node is not None:
            node.node = soft(node.node)
        return node

    def visit_Test(self, node):
        self.generic_visit(node)
        if node.name in _GUARDED_TESTS:
            node.node = soft(node.node)
        return node
