"""The layers point one way (docs/architecture.md): `workers` imports `flows`, never the reverse, and
only `flows/states.py` changes the state of a task run or an execution."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path.relative_to(ROOT), ast.parse(path.read_text(), filename=str(path))


def _imported(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_flows_never_imports_workers():
    offending = [
        f"{path}: imports {name}"
        for path, tree in _modules("flows")
        for name in _imported(tree)
        if name == "workers" or name.startswith("workers.")
    ]
    assert offending == []


def test_the_import_walk_sees_imports():
    """Guards the test above: the walk finds `workers`' own imports of `flows`."""
    found = {name for _, tree in _modules("workers") for name in _imported(tree)}
    assert any(name.startswith("flows.") for name in found)


def _state_writes(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == "state":
                    yield node.lineno
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update":
            if any(keyword.arg == "state" for keyword in node.keywords):
                yield node.lineno


def test_only_the_states_module_writes_states():
    offending = [
        f"{path}:{line}"
        for package in ("flows", "workers")
        for path, tree in _modules(package)
        if path != Path("flows/states.py")
        for line in _state_writes(tree)
    ]
    assert offending == []
    assert list(_state_writes(ast.parse((ROOT / "flows/states.py").read_text())))
