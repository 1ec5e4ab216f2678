"""The product's UI: the Django admin. Forms parse input; services validate and store, exactly as
the API and the CLI do; selectors feed the read-only pages.

Who sees and changes what is decided by flows.permissions, as for the API (docs/security.md): a
staff user sees the rows of the tenants they belong to and changes them as their role allows;
superusers see and change everything. Django's model permissions are not used for these pages.
"""
import json

from django import forms
from django.contrib import admin
from django.db import transaction
from django.contrib.admin.utils import unquote
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from . import engine, masking
from .admin_pages import (
    DEFAULT_GROUP_LABEL, SHOWN_LOG_LINES, SHOWN_TASK_RUNS, execution_page, flow_execute_view, flow_tree,
    namespace_files_view, worker_group_load,
)
from .errors import UserError
from .models import (
    ApiToken, Execution, Flow, FlowRevision, LogLine, Membership, Namespace, Role, TaskRun, Tenant, TriggerState,
    DEFAULT_QUEUE, Worker, WorkerGroup,
)
from .permissions import Actor, actor_for_user, allowed, tenants_for, worker_groups_visible
from .selectors import DEFAULT_TENANT, alive_since, worker_group_health
from .services import (
    flow_delete, flow_upload, flow_validate, membership_remove, membership_set, namespace_set, tenant_create,
    tenant_update, worker_group_create, worker_group_delete, worker_group_drain, worker_group_resume,
    worker_group_update,
)
from .triggers import trigger_state_disable, trigger_state_enable, trigger_state_unlock

INHERIT_LABEL = "(not set: inherit)"


class _DryRun(Exception):
    pass


def actor_of(request) -> Actor:
    """The logged-in user's roles, read once per request."""
    if not hasattr(request, "flows_actor"):
        request.flows_actor = actor_for_user(request.user)
    return request.flows_actor


class ServiceForm(forms.ModelForm):
    """An admin form whose object is stored by a service, never by `form.save()`.

    Subclasses define `call_service()`, which stores the form's data through the service and returns
    the stored object. `clean()` runs it as a dry run (its transaction is rolled back), so the form
    shows the same errors as the API and the CLI; `ServiceAdmin.save_model()` then runs it for real.
    `actor` (set by the admin for each request) limits the tenants and worker groups it offers.
    """

    # Fault path (as the service names it) → form field that shows it; others go on top of the form.
    fault_fields: dict[str, str] = {}
    actor: Actor | None = None
    # The role needed in the tenant a new row is added to.
    tenant_role: str = Role.ADMIN

    def check_with_service(self) -> None:
        try:
            with transaction.atomic():
                self.call_service()
                raise _DryRun
        except _DryRun:
            pass

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            try:
                self.check_with_service()
            except UserError as error:
                self.add_user_error(error)
        return cleaned

    def add_user_error(self, error: UserError, field: str | None = None) -> None:
        for fault in error.faults:
            target = field or self.fault_fields.get(fault.path)
            if target in self.fields:
                self.add_error(target, fault.message if target != field else str(fault))
            else:
                self.add_error(None, str(fault))

    def _post_clean(self):
        # The service is the authority on what is valid and builds the stored object itself:
        # the model instance is neither filled from the form nor checked a second time.
        pass


class TenantScopedAdmin(admin.ModelAdmin):
    """Rows that belong to a tenant (`tenant_path` leads from a row to its tenant, "" for a tenant
    itself): a staff user sees those of their tenants; adding, changing and deleting needs
    `change_role` in the row's tenant (None: a superuser)."""

    tenant_path = "tenant"
    change_role: str | None = Role.ADMIN

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        actor = actor_of(request)
        if actor.is_superuser:
            return rows
        return rows.filter(**{f"{self.tenant_path or 'id'}__in": tenants_for(actor)})

    def tenant_id_of(self, obj) -> int:
        for name in self.tenant_path.split("__") if self.tenant_path else ():
            obj = getattr(obj, name, None)
        return obj.id if obj is not None else 0  # no tenant: a superuser's row

    def _allowed(self, request, role, obj=None) -> bool:
        return allowed(actor_of(request), role, None if obj is None else self.tenant_id_of(obj))

    def has_module_permission(self, request):
        return self._allowed(request, Role.VIEWER)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request, Role.VIEWER, obj)

    def has_add_permission(self, request):
        return self._allowed(request, self.change_role)

    def has_change_permission(self, request, obj=None):
        return self._allowed(request, self.change_role, obj)

    def has_delete_permission(self, request, obj=None):
        return self._allowed(request, self.change_role, obj)


