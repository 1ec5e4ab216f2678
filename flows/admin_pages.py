"""Admin pages that are not a model's change form, and what the drawn pages show: a flow's *Execute*
page (a form built from its inputs, FILE inputs uploaded; docs/inputs.md), a namespace's *Files*
page (list, download, upload, delete; docs/namespace-files.md), and the contents of the execution,
flow and worker-group pages (docs/admin.md). Forms parse input and call one service, as every admin
form does; flows.permissions decides who may (viewer reads, developer writes and executes)."""
import json
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from . import drawing, engine, masking, selectors, services, storage
from .definition import declaring_worker_group, parse_flow_cached
from .errors import UserError
from .models import Role
from .permissions import Actor, allowed, tenant_for, tenants_for
from .routing import route_describe
from .schema import child_lists

TEXT_TYPES = {"JSON", "YAML", "ARRAY"}
HINTS = {
    "DATETIME": "e.g. 2042-04-02T04:20:42Z", "DATE": "e.g. 2042-12-03", "TIME": "e.g. 10:15:30",
    "DURATION": "e.g. PT5M", "ARRAY": "a JSON array, e.g. [1, 2]", "JSON": "JSON", "YAML": "YAML",
}


def _initial(spec):
    value = spec.prefill if spec.prefill is not None else spec.defaults
    if value is None or spec.type == "SECRET":
        return None
    if spec.type in ("BOOLEAN", "BOOL"):
        return "true" if value in (True, "true") else "false"
    if isinstance(value, (list, dict)) and spec.type != "MULTISELECT":
        return json.dumps(value)
    return value


def _field(spec) -> forms.Field:
    label = spec.displayName or spec.id
    needed = spec.required and spec.defaults is None
    hint = " ".join(part for part in (spec.description or "", HINTS.get(spec.type, "")) if part)
    common = {"label": label, "required": False, "help_text": f"{spec.type}{' (required)' if needed else ''}"
                                                               f"{': ' + hint if hint else ''}",
              "initial": _initial(spec)}
    kind = spec.type
    if kind == "FILE":
        return forms.FileField(**common)
    if kind in ("BOOLEAN", "BOOL"):
        return forms.ChoiceField(choices=[("", "—"), ("true", "true"), ("false", "false")], **common)
    if kind in ("SELECT", "ENUM") and spec.values:
        return forms.ChoiceField(choices=[("", "—")] + [(value, value) for value in spec.values], **common)
    if kind == "MULTISELECT" and spec.choices:
        return forms.MultipleChoiceField(choices=[(value, value) for value in spec.choices],
                                         widget=forms.CheckboxSelectMultiple, **common)
    if kind == "SECRET":
        return forms.CharField(widget=forms.PasswordInput(render_value=False), strip=False, **common)
    if kind in TEXT_TYPES:
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), strip=False, **common)
    return forms.CharField(strip=False, **common)


