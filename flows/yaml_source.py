"""YAML loading that keeps where every value came from and refuses duplicate keys.

A document is refused, with the line and column of the fault, before any Python value is built
when it is larger, deeper or expands (through aliases) to more values than the limits below; and
every value the YAML converters cannot make (a bad date, an integer too long, an unknown tag)
is a located fault too, never an exception. The limits are listed in docs/limits.md.
"""
import math
from typing import Any

import yaml

from .errors import Fault, UserError

Path = tuple  # of str keys and int indexes

MAX_SOURCE_CHARS = 1_000_000
MAX_DEPTH = 64  # mappings and sequences nested in each other, aliases followed
MAX_VALUES = 20_000  # every mapping, sequence and scalar, each alias counted as all it repeats
MAX_ALIASES = 1_000

_TAG = "tag:yaml.org,2002:"
SCALAR_TAGS = {_TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp")}
_KINDS = {_TAG + "int": "integer", _TAG + "float": "number", _TAG + "timestamp": "date", _TAG + "bool": "boolean"}


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    """PyYAML's safe loader (its libyaml parser when installed), composing nodes in Python so that
    depth, values and aliases are counted while they are read."""

    get_single_node = yaml.composer.Composer.get_single_node
    compose_document = yaml.composer.Composer.compose_document
    compose_scalar_node = yaml.composer.Composer.compose_scalar_node
    compose_sequence_node = yaml.composer.Composer.compose_sequence_node
    compose_mapping_node = yaml.composer.Composer.compose_mapping_node

    def __init__(self, stream):
        super().__init__(stream)
        self.anchors = {}
        self._depth = 0
        self._values = 0
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _limit(f"more than {MAX_ALIASES} aliases", self.peek_event().start_mark)
            return yaml.composer.Composer.compose_node(self, parent, index)
        self._depth += 1
        self._values += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _limit(f"values nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            if self._values > MAX_VALUES:
                raise _limit(f"more than {MAX_VALUES} values", self.peek_event().start_mark)
            return yaml.composer.Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1


def _limit(problem: str, mark) -> yaml.MarkedYAMLError:
    return yaml.composer.ComposerError(None, None, f"the document has {problem}", mark)


def path_to_text(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class LocatedDocument:
    """The parsed document plus the 1-based line and column of every node, by path."""

    def __init__(self, data: Any, positions: dict):
        self.data = data
        self.positions = positions

    def locate(self, path: Path) -> tuple[int | None, int | None]:
        path = tuple(path)
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (None, None))

    def fault(self, path: Path, message: str) -> Fault:
        line, column = self.locate(path)
        return Fault(message=message, path=path_to_text(path), line=line, column=column)


def _fault_at(mark, message: str, path: Path = ()) -> Fault:
    return Fault(message=message, path=path_to_text(path), line=mark.line + 1 if mark else None,
                 column=mark.column + 1 if mark else None)


def _text_position(text: str, index: int) -> tuple[int, int]:
    """Line and column of a reader error's position (libyaml counts it in UTF-8 bytes)."""
    if _Base is not yaml.SafeLoader:
        index = len(text.encode("utf-8")[:index].decode("utf-8", errors="ignore"))
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def load_located(text: str) -> LocatedDocument:
    if not isinstance(text, str) or not text.strip():
        raise UserError("the flow source is empty")
    if len(text) > MAX_SOURCE_CHARS:
        raise UserError(f"the flow source has {len(text)} characters; the limit is {MAX_SOURCE_CHARS}")
    loader = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        if root is None:  # nothing but comments or directives
            raise UserError("the flow source has no YAML document")
        _measure(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context
        if problem == "second occurrence":  # a duplicate anchor: the context names it
            problem = error.context.split(";")[0]
        raise UserError([_fault_at(mark, f"invalid YAML: {problem}")]) from None
    except yaml.reader.ReaderError as error:
        line, column = _text_position(text, error.position)
        raise UserError([Fault(f"invalid YAML: character U+{error.character:04X} is not allowed", line=line,
                               column=column)]) from None
    except yaml.YAMLError as error:
        raise UserError(f"invalid YAML: {error}") from None
    finally:
        if loader is not None:
            loader.dispose()
    positions: dict = {}
    faults: list[Fault] = []
    data = _build(loader, root, (), positions, faults)
    if faults:
        raise UserError(faults)
    return LocatedDocument(data, positions)


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []


def _measure(root: yaml.Node) -> None:
    """Refuse a node graph that would expand, through its aliases, past MAX_VALUES or MAX_DEPTH,
    or that contains itself; each node is measured once, so a bomb of aliases costs nothing."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) → (values, height)
    open_nodes: set[int] = set()

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in open_nodes:
            raise _limit("an alias that refers to a value containing it", node.start_mark)
        if key not in measured:  # the composer keeps nesting under MAX_DEPTH: this recursion is bounded
            open_nodes.add(key)
            values, height = 1, 1
            for child in _children(node):
                child_values, child_height = measure(child, depth + 1)
                values += child_values
                height = max(height, child_height + 1)
                if values > MAX_VALUES:
                    raise _limit(f"more than {MAX_VALUES} values once its aliases are expanded", child.start_mark)
            open_nodes.discard(key)
            measured[key] = (values, height)
        values, height = measured[key]
        if depth + height - 1 > MAX_DEPTH:
            raise _limit(f"values nested more than {MAX_DEPTH} levels deep once its aliases are expanded",
                         node.start_mark)
        return values, height

    measure(root, 1)


def _build(loader: _Loader, node: yaml.Node, path: Path, positions: dict, faults: list) -> Any:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        if node.tag != _TAG + "map":
            faults.append(_fault_at(node.start_mark, f"unsupported YAML tag '{node.tag}'", path))
            return None
        written = {id(key_node) for key_node, _ in node.value if key_node.tag != _TAG + "merge"}
        try:
            loader.flatten_mapping(node)  # merged (`<<`) pairs come first; written keys override them
        except yaml.MarkedYAMLError as error:
            faults.append(_fault_at(error.problem_mark, f"invalid YAML: {error.problem}", path))
            return None
        result: dict = {}
        merged: set = set()
        for key_node, value_node in node.value:
            known_faults = len(faults)
            key = _scalar(loader, key_node, path, faults) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, (str, int, float, bool)):
                if len(faults) == known_faults:
                    faults.append(_fault_at(key_node.start_mark, "mapping keys must be plain scalars", path))
                continue
            key = str(key) if not isinstance(key, str) else key
            if key in result and key not in merged:
                faults.append(_fault_at(key_node.start_mark, f"duplicate key '{key}'", path + (key,)))
                continue
            merged.discard(key)
            if id(key_node) not in written:
                merged.add(key)
            result[key] = _build(loader, value_node, path + (key,), positions, faults)
        return result
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _TAG + "seq":
            faults.append(_fault_at(node.start_mark, f"unsupported YAML tag '{node.tag}'", path))
            return None
        return [_build(loader, item, path + (index,), positions, faults) for index, item in enumerate(node.value)]
    return _scalar(loader, node, path, faults)


def _scalar(loader: _Loader, node: yaml.Node, path: Path, faults: list) -> Any:
    if node.tag not in SCALAR_TAGS:
        faults.append(_fault_at(node.start_mark, f"unsupported YAML tag '{node.tag}'", path))
        return None
    try:
        value = loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError, AttributeError, KeyError) as error:
        # An explicit tag on a value it does not fit (`!!timestamp x`, `!!bool x`) fails inside PyYAML.
        problem = getattr(error, "problem", None) or ("not of that type" if isinstance(error, (AttributeError, KeyError))
                                                      else str(error).split(";")[0])
        shown = node.value if len(node.value) <= 40 else node.value[:39] + "…"
        faults.append(_fault_at(node.start_mark, f"invalid {_KINDS.get(node.tag, 'value')} '{shown}': {problem}", path))
        return None
    if node.tag == _TAG + "timestamp":
        return node.value  # keep dates as the text the user wrote
    if isinstance(value, float) and not math.isfinite(value):
        faults.append(_fault_at(node.start_mark, f"'{node.value}' is not a finite number (JSON has no such value)", path))
        return None
    return value
