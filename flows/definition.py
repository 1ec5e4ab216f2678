"""From YAML text to a validated flow: every fault located by path and line:column."""
import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pydantic

from . import schema
from .errors import Fault, UserError
from .expressions import ExpressionError, check_syntax, is_template
from .yaml_source import LocatedDocument, load_located, path_to_text

TASK_LIST_KEYS = ("tasks", "then", "else", "defaults", "errors")


@dataclass(frozen=True)
class ParsedFlow:
    document: schema.FlowDocument
    located: LocatedDocument
    tasks_by_id: dict
    enclosing: dict  # task id → the flowable task that holds it

    def retry_for(self, task):
        """Kestra's order: the task's own `retry`, else the nearest enclosing task's, else the flow's."""
        node = task
        while node is not None:
            if node.retry is not None:
                return node.retry
            node = self.enclosing.get(node.id)
        return self.document.retry

    @property
    def flow_id(self) -> str:
        return self.document.id

    @property
    def namespace(self) -> str:
        return self.document.namespace

    def literal_worker_group_keys(self) -> list[tuple[str, Fault]]:
        """Keys written as plain text (not expressions), each with where it stands."""
        found = []
        data = self.located.data

        def visit(item: Any, path: tuple):
            group = item.get("workerGroup") if isinstance(item, dict) else None
            if isinstance(group, dict) and isinstance(group.get("key"), str):
                key = group["key"].strip()
                if key and not is_template(key):
                    found.append((key, self.located.fault(path + ("workerGroup", "key"), "")))

        visit(data, ())
        for path, task in _raw_tasks(data):
            visit(task, path)
        for index, trigger in enumerate(data.get("triggers") or []):
            visit(trigger, ("triggers", index))
        return found


def parse_flow(source: str) -> ParsedFlow:
    located = load_located(source)
    data = located.data
    if not isinstance(data, dict):
        raise UserError([located.fault((), "a flow must be a YAML mapping with id, namespace and tasks")])
    faults: list[Fault] = _working_directory_faults(located)  # on the YAML as written, before pluginDefaults
    _apply_plugin_defaults(data)
    document = None
    try:
        document = schema.FlowDocument.model_validate(data)
    except pydantic.ValidationError as error:
        faults.extend(_translate(error, located))
    faults.extend(_duplicate_ids(located))
    faults.extend(_dag_faults(located))
    faults.extend(_template_faults(located))
    if faults:
        raise UserError(sorted(set(faults), key=lambda f: (f.line or 0, f.column or 0, f.path)))
    tasks_by_id = {task.id: task for task in schema.walk_tasks(document.tasks + document.errors)}
    enclosing = {child.id: task for task in tasks_by_id.values() for _, children in schema.child_lists(task)
                 for child in children}
    return ParsedFlow(document=document, located=located, tasks_by_id=tasks_by_id, enclosing=enclosing)


def document_json(document: schema.FlowDocument) -> dict:
    """The parsed flow as Kestra shows it in JSON (what the API answers besides the source)."""
    return document.model_dump(mode="json", by_alias=True, exclude_none=True)


@lru_cache(maxsize=256)
def parse_flow_cached(source: str) -> ParsedFlow:
    """Parsed flows are immutable; the engine parses each revision once per process."""
    return parse_flow(source)


def declaring_worker_group(source: str) -> dict[str, set[str]]:
    """Ids of the tasks and of the triggers whose own YAML names a workerGroup key (one given by
    pluginDefaults is not their own): {"tasks": {...}, "triggers": {...}}."""
    data = load_located(source).data
    data = data if isinstance(data, dict) else {}

    def names_key(item) -> bool:
        return isinstance(item.get("workerGroup"), dict) and bool(item["workerGroup"].get("key"))

    return {
        "tasks": {task.get("id") for _, task in _raw_tasks(data) if names_key(task)},
        "triggers": {trigger.get("id") for trigger in _raw_triggers(data) if isinstance(trigger, dict)
                     and names_key(trigger)},
    }


# --- pluginDefaults (Kestra's rules) --------------------------------------------------------