class ExecuteForm(forms.Form):
    """One field per input (named `input__<id>`, since ids may hold dots); empty fields are not sent,
    so that defaults apply."""

    def __init__(self, declared, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.declared = declared
        for spec in declared:
            self.fields[f"input__{spec.id}"] = _field(spec)

    def given(self) -> dict:
        values = {}
        for spec in self.declared:
            value = self.cleaned_data.get(f"input__{spec.id}")
            if value in (None, "", []):
                continue
            values[spec.id] = value
        return values

    def add_user_error(self, error: UserError) -> None:
        for fault in error.faults:
            name = f"input__{fault.path.removeprefix('inputs.')}"
            self.add_error(name if name in self.fields else None, fault.message)


def flow_execute_view(model_admin, request, actor: Actor, object_id):
    flow = model_admin.get_object(request, object_id)
    if flow is None:
        return model_admin._get_obj_does_not_exist_redirect(request, model_admin.opts, object_id)
    try:
        tenant_for(actor, flow.tenant.key, Role.DEVELOPER)
    except UserError as error:
        messages.error(request, error.message)
        return redirect(reverse("admin:flows_flow_change", args=[flow.pk]))
    declared = parse_flow_cached(flow.source).document.inputs
    form = ExecuteForm(declared, request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            execution = engine.execution_create(tenant_key=flow.tenant.key, namespace=flow.namespace,
                                                flow_id=flow.flow_id, inputs=form.given())
        except UserError as error:
            form.add_user_error(error)
        else:
            messages.success(request, f"Execution {execution.id} started.")
            return redirect(reverse("admin:flows_execution_change", args=[execution.pk]))
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.opts, "flow": flow, "form": form,
               "title": f"Execute {flow.namespace}.{flow.flow_id}", "has_inputs": bool(declared)}
    return TemplateResponse(request, "admin/flows/flow/execute.html", context)


# --- namespace files ---------------------------------------------------------------------------


class UploadForm(forms.Form):
    file = forms.FileField(label="File")
    directory = forms.CharField(label="Into directory", required=False,
                                help_text="A directory of the namespace, e.g. scripts; empty for the root.")


def namespace_files_view(model_admin, request, actor: Actor):
    source = request.POST if request.method == "POST" else request.GET
    tenant_key, namespace = source.get("tenant", ""), source.get("namespace", "").strip()
    directory = source.get("path", "").strip("/")
    choices = list(tenants_for(actor).order_by("key").values_list("key", flat=True))
    tenant_key = tenant_key or (choices[0] if choices else "")
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.opts,
               "title": "Namespace files", "tenants": choices, "tenant": tenant_key, "namespace": namespace,
               "path": directory, "upload": UploadForm(initial={"directory": directory}), "entries": None, "can_write": False}
    if not namespace:
        return TemplateResponse(request, "admin/flows/namespace/files.html", context)
    here = reverse("admin:flows_namespace_files")
    try:
        tenant = tenant_for(actor, tenant_key, Role.VIEWER)
        if request.method == "POST":
            tenant_for(actor, tenant_key, Role.DEVELOPER)
            if request.POST.get("action") == "delete":
                target = request.POST.get("target", "")
                count = services.namespace_file_delete(tenant_key=tenant_key, namespace=namespace, path=target)
                messages.success(request, f"Deleted '{target}' ({count} file(s)).")
            else:
                upload = UploadForm(request.POST, request.FILES)
                if not upload.is_valid():
                    raise UserError("choose a file to upload")
                folder = storage.clean_path(upload.cleaned_data["directory"], where="directory", allow_root=True)
                name = upload.cleaned_data["file"].name
                path = f"{folder}/{name}" if folder else name
                services.namespace_file_put(tenant_key=tenant_key, namespace=namespace, path=path,
                                            content=upload.cleaned_data["file"])
                messages.success(request, f"Stored '{path}'.")
            return redirect(f"{here}?tenant={tenant_key}&namespace={namespace}&path={directory}")
        if request.GET.get("download"):
            target = request.GET["download"]
            content = selectors.namespace_file_read(tenant=tenant, namespace=namespace, path=target)
            response = HttpResponse(content, content_type="application/octet-stream")
            response["Content-Disposition"] = f'attachment; filename="{target.rsplit("/", 1)[-1]}"'
            return response
        entries = selectors.namespace_files_list(tenant=tenant, namespace=namespace, path=directory)
        context["entries"] = [(entry, f"{directory}/{entry.name}" if directory else entry.name) for entry in entries]
        context["can_write"] = allowed(actor, Role.DEVELOPER, tenant.id)
        if directory:
            context["parent"] = directory.rsplit("/", 1)[0] if "/" in directory else ""
    except UserError as error:
        if request.method == "POST":
            messages.error(request, error.message)
            return redirect(f"{here}?tenant={tenant_key}&namespace={namespace}&path={directory}")
        context["error"] = error.message
    return TemplateResponse(request, "admin/flows/namespace/files.html", context)


# --- drawn pages (docs/admin.md): an execution's runs, timeline and logs; a flow's task tree; a
# worker group's load. Each reads a bounded number of rows in a fixed number of queries.

DEFAULT_GROUP_LABEL = "(default)"
SHOWN_TASK_RUNS = 500
SHOWN_LOG_LINES = 500
BRANCH_LABELS = {"then": "then", "else": "else", "defaults": "defaults", "errors": "errors"}


def _seconds(start, end) -> str:
    return drawing.duration_text((end - start).total_seconds()) if start and end else ""


