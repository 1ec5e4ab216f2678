"""YAML loading that keeps where every value came from and refuses duplicate keys."""
from typing import Any

import yaml

from .errors import Fault, UserError

Path = tuple  # of str keys and int indexes


class _Loader(yaml.SafeLoader):
    pass


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


def load_located(text: str) -> LocatedDocument:
    if not isinstance(text, str) or not text.strip():
        raise UserError("the flow source is empty")
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise UserError([Fault(
            message=f"invalid YAML: {error.problem or error.context}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )]) from None
    except yaml.YAMLError as error:
        raise UserError(f"invalid YAML: {error}") from None
    finally:
        loader.dispose()
    positions: dict = {}
    faults: list[Fault] = []
    data = _build(loader, root, (), positions, faults)
    if faults:
        raise UserError(faults)
    return LocatedDocument(data, positions)


def _build(loader: _Loader, node: yaml.Node, path: Path, positions: dict, faults: list) -> Any:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                faults.append(Fault("mapping keys must be plain scalars", path_to_text(path),
                                    key_node.start_mark.line + 1, key_node.start_mark.column + 1))
                continue
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                faults.append(Fault(f"duplicate key '{key}'", path_to_text(path + (key,)),
                                    key_node.start_mark.line + 1, key_node.start_mark.column + 1))
                continue
            result[key] = _build(loader, value_node, path + (key,), positions, faults)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (index,), positions, faults) for index, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return node.value  # keep dates as the text the user wrote
    return value