def _raw_tasks(data: dict):
    """Every task mapping in the raw document, with its path, children after parents."""
    def walk(tasks, path):
        if not isinstance(tasks, list):
            return
        for index, task in enumerate(tasks):
            task_path = path + (index,)
            if _is_dag_entry(task):  # a Dag holds {task, dependsOn}
                task, task_path = task["task"], task_path + ("task",)
            if not isinstance(task, dict):
                continue
            yield task_path, task
            for key in TASK_LIST_KEYS:
                yield from walk(task.get(key), task_path + (key,))
            cases = task.get("cases")
            if isinstance(cases, dict):
                for case, children in cases.items():
                    yield from walk(children, task_path + ("cases", case))

    yield from walk(data.get("tasks"), ("tasks",))
    yield from walk(data.get("errors"), ("errors",))


def _is_dag_entry(item: Any) -> bool:
    return isinstance(item, dict) and "type" not in item and isinstance(item.get("task"), dict)


def _raw_triggers(data: dict) -> list:
    """The raw document's triggers, when they are a list (the schema says so otherwise)."""
    triggers = data.get("triggers")
    return triggers if isinstance(triggers, list) else []


def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_MODELS_BY_TYPE = {
    type_name: model
    for union in (schema.Task, schema.Trigger)
    for model in union.__origin__.__args__
    for type_name in model.model_fields["type"].annotation.__args__  # a type and its older names
}


def _known_properties(type_name: str) -> set[str] | None:
    model = _MODELS_BY_TYPE.get(type_name)
    if model is None:
        return None
    return {field.alias or name for name, field in model.model_fields.items()}


def _apply_plugin_defaults(data: dict) -> None:
    # `taskDefaults` is Kestra's older name; both lists apply, pluginDefaults first (docs/flow-properties.md).
    entries = [entry for key in ("pluginDefaults", "taskDefaults") if isinstance(data.get(key), list)
               for entry in data[key]]
    entries = [e for e in entries if isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("values"), dict)]
    if not entries:
        return
    targets = [task for _, task in _raw_tasks(data)]
    targets += [trigger for trigger in _raw_triggers(data) if isinstance(trigger, dict)]
    for target in targets:
        type_name = target.get("type")
        if not isinstance(type_name, str):
            continue
        matching = [e for e in entries if type_name.startswith(e["type"])]
        if not matching:
            continue
        known = _known_properties(type_name)

        def applicable(values: dict) -> dict:
            return {k: v for k, v in values.items() if known is None or k in known}

        # The first declared entry wins: fold from the last one so earlier entries override.
        defaults: dict = {}
        forced: dict = {}
        for entry in reversed(matching):
            if entry.get("forced") is True:
                forced = _deep_merge(forced, applicable(entry["values"]))
            else:
                defaults = _deep_merge(defaults, applicable(entry["values"]))
        result = _deep_merge(_deep_merge(defaults, target), forced)
        target.clear()
        target.update(result)


# --- faults ---------------------------------------------------------------------------------


def _translate(error: pydantic.ValidationError, located: LocatedDocument) -> list[Fault]:
    faults = []
    for item in error.errors():
        path, node = _data_path(located.data, item["loc"])
        kind = item["type"]
        if kind == "missing":
            message = f"missing required property '{path[-1]}'"
        elif kind == "extra_forbidden":
            message = f"unknown property '{path[-1]}'"
        elif kind == "union_tag_invalid":
            what = "condition" if "conditions" in path else "trigger" if path and path[0] == "triggers" else "task"
            message = f"unknown {what} type '{item['ctx']['tag']}'"
            if path and path[0] == "inputs":
                message = f"unknown input type '{item['ctx']['tag']}' (use one of {', '.join(schema.INPUT_TYPES)})"
            path = path + ("type",)
        elif kind == "union_tag_not_found":
            message = "missing required property 'type'"
        else:
            message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
            if path and isinstance(path[-1], str):
                message = f"'{path[-1]}': {message}"
        faults.append(located.fault(path, message))
    return faults


def _data_path(data: Any, loc: tuple) -> tuple[tuple, Any]:
    """Pydantic's loc holds union tags; keep only the steps that exist in the document."""
    path: list = []
    node = data
    for step in loc:
        if isinstance(node, dict) and step in node:
            path.append(step)
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            path.append(step)
            node = node[step]
        elif isinstance(node, dict) and step == node.get("type"):
            continue
        elif isinstance(step, str) and step.startswith(("function-", "list[", "dict[", "str", "int", "float", "bool")):
            continue
        else:
            path.append(step)
            node = None
    return tuple(path), node