def execution_page(execution) -> dict:
    """Context of an execution's page: task runs (table and timeline bars) and log lines, at most
    SHOWN_TASK_RUNS and SHOWN_LOG_LINES of them, masked as the API masks them (docs/inputs.md)."""
    now = timezone.now()
    secrets = masking.secret_values(execution.inputs)
    runs = selectors.execution_task_runs(execution, limit=SHOWN_TASK_RUNS)
    total_runs = len(runs) if len(runs) < SHOWN_TASK_RUNS else execution.task_runs.count()
    lines, total_lines = selectors.execution_logs(execution, size=SHOWN_LOG_LINES)
    try:
        declared = parse_flow_cached(execution.flow_revision.source).tasks_by_id
    except UserError:
        declared = {}
    rows, bars = [], []
    for run in runs:
        label = f"{run.task_id} [{run.value}]" if run.value is not None else run.task_id
        # Flowable tasks have no group: the executor runs them (as the API and the CLI show them).
        flowable = run.task_id in declared and declared[run.task_id].flowable
        group = "–" if flowable else run.worker_group or DEFAULT_GROUP_LABEL
        end = run.end_date or now
        rows.append({"run": run, "label": label, "group": group, "duration": _seconds(run.start_date, end),
                     "error": masking.mask_text(run.error, secrets)})
        bars.append(drawing.Bar(
            label=label, state=run.state,
            detail="run by the executor" if flowable else f"{group} · {run.worker_id or 'no worker yet'}",
            start=run.start_date or run.created, end=max(end, run.start_date or run.created),
            waited_from=run.created if run.start_date else None,
        ))
    origin = min([execution.start_date or execution.created] + [run.created for run in runs])
    until = max([execution.end_date or now] + [bar.end for bar in bars])
    return {
        "task_runs": rows, "task_runs_total": total_runs,
        "timeline": drawing.timeline_svg(bars, origin=origin, until=until) if bars else "",
        "log_lines": [(line, masking.mask_text(line.message, secrets)) for line in lines],
        "log_lines_total": total_lines,
    }


def flow_tree(flow) -> SafeString:
    """The flow's tasks drawn as a tree, each runnable labelled with the group its key resolves to
    and the rule that gave it (docs/routing.md)."""
    parsed = parse_flow_cached(flow.source)
    declared = declaring_worker_group(flow.source)
    namespace_cache: dict = {}

    def routed(holder, kind: str) -> str:
        group, rule = route_describe(holder=holder, document=parsed.document, tenant=flow.tenant,
                                     own_key_declared=holder.id in declared[f"{kind}s"],
                                     namespace_cache=namespace_cache, own_rule=kind)
        return f"{group or DEFAULT_GROUP_LABEL} ({rule})"

    def node(task, *, in_block: bool = False) -> drawing.Node:
        kind = task.type.rsplit(".", 1)[-1]
        if in_block:  # run by the worker its WorkingDirectory went to (docs/core-tasks.md)
            return drawing.Node(text=task.id, kind=kind, group="the block's worker")
        if not task.flowable and not task.block:
            return drawing.Node(text=task.id, kind=kind, group=routed(task, "task"))
        children = []
        lists = child_lists(task)
        # Switch: its cases, then defaults, then any flowable's errors last.
        lists.sort(key=lambda item: {"defaults": 1, "errors": 2}.get(item[0], 0))
        for name, tasks in lists:
            nodes = [node(child, in_block=task.block and name == "tasks") for child in tasks]
            if name == "tasks":
                children.extend(nodes)
            else:
                text = BRANCH_LABELS.get(name) or f"case {name.removeprefix('cases.')}"
                children.append(drawing.Node(text=text, branch=True, children=nodes))
        group = routed(task, "task") if task.block else ""  # a WorkingDirectory goes to its group whole
        return drawing.Node(text=task.id, kind=kind, children=children, group=group)

    roots = [node(task) for task in parsed.document.tasks]
    if parsed.document.errors:
        roots.append(drawing.Node(text="errors", branch=True, children=[node(t) for t in parsed.document.errors]))
    if parsed.document.triggers:
        # Polling triggers are evaluated on a worker of their group; the others by the scheduler or the web.
        roots.append(drawing.Node(text="triggers", branch=True, children=[
            drawing.Node(text=trigger.id, kind=trigger.type.rsplit(".", 1)[-1],
                         group=routed(trigger, "trigger") if trigger.polling else "")
            for trigger in parsed.document.triggers
        ]))
    return drawing.tree_svg(roots)


def worker_group_load(key: str) -> SafeString:
    """Waiting, running and alive workers of group `key` ('' the default group) over the last hour."""
    now = timezone.now()
    samples = selectors.worker_group_samples(key, since=now - timedelta(hours=1))
    return drawing.load_svg([((now - sample.at).total_seconds() / 60, sample.waiting, sample.running, sample.alive)
                             for sample in samples])
