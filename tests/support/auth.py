"""Users with roles and API clients carrying their tokens (docs/security.md)."""
from django.contrib.auth import get_user_model
from django.test import Client


def user_with(username: str, *, superuser: bool = False, staff: bool = False, roles: dict | None = None):
    """A user, created if needed, with `roles` (tenant key → role) as memberships."""
    from flows.services import membership_set

    user, _ = get_user_model().objects.get_or_create(username=username)
    user.is_superuser, user.is_staff = superuser, staff or superuser
    user.save(update_fields=["is_superuser", "is_staff"])
    for tenant, role in (roles or {}).items():
        membership_set(username=username, tenant_key=tenant, role=role)
    return user


def api_client(username: str, *, superuser: bool = False, roles: dict | None = None, tenants: list[str] = (),
               role: str = "", **client_options) -> Client:
    """A test client whose requests carry a new token of `username` (narrowed by `tenants`/`role`)."""
    from flows.services import token_create

    user_with(username, superuser=superuser, roles=roles)
    token = token_create(username=username, tenant_keys=list(tenants), role=role)
    return Client(headers={"Authorization": f"Bearer {token}"}, **client_options)
