"""flows.permissions, the one place that decides who may do what (docs/security.md), and the ways
roles are granted: the membership services, `manage.py member` and `manage.py token create`
narrowing a token."""
import pytest
from django.core.management import CommandError, call_command

from flows.errors import NotFound, PermissionDenied, UserError
from flows.models import ApiToken, Membership, Role, Tenant
from flows.permissions import (
    actor_for_token, actor_for_user, require_superuser, role_in, tenant_for, tenants_for,
)
from flows.services import membership_remove, membership_set, tenant_create, token_create, token_find
from tests.support.auth import user_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenants():
    """Tenant main (made by a migration), acme and zeta."""
    tenant_create(key="acme")
    tenant_create(key="zeta")


def actor(username: str, **narrowing):
    return actor_for_token(token_find(token_create(username=username, **narrowing)))


@pytest.mark.parametrize("role, allowed", [
    ("viewer", {"viewer"}), ("developer", {"viewer", "developer"}), ("admin", {"viewer", "developer", "admin"}),
])
def test_each_role_includes_the_ones_before_it(tenants, role, allowed):
    user_with("alice", roles={"main": role})
    alice = actor_for_user(user_with("alice"))

    for needed in Role.values:
        if needed in allowed:
            assert tenant_for(alice, "main", needed).key == "main"
        else:
            with pytest.raises(PermissionDenied, match=f"needs the {needed} role in tenant 'main'"):
                tenant_for(alice, "main", needed)


def test_a_tenant_without_a_role_in_it_is_not_found_like_a_missing_one(tenants):
    alice = actor_for_user(user_with("alice", roles={"main": "admin"}))

    with pytest.raises(NotFound) as hidden:
        tenant_for(alice, "zeta", Role.VIEWER)
    with pytest.raises(NotFound) as missing:
        tenant_for(alice, "nowhere", Role.VIEWER)

    assert str(hidden.value) == "tenant 'zeta' does not exist"
    assert str(missing.value) == "tenant 'nowhere' does not exist"
    assert list(tenants_for(alice).values_list("key", flat=True)) == ["main"]


def test_a_superuser_is_admin_everywhere_and_alone_has_instance_rights(tenants):
    root = actor_for_user(user_with("root", superuser=True))
    alice = actor_for_user(user_with("alice", roles={"main": "admin"}))

    assert {tenant.key for tenant in tenants_for(root, Role.ADMIN)} == {"main", "acme", "zeta"}
    require_superuser(root, "creating a tenant")
    with pytest.raises(PermissionDenied, match="creating a tenant needs a superuser"):
        require_superuser(alice, "creating a tenant")


def test_an_inactive_user_has_no_role():
    user = user_with("alice", roles={"main": "admin"})
    user.is_active = False

    assert role_in(actor_for_user(user), 1) == ""


# --- tokens ----------------------------------------------------------------------------------


def test_a_token_acts_with_its_users_roles_narrowed_to_its_tenants_and_role(tenants):
    user_with("alice", roles={"main": "admin", "acme": "developer"})
    ids = dict(Tenant.objects.values_list("key", "id"))

    full, narrow = actor("alice"), actor("alice", tenant_keys=["acme"], role="viewer")

    assert [role_in(full, ids[key]) for key in ("main", "acme", "zeta")] == ["admin", "developer", ""]
    assert [role_in(narrow, ids[key]) for key in ("main", "acme", "zeta")] == ["", "viewer", ""]
    capped = actor("alice", role="developer")
    assert [role_in(capped, ids[key]) for key in ("main", "acme")] == ["developer", "developer"]
    with pytest.raises(PermissionDenied, match="this token is narrowed to the viewer role"):
        tenant_for(narrow, "acme", Role.DEVELOPER)


@pytest.mark.parametrize("tenant_keys, role, words", [
    (["zeta"], "", "user 'alice' has no role in tenant 'zeta'"),
    (["main"], "admin", "user 'alice' is developer in tenant 'main': a token cannot be admin there"),
    (["nowhere"], "", "tenant 'nowhere' does not exist"),
    ([], "admin", "user 'alice' is admin in no tenant"),
    ([], "owner", "invalid role 'owner'"),
])
def test_a_token_can_never_have_more_than_its_user(tenants, tenant_keys, role, words):
    user_with("alice", roles={"main": "developer"})

    with pytest.raises(UserError, match=words):
        token_create(username="alice", tenant_keys=tenant_keys, role=role)

    assert not ApiToken.objects.exists()


