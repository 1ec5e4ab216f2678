"""Routes of /api/v1/ (SPEC §7). Instance-wide paths come first: a tenant key fills the first
segment of every tenant-scoped path. Every route is documented in openapi.PATHS."""
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from . import views
from .http import route

app_name = "api"

urlpatterns = [
    path("openapi.json", route(auth=False, GET=views.openapi), name="openapi"),
    # Instance-wide
    path("tenants", route(GET=views.tenant_list, POST=views.tenant_create), name="tenants"),
    path("tenants/<str:tenant>", route(GET=views.tenant_get, PUT=views.tenant_update), name="tenant"),
    path(
        "instance/workergroups",
        route(GET=views.worker_group_list, POST=views.worker_group_create), name="workergroups",
    ),
    path(
        "instance/workergroups/<str:key>",
        route(GET=views.worker_group_get, PUT=views.worker_group_update, DELETE=views.worker_group_delete),
        name="workergroup",
    ),
    # Tenant-scoped: flows and namespaces
    path("<str:tenant>/flows", route(POST=views.flow_create), name="flows"),
    path("<str:tenant>/flows/validate", route(POST=views.flow_validate), name="flow-validate"),
    path(
        "<str:tenant>/flows/<str:namespace>/<str:flow_id>",
        route(GET=views.flow_get, PUT=views.flow_update, DELETE=views.flow_delete), name="flow",
    ),
    path(
        "<str:tenant>/flows/<str:namespace>/<str:flow_id>/revisions",
        route(GET=views.flow_revisions), name="flow-revisions",
    ),
    path(
        "<str:tenant>/namespaces/<str:namespace>",
        route(GET=views.namespace_get, PUT=views.namespace_update), name="namespace",
    ),
    # Tenant-scoped: executions. `search` comes before the execution id it would otherwise be
    # taken for; ids under `.../kill` and `.../logs` are UUIDs, so a flow named `kill` or `logs`
    # still reaches `executions/<namespace>/<flow_id>`.
    path("<str:tenant>/executions/search", route(GET=views.execution_search), name="execution-search"),
    path("<str:tenant>/executions/<str:execution_id>", route(GET=views.execution_get), name="execution"),
    path(
        "<str:tenant>/executions/<uuid:execution_id>/kill", route(DELETE=views.execution_kill),
        name="execution-kill",
    ),
    path(
        "<str:tenant>/executions/<uuid:execution_id>/logs", route(GET=views.execution_logs),
        name="execution-logs",
    ),
    path(
        "<str:tenant>/executions/<str:namespace>/<str:flow_id>", route(POST=views.execution_create),
        name="execution-create",
    ),
    # Triggers go here (SPEC §7), with their operations in openapi.PATHS.

    # Keep last: any other path under /api/v1/ is a JSON 404, not Django's HTML page.
    re_path(r"^(?P<path>.*)$", csrf_exempt(views.not_found)),
]