class SuperuserAdmin(admin.ModelAdmin):
    """Instance-wide pages: a superuser's only."""

    def has_module_permission(self, request):
        return actor_of(request).is_superuser

    def has_view_permission(self, request, obj=None):
        return actor_of(request).is_superuser

    def has_add_permission(self, request):
        return actor_of(request).is_superuser

    def has_change_permission(self, request, obj=None):
        return actor_of(request).is_superuser

    def has_delete_permission(self, request, obj=None):
        return actor_of(request).is_superuser


class ServiceAdmin(admin.ModelAdmin):
    """Saves through `form.call_service()`; the form's instance only carries the stored row back."""

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.actor = actor_of(request)
        return form

    def save_model(self, request, obj, form, change):
        stored = form.call_service()
        obj.pk = stored.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        # Many-to-many fields were stored by the service; inlines are read-only.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


def tenant_key_choices(actor: Actor | None, role: str) -> list[tuple[str, str]]:
    """The tenants in which the admin's user has `role` (every tenant outside a request)."""
    tenants = Tenant.objects.all() if actor is None else tenants_for(actor, role)
    return [(key, key) for key in tenants.order_by("key").values_list("key", flat=True)]


def _tenant_field(form: ServiceForm) -> None:
    """A stored object keeps its tenant; a new one picks it, among those the user may add it to."""
    if form.instance.pk:
        del form.fields["tenant_key"]
    else:
        form.fields["tenant_key"].choices = tenant_key_choices(form.actor, form.tenant_role)
        form.fields["tenant_key"].initial = DEFAULT_TENANT


def worker_group_choices(current: str, blank_label: str, actor: Actor | None = None) -> list[tuple[str, str]]:
    groups = WorkerGroup.objects.all() if actor is None else worker_groups_visible(actor)
    keys = set(groups.values_list("key", flat=True)) | ({current} if current else set())
    return [("", blank_label)] + [(key, key) for key in sorted(keys)]


def _defaults_fields(form: ServiceForm, blank_label: str) -> None:
    current = form.instance.worker_group_key if form.instance.pk else ""
    if "worker_group_key" in form.fields:
        form.fields["worker_group_key"] = forms.ChoiceField(
            label="Default worker group", required=False,
            choices=worker_group_choices(current, blank_label, form.actor), initial=current,
        )
    if "fallback" in form.fields:
        form.fields["fallback"].help_text = "What a task run does when its group has no alive worker (empty = WAIT)."


DEFAULTS_FAULT_FIELDS = {"workerGroup.key": "worker_group_key", "workerGroup.fallback": "fallback"}


# --- tenants and namespaces ------------------------------------------------------------------


class TenantForm(ServiceForm):
    fault_fields = {"key": "key", **DEFAULTS_FAULT_FIELDS}

    class Meta:
        model = Tenant
        fields = ["key", "worker_group_key", "fallback"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _defaults_fields(self, f"{DEFAULT_GROUP_LABEL} worker group")

    def call_service(self):
        data = self.cleaned_data
        defaults = {"worker_group_key": data.get("worker_group_key", ""), "fallback": data.get("fallback", "")}
        if self.instance.pk:
            return tenant_update(key=self.instance.key, **defaults)
        return tenant_create(key=data["key"], **defaults)


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin, ServiceAdmin):
    """Members see their tenants; creating and changing tenants is a superuser's (an instance resource)."""

    tenant_path = ""
    change_role = None
    form = TenantForm
    list_display = ("key", "default_worker_group", "fallback", "updated")
    search_fields = ("key",)

    def get_readonly_fields(self, request, obj=None):
        return ("key",) if obj else ()

    @admin.display(description="default worker group", ordering="worker_group_key")
    def default_worker_group(self, obj):
        return obj.worker_group_key or DEFAULT_GROUP_LABEL


