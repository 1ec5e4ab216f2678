"""Worker groups with their live health, and the workers seen through heartbeats (read-only)."""
from django.contrib import admin

from flows.admin import DEFAULT_GROUP_LABEL, ReadOnlyAdminMixin, ServiceAdmin, ServiceForm, health_html

from .models import Worker, WorkerGroup
from .selectors import alive_since, worker_group_health
from .services import worker_group_create, worker_group_delete, worker_group_update


class WorkerGroupForm(ServiceForm):
    fault_fields = {"key": "key", "allowedTenants": "allowed_tenants"}

    class Meta:
        model = WorkerGroup
        fields = ["key", "description", "allowed_tenants"]
        help_texts = {
            "key": "The Celery queue its workers consume: celery -A project worker -Q KEY.",
            "allowed_tenants": "Tenants that may run tasks on this group; none selected = every tenant.",
        }

    def call_service(self):
        data = self.cleaned_data
        tenants = [tenant.key for tenant in data.get("allowed_tenants") or []]
        if self.instance.pk:
            return worker_group_update(key=self.instance.key, description=data.get("description", ""), allowed_tenants=tenants)
        return worker_group_create(key=data["key"], description=data.get("description", ""), allowed_tenants=tenants)


@admin.register(WorkerGroup)
class WorkerGroupAdmin(ServiceAdmin):
    form = WorkerGroupForm
    change_list_template = "admin/workers/workergroup/change_list.html"
    list_display = ("key", "description", "tenants", "health", "updated")
    search_fields = ("key", "description")
    filter_horizontal = ("allowed_tenants",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("allowed_tenants")

    def get_readonly_fields(self, request, obj=None):
        return ("key", "health", "created", "updated") if obj else ()

    def get_fields(self, request, obj=None):
        fields = ["key", "description", "allowed_tenants"]
        return fields + ["health", "created", "updated"] if obj else fields

    @admin.display(description="allowed tenants")
    def tenants(self, obj):
        return ", ".join(tenant.key for tenant in obj.allowed_tenants.all()) or "(all tenants)"

    @admin.display(description="health (live)")
    def health(self, obj):
        return health_html(worker_group_health([obj.key])[obj.key])

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "default_group_label": DEFAULT_GROUP_LABEL,
            "default_group_health": health_html(worker_group_health([""])[""]),
        }
        return super().changelist_view(request, extra_context=extra_context)

    def delete_model(self, request, obj):
        worker_group_delete(key=obj.key)

    def delete_queryset(self, request, queryset):
        for group in queryset:
            worker_group_delete(key=group.key)


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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