def test_a_narrowed_token_of_a_superuser_loses_the_instance_rights(tenants):
    user_with("root", superuser=True)

    assert actor("root").is_superuser
    narrowed = actor("root", tenant_keys=["zeta"])
    assert not narrowed.is_superuser
    assert [t.key for t in tenants_for(narrowed, Role.ADMIN)] == ["zeta"]
    with pytest.raises(PermissionDenied, match="narrowed token never acts as a superuser"):
        require_superuser(narrowed, "creating a worker group")


def test_a_token_narrowed_to_a_tenant_that_is_deleted_acts_nowhere(tenants):
    user_with("root", superuser=True)
    token = token_create(username="root", tenant_keys=["zeta"])
    Tenant.objects.get(key="zeta").delete()

    narrowed = actor_for_token(token_find(token))

    assert not tenants_for(narrowed).exists()  # never "every tenant" because none is left


# --- memberships -----------------------------------------------------------------------------


def test_membership_set_creates_the_user_and_replaces_the_role(tenants):
    membership_set(username="carol", tenant_key="acme", role="viewer")
    membership_set(username="carol", tenant_key="acme", role="admin")

    assert list(Membership.objects.values_list("user__username", "tenant__key", "role")) == [
        ("carol", "acme", "admin"),
    ]
    membership_remove(username="carol", tenant_key="acme")
    assert not Membership.objects.exists()
    with pytest.raises(NotFound, match="has no role in tenant 'acme'"):
        membership_remove(username="carol", tenant_key="acme")


@pytest.mark.parametrize("username, tenant, role, words", [
    ("carol", "acme", "owner", "invalid role 'owner'"),
    ("carol", "nowhere", "viewer", "tenant 'nowhere' does not exist"),
    (" ", "acme", "viewer", "a username is required"),
])
def test_membership_set_refuses_what_it_cannot_store(tenants, username, tenant, role, words):
    with pytest.raises(UserError, match=words):
        membership_set(username=username, tenant_key=tenant, role=role)

    assert not Membership.objects.exists()


# --- the CLI ---------------------------------------------------------------------------------


def test_member_command_adds_lists_and_removes(tenants, capsys):
    call_command("member", "add", "dave", "acme", "--role", "developer")
    call_command("member", "add", "erin", "main", "--role", "viewer")
    call_command("member", "list", "--tenant", "acme")

    out = capsys.readouterr().out
    assert "user 'dave' is developer in tenant 'acme'" in out
    assert "acme    dave  developer" in out and "erin" not in out.split("ROLE")[1]
    call_command("member", "remove", "dave", "acme")
    assert list(Membership.objects.values_list("user__username", flat=True)) == ["erin"]
    with pytest.raises(CommandError, match="tenant 'nowhere' does not exist"):
        call_command("member", "add", "dave", "nowhere", "--role", "viewer")
    with pytest.raises(CommandError):
        call_command("member", "add", "dave", "acme", "--role", "owner")


def test_token_command_narrows_and_refuses_more_than_the_user(tenants, capsys):
    call_command("member", "add", "dave", "acme", "--role", "developer")
    capsys.readouterr()

    call_command("token", "create", "dave", "--tenant", "acme", "--role", "viewer")

    api_token = token_find(capsys.readouterr().out.strip())
    assert (api_token.all_tenants, [t.key for t in api_token.tenants.all()], api_token.role) == (False, ["acme"],
                                                                                                 "viewer")
    with pytest.raises(CommandError, match="cannot be admin there"):
        call_command("token", "create", "dave", "--tenant", "acme", "--role", "admin")
    assert ApiToken.objects.count() == 1


def test_token_command_says_when_the_user_has_no_role_yet(capsys):
    call_command("token", "create", "frank")

    captured = capsys.readouterr()
    assert token_find(captured.out.strip()).user.username == "frank"
    assert "member add frank TENANT" in captured.err