def _duplicate_ids(located: LocatedDocument) -> list[Fault]:
    faults = []
    seen: dict[str, tuple] = {}
    # In document order, so the fault is on the later occurrence wherever the two stand (cases, defaults...).
    for path, task in sorted(_raw_tasks(located.data), key=lambda item: located.locate(item[0])):
        task_id = task.get("id")
        if isinstance(task_id, str):
            if task_id in seen:
                faults.append(located.fault(path + ("id",), f"duplicate task id '{task_id}' (first used at {path_to_text(seen[task_id])})"))
            else:
                seen[task_id] = path
    trigger_ids: set[str] = set()
    for index, trigger in enumerate(_raw_triggers(located.data)):
        trigger_id = trigger.get("id") if isinstance(trigger, dict) else None
        if isinstance(trigger_id, str):
            if trigger_id in trigger_ids:
                faults.append(located.fault(("triggers", index, "id"), f"duplicate trigger id '{trigger_id}'"))
            trigger_ids.add(trigger_id)
    return faults


def _dag_faults(located: LocatedDocument) -> list[Fault]:
    """In each Dag, every `dependsOn` names a task of that Dag, and no task depends on itself through others."""
    faults = []
    for path, task in _raw_tasks(located.data):
        entries = task.get("tasks") if task.get("type") in schema.DagTask.model_fields["type"].annotation.__args__ else None
        if not isinstance(entries, list):
            continue
        depends: dict[str, list] = {}  # task id → [(index in dependsOn, id depended on)]
        where: dict[str, int] = {}
        for index, entry in enumerate(entries):
            if _is_dag_entry(entry) and isinstance(entry["task"].get("id"), str):
                where[entry["task"]["id"]] = index
                listed = entry.get("dependsOn")
                depends[entry["task"]["id"]] = list(enumerate(listed)) if isinstance(listed, list) else []
        for task_id, listed in depends.items():
            for position, needed in listed:
                if needed not in depends:
                    faults.append(located.fault(path + ("tasks", where[task_id], "dependsOn", position),
                                                f"task '{task_id}' depends on '{needed}', which is not a task of this Dag"))
        for task_id, position, cycle in _dag_cycles(depends):
            faults.append(located.fault(path + ("tasks", where[task_id], "dependsOn", position),
                                        f"dependsOn makes a cycle, which a Dag may not have: {' → '.join(cycle)} (each depends on the next)"))
    return faults


def _dag_cycles(depends: dict[str, list]) -> list[tuple[str, int, list[str]]]:
    """Each cycle once, as (task id, position in its dependsOn, the cycle's ids), found by a
    depth-first walk: the dependency that closes the cycle is the one reported."""
    found, done, trail = [], set(), []

    def visit(task_id: str):
        trail.append(task_id)
        for position, needed in depends[task_id]:
            if needed in trail:
                found.append((task_id, position, trail[trail.index(needed):] + [needed]))
            elif needed in depends and needed not in done:
                visit(needed)
        trail.pop()
        done.add(task_id)

    for task_id in depends:
        if task_id not in done:
            visit(task_id)
    return found


WORKING_DIRECTORY_TYPES = schema.WorkingDirectoryTask.model_fields["type"].annotation.__args__


def _working_directory_faults(located: LocatedDocument) -> list[Fault]:
    """A WorkingDirectory holds runnable tasks only, and they take its worker group, as in Kestra
    (docs/core-tasks.md)."""
    faults = []
    for path, task in _raw_tasks(located.data):
        children = task.get("tasks") if task.get("type") in WORKING_DIRECTORY_TYPES else None
        for index, child in enumerate(children if isinstance(children, list) else []):
            if not isinstance(child, dict):
                continue
            model = _MODELS_BY_TYPE.get(child.get("type"))
            if model is not None and (model.flowable or model.block):
                faults.append(located.fault(path + ("tasks", index, "type"), (
                    f"'{child['type']}' cannot run inside a WorkingDirectory: only runnable tasks are allowed "
                    "as children of a WorkingDirectory task")))
            if "workerGroup" in child:
                faults.append(located.fault(path + ("tasks", index, "workerGroup"), (
                    "a task inside a WorkingDirectory cannot set a workerGroup: set it on the WorkingDirectory, "
                    "whose worker runs all its tasks")))
    return faults


def _template_faults(located: LocatedDocument) -> list[Fault]:
    faults = []

    def visit(value: Any, path: tuple):
        if isinstance(value, dict):
            for key, item in value.items():
                visit(item, path + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                visit(item, path + (index,))
        elif is_template(value):
            try:
                check_syntax(value)
            except ExpressionError as error:
                faults.append(located.fault(path, str(error)))

    visit(located.data, ())
    return faults