class NamespaceForm(ServiceForm):
    tenant_key = forms.ChoiceField(label="Tenant")
    fault_fields = {"namespace": "name", **DEFAULTS_FAULT_FIELDS}

    class Meta:
        model = Namespace
        fields = ["name", "worker_group_key", "fallback"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _tenant_field(self)
        if "name" in self.fields:
            self.fields["name"].help_text = "Dotted name, e.g. company.team; sub-namespaces inherit its defaults."
        _defaults_fields(self, INHERIT_LABEL)

    def call_service(self):
        data = self.cleaned_data
        if self.instance.pk:
            tenant_key, name = self.instance.tenant.key, self.instance.name
        else:
            tenant_key, name = data["tenant_key"], data["name"]
        return namespace_set(
            tenant_key=tenant_key, name=name,
            worker_group_key=data.get("worker_group_key", ""), fallback=data.get("fallback", ""),
        )


@admin.register(Namespace)
class NamespaceAdmin(TenantScopedAdmin, ServiceAdmin):
    change_role = Role.ADMIN
    form = NamespaceForm
    list_display = ("name", "tenant", "default_worker_group", "default_fallback", "updated", "files_link")
    list_filter = (("tenant", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("name",)
    list_select_related = ("tenant",)

    def get_urls(self):
        files = self.admin_site.admin_view(lambda request: namespace_files_view(self, request, actor_of(request)))
        return [path("files/", files, name="flows_namespace_files"), *super().get_urls()]

    @admin.display(description="files")
    def files_link(self, obj):
        """The namespace's files (docs/namespace-files.md)."""
        url = reverse("admin:flows_namespace_files")
        return format_html('<a href="{}?tenant={}&namespace={}">files</a>', url, obj.tenant.key, obj.name)

    def get_fields(self, request, obj=None):
        if obj:
            return ["tenant", "name", "worker_group_key", "fallback"]
        return ["tenant_key", "name", "worker_group_key", "fallback"]

    def get_readonly_fields(self, request, obj=None):
        return ("tenant", "name") if obj else ()

    @admin.display(description="default worker group", ordering="worker_group_key")
    def default_worker_group(self, obj):
        return obj.worker_group_key or INHERIT_LABEL

    @admin.display(description="default fallback", ordering="fallback")
    def default_fallback(self, obj):
        return obj.fallback or INHERIT_LABEL


# --- flows -------------------------------------------------------------------------------------


class FlowForm(ServiceForm):
    """Upload a YAML file or paste the source; validation is `flow_validate`, storing is `flow_upload`."""

    tenant_role = Role.DEVELOPER
    tenant_key = forms.ChoiceField(label="Tenant")
    yaml_file = forms.FileField(
        label="YAML file", required=False, help_text="A flow file (.yaml); when given, it replaces the source below.",
    )
    source = forms.CharField(
        label="YAML source", required=False, strip=False,
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "spellcheck": "false", "style": "font-family: monospace"}),
    )

    class Meta:
        model = Flow
        fields = ["source"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _tenant_field(self)

    @property
    def chosen_tenant_key(self) -> str:
        return self.instance.tenant.key if self.instance.pk else self.cleaned_data["tenant_key"]

    def clean(self):
        cleaned = super(ServiceForm, self).clean()  # validation is flow_validate's, not a dry run
        if self.errors:
            return cleaned
        upload = cleaned.get("yaml_file")
        origin = "yaml_file" if upload else "source"
        if upload:
            try:
                cleaned["source"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("yaml_file", "the file is not UTF-8 text")
                return cleaned
        else:
            # Browsers send pasted text with CRLF line ends.
            cleaned["source"] = (cleaned.get("source") or "").replace("\r\n", "\n")
        if not cleaned["source"].strip():
            self.add_error(origin, "Upload a YAML file or paste the flow's YAML source.")
            return cleaned
        try:
            parsed = flow_validate(source=cleaned["source"], tenant_key=self.chosen_tenant_key)
        except UserError as error:
            self.add_user_error(error, field=origin)
            return cleaned
        if self.instance.pk and (parsed.namespace, parsed.flow_id) != (self.instance.namespace, self.instance.flow_id):
            self.add_error(origin, (
                f"the document declares '{parsed.namespace}.{parsed.flow_id}' but this is "
                f"'{self.instance.namespace}.{self.instance.flow_id}': add it as a new flow instead"
            ))
        return cleaned

    def call_service(self):
        if self.instance.pk:
            return flow_upload(
                source=self.cleaned_data["source"], tenant_key=self.chosen_tenant_key,
                namespace=self.instance.namespace, flow_id=self.instance.flow_id,
            )
        return flow_upload(source=self.cleaned_data["source"], tenant_key=self.chosen_tenant_key)


class NoEditMixin:
    """Rows written by the engine or by services only: nothing to add or change by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyAdminMixin(NoEditMixin):
    def has_delete_permission(self, request, obj=None):
        return False


class ParentViewMixin:
    """An inline is seen by whoever sees its parent row (`obj` is the parent)."""

    def has_view_permission(self, request, obj=None):
        return self.admin_site._registry[self.parent_model].has_view_permission(request, obj)


class FlowRevisionInline(ParentViewMixin, NoEditMixin, admin.TabularInline):
    model = FlowRevision
    fields = ("revision", "created", "source_text")
    readonly_fields = fields
    ordering = ("-revision",)
    extra = 0
    can_delete = False

    @admin.display(description="source")
    def source_text(self, obj):
        lines = obj.source.count("\n") + 1
        return format_html("<details><summary>{} lines</summary><pre>{}</pre></details>", lines, obj.source)


@admin.register(Flow)
class FlowAdmin(TenantScopedAdmin, ServiceAdmin):
    change_role = Role.DEVELOPER
    form = FlowForm
    list_display = ("flow_id", "namespace", "tenant", "revision", "disabled", "deleted", "updated")
    list_filter = (("tenant", admin.RelatedOnlyFieldListFilter), "deleted", "disabled", "namespace")
    search_fields = ("flow_id", "namespace")
    list_select_related = ("tenant",)
    inlines = [FlowRevisionInline]
    change_form_template = "admin/flows/flow/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        flow = self.get_object(request, unquote(object_id))
        if flow is not None:
            try:
                extra_context = {**(extra_context or {}), "task_tree": flow_tree(flow)}
            except UserError as error:
                extra_context = {**(extra_context or {}), "task_tree_error": str(error)}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        execute = self.admin_site.admin_view(
            lambda request, object_id: flow_execute_view(self, request, actor_of(request), object_id))
        return [path("<path:object_id>/execute/", execute, name="flows_flow_execute"), *super().get_urls()]

    @admin.display(description="execute")
    def execute_link(self, obj):
        """The page that starts an execution with the flow's inputs (docs/inputs.md)."""
        return format_html('<a href="{}">Execute with inputs…</a>', reverse("admin:flows_flow_execute", args=[obj.pk]))

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["tenant_key", "yaml_file", "source"]})]
        return [
            (None, {"fields": ["tenant", "namespace", "flow_id", "revision", "disabled", "deleted", "updated",
                               "execute_link"]}),
            ("Upload a new revision", {"fields": ["yaml_file", "source"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        return ("tenant", "namespace", "flow_id", "revision", "disabled", "deleted", "updated",
                "execute_link") if obj else ()

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def delete_model(self, request, obj):
        if not obj.deleted:
            flow_delete(tenant_key=obj.tenant.key, namespace=obj.namespace, flow_id=obj.flow_id)

    def delete_queryset(self, request, queryset):
        for flow in queryset.select_related("tenant"):
            self.delete_model(request, flow)


# --- executions and logs: read-only ------------------------------------------------------------


class WorkerGroupFilter(admin.SimpleListFilter):
    """Task runs (or executions with a task run) of one worker group; `default` is the default group."""

    title = "worker group"
    parameter_name = "group"

    def lookups(self, request, model_admin):
        keys = worker_groups_visible(actor_of(request)).values_list("key", flat=True)
        return [(DEFAULT_QUEUE, DEFAULT_GROUP_LABEL), *((key, key) for key in keys)]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        key = "" if self.value() == DEFAULT_QUEUE else self.value()
        if queryset.model is Execution:
            return queryset.filter(Exists(TaskRun.objects.filter(execution=OuterRef("pk"), worker_group=key)))
        return queryset.filter(worker_group=key)


class OperateMixin:
    """Actions that call the engine on each selected row the user may operate (a developer of its
    tenant, docs/security.md); what the engine refuses is listed, the rest is done."""

    def has_operate_permission(self, request):
        return self._allowed(request, Role.DEVELOPER)

    def _operate(self, request, queryset, act, done: str) -> None:
        changed, refused = 0, []
        for row in queryset:
            if not self._allowed(request, Role.DEVELOPER, row):
                continue
            try:
                act(row)
                changed += 1
            except UserError as error:
                refused.append(f"{row.pk}: {error.message}")
        self.message_user(request, f"{changed} {done}.")
        if refused:
            self.message_user(request, "Refused: " + "; ".join(refused), level="error")


@admin.register(Execution)
class ExecutionAdmin(OperateMixin, ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ("id", "flow_id", "namespace", "tenant", "revision", "state", "created", "start_date", "end_date")
    list_filter = ("state", ("tenant", admin.RelatedOnlyFieldListFilter), "namespace", "flow_id", WorkerGroupFilter)
    search_fields = ("=id", "flow_id", "namespace")
    list_select_related = ("tenant", "flow_revision")
    date_hierarchy = "created"
    fields = ("id", "tenant", "namespace", "flow_id", "revision", "state", "created", "start_date", "end_date",
              "inputs_shown", "outputs_shown", "labels", "trigger", "state_history", "logs_link")
    readonly_fields = fields
    change_form_template = "admin/flows/execution/change_form.html"
    actions = ["resume", "restart", "replay"]

    @admin.action(description="Resume the selected paused executions (onResume inputs take their defaults)",
                  permissions=["operate"])
    def resume(self, request, queryset):
        self._operate(request, queryset, lambda execution: engine.execution_resume(execution_id=execution.pk),
                      "execution(s) resumed")

    @admin.action(description="Restart the selected ended executions from their failed task runs",
                  permissions=["operate"])
    def restart(self, request, queryset):
        self._operate(request, queryset, lambda execution: engine.execution_restart(execution_id=execution.pk),
                      "execution(s) restarted")

    @admin.action(description="Replay the selected ended executions from the start, as new executions",
                  permissions=["operate"])
    def replay(self, request, queryset):
        self._operate(request, queryset, lambda execution: engine.execution_replay(execution_id=execution.pk),
                      "execution(s) replayed")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Task runs, their timeline and the logs, bounded (docs/admin.md)."""
        execution = self.get_object(request, unquote(object_id))
        if execution is not None:
            extra_context = {**(extra_context or {}), **execution_page(execution),
                             "shown_task_runs": SHOWN_TASK_RUNS, "shown_log_lines": SHOWN_LOG_LINES}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="revision", ordering="flow_revision__revision")
    def revision(self, obj):
        return obj.flow_revision.revision

    @admin.display(description="inputs")
    def inputs_shown(self, obj):
        """SECRET inputs masked (docs/inputs.md)."""
        return json.dumps(masking.hide(obj.inputs), ensure_ascii=False)

    @admin.display(description="outputs")
    def outputs_shown(self, obj):
        """The flow's outputs once it ended (docs/flow-properties.md); SECRET values masked."""
        return "-" if obj.outputs is None else json.dumps(masking.hide(obj.outputs), ensure_ascii=False)

    @admin.display(description="logs")
    def logs_link(self, obj):
        url = reverse("admin:flows_logline_changelist")
        return format_html('<a href="{}?execution__id__exact={}">{} log lines</a>', url, obj.pk, obj.logs.count())


@admin.register(TaskRun)
class TaskRunAdmin(OperateMixin, ReadOnlyAdminMixin, TenantScopedAdmin):
    """Every task run, filtered by state and worker group (docs/admin.md)."""

    tenant_path = "execution__tenant"
    list_display = ("task_id", "value", "execution_link", "state", "group", "worker_id", "attempt", "start_date",
                    "end_date")
    list_filter = ("state", WorkerGroupFilter)
    search_fields = ("task_id", "worker_id", "=execution__id")
    list_select_related = ("execution",)
    fields = ("task_id", "task_type", "value", "execution_link", "state", "group", "fallback", "worker_id", "attempt",
              "created", "start_date", "end_date", "error_shown")
    readonly_fields = fields
    actions = ["replay_from"]

    @admin.action(description="Replay each selected task run's execution from it, as a new execution",
                  permissions=["operate"])
    def replay_from(self, request, queryset):
        self._operate(request, queryset,
                      lambda run: engine.execution_replay(execution_id=run.execution_id, taskrun_id=run.pk),
                      "execution(s) replayed")

    @admin.display(description="execution")
    def execution_link(self, obj):
        url = reverse("admin:flows_execution_change", args=[obj.execution_id])
        return format_html('<a href="{}">{}.{}</a>', url, obj.execution.namespace, obj.execution.flow_id)

    @admin.display(description="worker group", ordering="worker_group")
    def group(self, obj):
        return obj.worker_group or DEFAULT_GROUP_LABEL

    @admin.display(description="error")
    def error_shown(self, obj):
        """SECRET inputs masked, as the API masks them (docs/inputs.md)."""
        return masking.mask_text(obj.error, masking.secret_values(obj.execution.inputs))


@admin.register(LogLine)
class LogLineAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Log lines of executions and of triggers (docs/triggers.md)."""

    tenant_path = "execution__tenant"
    list_display = ("timestamp", "level", "execution", "trigger_state", "task_id", "message")
    list_filter = ("level",)
    search_fields = ("message", "task_id")
    list_select_related = ("execution", "trigger_state__flow")

    def get_queryset(self, request):
        rows = admin.ModelAdmin.get_queryset(self, request)
        actor = actor_of(request)
        if actor.is_superuser:
            return rows
        tenants = tenants_for(actor)
        return rows.filter(Q(execution__tenant__in=tenants) | Q(trigger_state__flow__tenant__in=tenants))

    def tenant_id_of(self, obj) -> int:
        if obj.execution_id is None and obj.trigger_state_id is not None:
            return obj.trigger_state.flow.tenant_id
        return super().tenant_id_of(obj)


# --- trigger state (docs/triggers.md) ------------------------------------------------------------


@admin.register(TriggerState)
class TriggerStateAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Written by the scheduler and the workers; here a developer of the flow's tenant disables,
    enables or unlocks a trigger."""

    tenant_path = "flow__tenant"
    list_display = ("trigger_id", "flow", "kind", "disabled", "next_date", "last_date", "worker_id", "last_result",
                    "last_error", "lock_owner")
    list_filter = ("disabled", "trigger_type", ("flow__tenant", admin.RelatedOnlyFieldListFilter))
    search_fields = ("trigger_id", "flow__flow_id", "flow__namespace")
    list_select_related = ("flow__tenant",)
    fields = ("flow", "trigger_id", "trigger_type", "disabled", "next_date", "last_date", "evaluated", "worker_id",
              "last_result", "last_error", "last_execution", "evaluation", "published", "lock_owner", "locked",
              "definition", "memory", "logs_link", "created", "updated")
    readonly_fields = fields
    actions = ["disable", "enable", "unlock"]

    @admin.display(description="type", ordering="trigger_type")
    def kind(self, obj):
        return obj.trigger_type.rsplit(".", 2)[-2] + "." + obj.trigger_type.rsplit(".", 1)[-1]

    @admin.display(description="outputs")
    def outputs_shown(self, obj):
        """The flow's outputs once it ended (docs/flow-properties.md); SECRET values masked."""
        return "-" if obj.outputs is None else json.dumps(masking.hide(obj.outputs), ensure_ascii=False)

    @admin.display(description="logs")
    def logs_link(self, obj):
        url = reverse("admin:flows_logline_changelist")
        return format_html('<a href="{}?trigger_state__id__exact={}">{} log lines</a>', url, obj.pk, obj.logs.count())

    def has_trigger_permission(self, request):
        return self._allowed(request, Role.DEVELOPER)

    def _act(self, request, queryset, service, done: str) -> None:
        changed = 0
        for state in queryset.select_related("flow"):
            if self._allowed(request, Role.DEVELOPER, state):
                service(state_id=state.pk)
                changed += 1
        self.message_user(request, f"{changed} trigger(s) {done}.")

    @admin.action(description="Disable the selected triggers", permissions=["trigger"])
    def disable(self, request, queryset):
        self._act(request, queryset, trigger_state_disable, "disabled")

    @admin.action(description="Enable the selected triggers", permissions=["trigger"])
    def enable(self, request, queryset):
        self._act(request, queryset, trigger_state_enable, "enabled")

    @admin.action(description="Unlock the selected triggers (forget the evaluation under way)", permissions=["trigger"])
    def unlock(self, request, queryset):
        self._act(request, queryset, trigger_state_unlock, "unlocked")


@admin.register(ApiToken)
class ApiTokenAdmin(NoEditMixin, admin.ModelAdmin):
    """Tokens are created with `manage.py token create USERNAME`; here they can be seen and revoked,
    by a superuser, or by their own user."""

    list_display = ("user", "digest_prefix", "narrowed_to", "created", "last_used")
    fields = ("user", "digest_prefix", "narrowed_to", "created", "last_used")
    readonly_fields = fields

    def get_queryset(self, request):
        tokens = super().get_queryset(request).select_related("user").prefetch_related("tenants")
        return tokens if actor_of(request).is_superuser else tokens.filter(user=request.user)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (
            obj is None or actor_of(request).is_superuser or obj.user_id == request.user.id)

    has_delete_permission = has_view_permission

    @admin.display(description="token digest")
    def digest_prefix(self, obj):
        return f"{obj.digest[:8]}…"

    @admin.display(description="narrowed to")
    def narrowed_to(self, obj):
        tenants = "all the user's tenants" if obj.all_tenants else ", ".join(t.key for t in obj.tenants.all()) or "none"
        return f"{tenants}; {obj.role or 'the user’s roles'}" if obj.narrowed else "-"


class MembershipForm(ServiceForm):
    """Give a user a role in a tenant: `membership_set`, as `manage.py member add`."""

    username = forms.CharField(label="User", help_text="A username; the user is created if needed.")
    tenant_key = forms.ChoiceField(label="Tenant")
    fault_fields = {"username": "username", "role": "role"}

    class Meta:
        model = Membership
        fields = ["role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            del self.fields["username"]
        _tenant_field(self)

    def call_service(self):
        data = self.cleaned_data
        if self.instance.pk:
            username, tenant_key = self.instance.user.username, self.instance.tenant.key
        else:
            username, tenant_key = data["username"], data["tenant_key"]
        return membership_set(username=username, tenant_key=tenant_key, role=data["role"])


@admin.register(Membership)
class MembershipAdmin(SuperuserAdmin, ServiceAdmin):
    """Who belongs to which tenant, with which role; a superuser's page (docs/security.md)."""

    form = MembershipForm
    list_display = ("user", "tenant", "role", "updated")
    list_filter = ("role", "tenant")
    search_fields = ("user__username", "tenant__key")
    list_select_related = ("user", "tenant")

    def get_fields(self, request, obj=None):
        return ["user", "tenant", "role"] if obj else ["username", "tenant_key", "role"]

    def get_readonly_fields(self, request, obj=None):
        return ("user", "tenant") if obj else ()

    def delete_model(self, request, obj):
        membership_remove(username=obj.user.username, tenant_key=obj.tenant.key)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("user", "tenant"):
            self.delete_model(request, membership)


def health_html(health: dict):
    """One group's health (flows/selectors.py, worker_group_health): alive workers with hostnames
    (drained ones marked), queued and running task runs (the latter those of the tenants the page's
    user belongs to, unless a superuser), the oldest wait, and a flag when work waits with no worker."""
    hostnames = format_html_join(
        ", ", "{}{}", ((w["hostname"], " (drained)" if w["drained"] else "") for w in health["aliveWorkers"]),
    )
    alive = health["alive"]
    colour = "green" if alive else ("#ba2121" if health["flagged"] else "inherit")
    oldest = health["oldestQueuedSince"]
    return format_html(
        '<strong style="color: {}">{} alive</strong>{}{}<br>{} queued{}, {} running{}{}',
        colour, alive, format_html(": {}", hostnames) if health["aliveWorkers"] else "",
        " — DRAINED" if health["drained"] else "", health["queued"],
        f" (oldest {(timezone.now() - oldest).total_seconds():.0f}s)" if oldest else "", health["running"],
        format_html(", limit {}", health["concurrencyLimit"]) if health["concurrencyLimit"] else "",
        format_html('<br><strong style="color: #ba2121">FLAGGED: work waits and no worker may take it</strong>')
        if health["flagged"] else "",
    )


# --- worker groups, with their live health, and workers (read-only) -----------------------------


class WorkerGroupForm(ServiceForm):
    fault_fields = {"key": "key", "allowedTenants": "allowed_tenants", "concurrencyLimit": "concurrency_limit"}

    class Meta:
        model = WorkerGroup
        fields = ["key", "description", "allowed_tenants", "concurrency_limit", "init_script"]
        help_texts = {
            "key": "The Celery queue its workers consume: celery -A project worker -Q KEY.",
            "allowed_tenants": "Tenants that may run tasks on this group; none selected = every tenant.",
            "concurrency_limit": "At most this many task runs RUNNING at once across the group; empty = no limit. "
                                 "Applies at once.",
            "init_script": "A shell script each worker of the group runs once at start, before it takes work.",
        }

    def call_service(self):
        data = self.cleaned_data
        fields = {"description": data.get("description", ""), "concurrency_limit": data.get("concurrency_limit"),
                  "init_script": data.get("init_script", ""),
                  "allowed_tenants": [tenant.key for tenant in data.get("allowed_tenants") or []]}
        if self.instance.pk:
            return worker_group_update(key=self.instance.key, **fields)
        return worker_group_create(key=data["key"], **fields)


@admin.register(WorkerGroup)
class WorkerGroupAdmin(ServiceAdmin):
    """An instance resource: a superuser's to change. Members see the groups open to their tenants,
    with only their tenants named and only their task runs counted (as the API shows them)."""

    form = WorkerGroupForm
    change_list_template = "admin/flows/workergroup/change_list.html"
    change_form_template = "admin/flows/workergroup/change_form.html"
    list_display = ("key", "description", "tenants", "health", "updated")
    search_fields = ("key", "description")
    filter_horizontal = ("allowed_tenants",)
    actions = ["drain", "resume"]

    @admin.action(description="Drain the selected groups (finish what runs, take no new work)",
                  permissions=["change"])
    def drain(self, request, queryset):
        for group in queryset:
            worker_group_drain(key=group.key)
        self.message_user(request, f"{queryset.count()} worker group(s) drained (docs/operations.md).")

    @admin.action(description="Resume the selected groups", permissions=["change"])
    def resume(self, request, queryset):
        for group in queryset:
            worker_group_resume(key=group.key)
        self.message_user(request, f"{queryset.count()} worker group(s) resumed.")

    def get_queryset(self, request):
        actor = actor_of(request)
        tenants = None if actor.is_superuser else tenants_for(actor)
        # The tenants each group allows, as far as this user may know them.
        named = Tenant.objects.all() if tenants is None else tenants
        return worker_groups_visible(actor).prefetch_related(
            Prefetch("allowed_tenants", queryset=named.order_by("key"), to_attr="named"))

    def _health_of(self, request, keys: list[str]) -> dict:
        actor = actor_of(request)
        return worker_group_health(keys, tenants=None if actor.is_superuser else tenants_for(actor))

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        health = self._health_of(request, [group.key for group in changelist.result_list])
        for group in changelist.result_list:
            group.health_now = health[group.key]
        return changelist

    def get_object(self, request, object_id, from_field=None):
        group = super().get_object(request, object_id, from_field)
        if group is not None:
            group.health_now = self._health_of(request, [group.key])[group.key]
        return group

    def has_module_permission(self, request):
        return allowed(actor_of(request), Role.VIEWER)

    def has_view_permission(self, request, obj=None):
        return allowed(actor_of(request), Role.VIEWER)

    def has_add_permission(self, request):
        return actor_of(request).is_superuser

    def has_change_permission(self, request, obj=None):
        return actor_of(request).is_superuser

    def has_delete_permission(self, request, obj=None):
        return actor_of(request).is_superuser

    def get_readonly_fields(self, request, obj=None):
        if not actor_of(request).is_superuser:
            return ("key", "description", "tenants", "health", "created", "updated")
        return ("key", "health", "created", "updated") if obj else ()

    def get_fields(self, request, obj=None):
        if not actor_of(request).is_superuser:
            return ["key", "description", "tenants", "health", "created", "updated"]
        fields = ["key", "description", "allowed_tenants", "concurrency_limit", "init_script"]
        return fields + ["health", "created", "updated"] if obj else fields

    @admin.display(description="allowed tenants")
    def tenants(self, obj):
        return ", ".join(tenant.key for tenant in obj.named) or "(all tenants)"

    @admin.display(description="health (live)")
    def health(self, obj):
        return health_html(obj.health_now)

    def changelist_view(self, request, extra_context=None):
        actor = actor_of(request)
        tenants = None if actor.is_superuser else tenants_for(actor)
        extra_context = {
            **(extra_context or {}),
            "default_group_label": DEFAULT_GROUP_LABEL,
            "default_group_health": health_html(worker_group_health([""], tenants=tenants)[""]),
            "default_group_load": worker_group_load("") if actor.is_superuser else "",
        }
        return super().changelist_view(request, extra_context=extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The load chart counts every tenant's task runs: a superuser's only (docs/admin.md)."""
        group = self.get_object(request, unquote(object_id))
        if group is not None and actor_of(request).is_superuser:
            extra_context = {**(extra_context or {}), "load": worker_group_load(group.key)}
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_model(self, request, obj):
        worker_group_delete(key=obj.key)

    def delete_queryset(self, request, queryset):
        for group in queryset:
            worker_group_delete(key=group.key)


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdminMixin, SuperuserAdmin):
    """Workers name the queues they consume, restricted groups' too: a superuser's page."""

    list_display = ("hostname", "group_list", "pid", "concurrency", "running", "last_heartbeat", "alive")
    search_fields = ("hostname",)
    fields = ("hostname", "group_list", "pid", "concurrency", "running", "first_seen", "last_heartbeat", "alive")
    readonly_fields = fields

    @admin.display(description="groups (queues)")
    def group_list(self, obj):
        return ", ".join(obj.groups)

    @admin.display(description="alive", boolean=True)
    def alive(self, obj):
        return obj.last_heartbeat >= alive_since()
