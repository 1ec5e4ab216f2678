"""Roles in the admin (docs/security.md): a staff user sees only the rows of the tenants they belong
to (another tenant's row answers as a row that does not exist), changes them only as their role
allows (403 otherwise), and instance pages are a superuser's. Every refusal changes nothing."""
import uuid
from html import unescape

import pytest
from django.contrib import admin
from django.urls import reverse

from flows.engine import execution_create
from flows.models import Flow, LogLine, Membership, Namespace, Tenant, WorkerGroup
from flows.services import (
    flow_upload, namespace_set, tenant_create, token_create, worker_group_create, worker_heartbeat,
)
from tests.flows.test_api_authorization import snapshot
from tests.support.auth import user_with

pytestmark = pytest.mark.django_db

FLOW = """\
id: {id}
namespace: {namespace}
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""
# What only tenant `zeta`, its users and the groups it alone may use are called: never on a page
# shown to a member of `main` only.
HIDDEN = ("zeta", "hidden_flow", "hidden.ns", "secret_group")


@pytest.fixture
def world():
    tenant_create(key="zeta")
    worker_group_create(key="gpu")
    worker_group_create(key="secret_group", allowed_tenants=["zeta"])
    worker_heartbeat(hostname="secret_group@box", groups=["secret_group"], pid=1, concurrency=1, running=0)
    executions = {}
    for tenant, flow_id, namespace in (("main", "etl", "company.team"), ("zeta", "hidden_flow", "hidden.ns")):
        flow_upload(source=FLOW.format(id=flow_id, namespace=namespace), tenant_key=tenant)
        namespace_set(tenant_key=tenant, name=namespace, worker_group_key="gpu")
        execution = execution_create(tenant_key=tenant, namespace=namespace, flow_id=flow_id)
        LogLine.objects.create(execution=execution, task_id="say", message=f"log of {flow_id}")
        executions[tenant] = execution
    user_with("zeta-admin", staff=True, roles={"zeta": "admin"})
    token_create(username="zeta-admin")
    return executions


def staff(client, role: str | None, *, tenant: str = "main", **more_roles):
    """Log in as a staff user who is `role` in `tenant` (no membership at all for None)."""
    roles = {tenant: role} if role else {}
    user = user_with(f"{role or 'nobody'}-staff", staff=True, roles={**roles, **more_roles})
    token_create(username=user.username)
    client.force_login(user)
    return client


def tenant_key_of(obj) -> str | None:
    """The tenant a row belongs to; None for instance rows (users, tokens, groups, workers)."""
    if isinstance(obj, Tenant):
        return obj.key
    for name in ("tenant", "execution", "flow", "trigger_state"):
        related = getattr(obj, name, None)
        if related is not None and not isinstance(related, str):
            return tenant_key_of(related)
    return None


def own_token(obj, username: str) -> bool:
    return obj._meta.label == "flows.ApiToken" and obj.user.username == username


def visible_to_member_of_main(obj, username: str) -> bool:
    if isinstance(obj, WorkerGroup):
        return not obj.allowed_tenants.exists() or obj.allowed_tenants.filter(key="main").exists()
    if isinstance(obj, Membership):
        return False  # a superuser's page
    return own_token(obj, username) or tenant_key_of(obj) == "main"


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def page(response) -> str:
    return unescape(response.content.decode())


MODELS = sorted(admin.site._registry, key=lambda model: model._meta.label)


@pytest.mark.parametrize("model", MODELS, ids=[model._meta.label for model in MODELS])
def test_a_viewer_sees_only_their_tenant_and_changes_nothing(client, world, model):
    client = staff(client, "viewer")
    username = "viewer-staff"
    missing_pk = uuid.uuid4() if model._meta.pk.get_internal_type() == "UUIDField" else 10**9
    not_found = client.get(url(model, "change", missing_pk))
    before = snapshot()

    listing = client.get(url(model, "changelist"))
    assert listing.status_code in (200, 403)
    if listing.status_code == 200:
        assert not any(word in page(listing) for word in HIDDEN), model
    assert client.post(url(model, "add"), {"key": "new", "name": "x", "source": "x"}).status_code == 403
    for obj in model.objects.all():
        if own_token(obj, username):  # their own to revoke: test_a_staff_user_revokes_only_their_own_tokens
            continue
        change, history = url(model, "change", obj.pk), url(model, "history", obj.pk)
        posted = client.post(change, {"key": "changed", "source": "x", "role": "admin"})
        deleted = client.post(url(model, "delete", obj.pk), {"post": "yes"})
        if visible_to_member_of_main(obj, username):
            assert client.get(change).status_code == 200, (model, obj)
            assert (posted.status_code, deleted.status_code) == (403, 403), (model, obj)
        else:
            # Answered as for a row that does not exist (or the page is refused altogether).
            for response in (client.get(change), client.get(history), posted, deleted):
                assert response.status_code in (302, 403), (model, obj)
                if response.status_code == 302:
                    assert response["Location"] == not_found["Location"] == reverse("admin:index")
    assert snapshot() == before


def test_a_staff_user_of_no_tenant_sees_only_their_own_tokens(client, world):
    client = staff(client, None)

    index = page(client.get(reverse("admin:index")))

    assert reverse("admin:flows_apitoken_changelist") in index
    for model in (Flow, Tenant, Namespace, WorkerGroup, Membership, LogLine):
        assert url(model, "changelist") not in index, model
    assert client.get(url(Flow, "changelist")).status_code == 403
    tokens = page(client.get(reverse("admin:flows_apitoken_changelist")))
    assert "nobody-staff" in tokens and "zeta-admin" not in tokens


def test_a_staff_user_revokes_only_their_own_tokens(client, world):
    from flows.models import ApiToken

    client = staff(client, "viewer")
    own, others = ApiToken.objects.get(user__username="viewer-staff"), ApiToken.objects.get(user__username="zeta-admin")

    assert client.post(url(ApiToken, "delete", others.pk), {"post": "yes"}).status_code == 302
    assert client.post(url(ApiToken, "delete", own.pk), {"post": "yes"}).status_code == 302
    assert list(ApiToken.objects.values_list("user__username", flat=True)) == ["zeta-admin"]


def test_the_tenant_list_shows_only_the_members_tenants(client, world):
    listing = page(staff(client, "admin").get(url(Tenant, "changelist")))

    assert "main" in listing and "zeta" not in listing


def test_a_developer_uploads_flows_to_their_tenant_only(client, world):
    client = staff(client, "developer", zeta="viewer")
    before = snapshot()

    into_zeta = client.post(url(Flow, "add"), {"tenant_key": "zeta", "source": FLOW.format(id="new", namespace="a")})
    namespace = client.post(url(Namespace, "add"), {"tenant_key": "main", "name": "x", "worker_group_key": "",
                                                    "fallback": ""})
    zeta_flow = Flow.objects.get(tenant__key="zeta")
    changed = client.post(url(Flow, "change", zeta_flow.pk), {"source": FLOW.format(id="hidden_flow",
                                                                                     namespace="hidden.ns")})

    assert into_zeta.status_code == 200 and "Select a valid choice" in page(into_zeta)
    assert namespace.status_code == 403 and changed.status_code == 403
    assert snapshot() == before
    added = client.post(url(Flow, "add"), {"tenant_key": "main", "source": FLOW.format(id="new", namespace="a")})
    assert added.status_code == 302 and Flow.objects.filter(tenant__key="main", flow_id="new").exists()


def test_bulk_delete_cannot_reach_a_tenant_where_the_user_may_only_read(client, world):
    """Flows without executions (which would protect them from deletion anyway)."""
    fresh = [flow_upload(source=FLOW.format(id="fresh", namespace="a"), tenant_key=tenant).pk
             for tenant in ("main", "zeta")]
    client = staff(client, "developer", zeta="viewer")
    before = snapshot()

    response = client.post(url(Flow, "changelist"), {"action": "delete_selected", "post": "yes",
                                                     "_selected_action": fresh})

    assert response.status_code == 403
    assert snapshot() == before


def test_a_tenant_admin_sets_namespace_defaults_of_their_tenant_only(client, world):
    client = staff(client, "admin")
    before = snapshot()

    refused = client.post(url(Namespace, "add"), {"tenant_key": "zeta", "name": "x", "worker_group_key": "",
                                                  "fallback": ""})
    secret = client.post(url(Namespace, "add"), {"tenant_key": "main", "name": "x",
                                                 "worker_group_key": "secret_group", "fallback": ""})
    tenant = client.post(url(Tenant, "change", Tenant.objects.get(key="main").pk),
                         {"worker_group_key": "gpu", "fallback": "FAIL"})
    group = client.post(url(WorkerGroup, "change", WorkerGroup.objects.get(key="gpu").pk),
                        {"key": "gpu", "description": "mine now"})

    assert "Select a valid choice" in page(refused) and "Select a valid choice" in page(secret)
    assert tenant.status_code == group.status_code == 403
    assert snapshot() == before
    added = client.post(url(Namespace, "add"), {"tenant_key": "main", "name": "x", "worker_group_key": "gpu",
                                                "fallback": "FAIL"})
    assert added.status_code == 302
    assert Namespace.objects.get(tenant__key="main", name="x").worker_group_key == "gpu"


def test_a_member_sees_worker_groups_open_to_their_tenant_with_their_counts_only(client, world):
    text = page(staff(client, "viewer").get(url(WorkerGroup, "changelist")))

    assert "gpu" in text and "secret_group" not in text
    assert "(all tenants)" in text


def test_a_superuser_grants_roles_in_the_admin_and_sees_everything(admin_client, world):
    response = admin_client.post(url(Membership, "add"), {"username": "carol", "tenant_key": "zeta",
                                                          "role": "developer"})

    assert response.status_code == 302
    assert Membership.objects.get(user__username="carol", tenant__key="zeta").role == "developer"
    assert all(word in page(admin_client.get(url(Flow, "changelist"))) for word in ("etl", "hidden_flow"))
    refused = admin_client.post(url(Membership, "add"), {"username": "carol", "tenant_key": "zeta", "role": "owner"})
    assert "Select a valid choice" in page(refused)


def test_only_a_superuser_reaches_the_membership_pages(client, world):
    client = staff(client, "admin")
    before = snapshot()

    assert client.get(url(Membership, "changelist")).status_code == 403
    assert client.post(url(Membership, "add"), {"username": "viewer-staff", "tenant_key": "main",
                                                "role": "admin"}).status_code == 403
    assert snapshot() == before
