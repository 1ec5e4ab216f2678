"""Routing resolution (docs/routing.md), service level: task → flow → namespace (nearest) → tenant → default."""
import pytest

from flows.definition import parse_flow
from flows.routing import RoutingError, route_resolve
from flows.selectors import tenant_get
from flows.services import namespace_set, tenant_create, tenant_update, worker_group_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def groups():
    for key in ("gpu", "cpu", "ns", "tenantgroup"):
        worker_group_create(key=key)


def _route(source: str, task_id: str = "t", tenant: str = "main", context: dict | None = None):
    parsed = parse_flow(source)
    return route_resolve(holder=parsed.tasks_by_id[task_id], document=parsed.document, tenant=tenant_get(tenant),
                         context=context or {})


TASK = "tasks:\n  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n"


def test_task_key_wins_over_flow_namespace_and_tenant(groups):
    namespace_set(tenant_key="main", name="a", worker_group_key="ns", fallback="CANCEL")
    tenant_update(key="main", worker_group_key="tenantgroup", fallback="FAIL")
    source = "id: f\nnamespace: a.b\nworkerGroup: {key: cpu}\n" + TASK + "    workerGroup: {key: gpu}\n"
    route = _route(source)
    assert (route.key, route.fallback) == ("gpu", "CANCEL")


def test_flow_level_then_nearest_namespace_then_tenant(groups):
    tenant_update(key="main", worker_group_key="tenantgroup", fallback="FAIL")
    assert _route("id: f\nnamespace: a.b\nworkerGroup: {key: cpu}\n" + TASK).key == "cpu"
    assert _route("id: f\nnamespace: a.b\n" + TASK).key == "tenantgroup"
    namespace_set(tenant_key="main", name="a", worker_group_key="ns")
    namespace_set(tenant_key="main", name="a.b", fallback="CANCEL")
    route = _route("id: f\nnamespace: a.b.c\n" + TASK)
    assert (route.key, route.fallback) == ("ns", "CANCEL")


def test_no_key_anywhere_or_a_blank_rendered_key_is_the_default_group(groups):
    assert _route("id: f\nnamespace: a\n" + TASK).key == ""
    blank = "id: f\nnamespace: a\n" + TASK + "    workerGroup: {key: \"{{ inputs.g }}\"}\n"
    route = _route(blank, context={"inputs": {"g": "  "}})
    assert (route.key, route.fallback, route.max_wait_seconds) == ("", "WAIT", None)


def test_plugin_defaults_apply_before_resolution_forced_overrides(groups):
    source = """id: f
namespace: a
pluginDefaults:
  - type: io.kestra.plugin.core.debug
    forced: true
    values: {workerGroup: {key: cpu, maxWait: PT1M}}
  - type: io.kestra.plugin.core
    values: {workerGroup: {key: gpu, fallback: FAIL}}
""" + TASK + "    workerGroup: {key: gpu}\n"
    route = _route(source)
    assert (route.key, route.fallback, route.max_wait_seconds) == ("cpu", "FAIL", 60.0)


def test_tenant_defaults_apply_to_their_tenant_only(groups):
    tenant_create(key="acme", worker_group_key="tenantgroup", fallback="CANCEL")
    assert _route("id: f\nnamespace: a\n" + TASK, tenant="acme").key == "tenantgroup"
    assert _route("id: f\nnamespace: a\n" + TASK, tenant="main").key == ""


def test_a_key_that_cannot_render_is_a_routing_error(groups):
    source = "id: f\nnamespace: a\n" + TASK + "    workerGroup: {key: \"{{ inputs.missing }}\"}\n"
    with pytest.raises(RoutingError) as error:
        _route(source, context={"inputs": {}})
    assert "workerGroup.key" in str(error.value)
