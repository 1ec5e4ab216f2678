"""Two admin pages that are not a model's change form: a flow's *Execute* page (a form built from
its inputs, FILE inputs uploaded; docs/inputs.md) and a namespace's *Files* page (list, download,
upload, delete; docs/namespace-files.md). They parse input and call one service, as every admin
form does; flows.permissions decides who may (viewer reads, developer writes and executes)."""
import json

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from . import engine, selectors, services, storage
from .definition import parse_flow_cached
from .errors import UserError
from .models import Role
from .permissions import Actor, allowed, tenant_for, tenants_for

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
