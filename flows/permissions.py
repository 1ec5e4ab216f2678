"""Who may do what: the one place where authorization is decided (docs/security.md). The API, the
admin and the CLI ask these functions; none decides on its own. Reads only, like a selector.

An `Actor` is a user as one request sees it: the user's roles per tenant, narrowed by the API token
that carries the request, if any. Roles rank viewer < developer < admin, each including the ones
before it. A superuser has the admin role in every tenant and alone may touch instance resources
(tenants, worker groups); a narrowed token never acts as a superuser.
"""
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from .errors import NotFound, PermissionDenied
from .models import ApiToken, Membership, Role, Tenant, WorkerGroup

RANK = {"": 0, Role.VIEWER: 1, Role.DEVELOPER: 2, Role.ADMIN: 3}


def role_at_least(role: str, needed: str) -> bool:
    return RANK[role] >= RANK[needed]


def _lesser(first: str, second: str) -> str:
    return first if RANK[first] <= RANK[second] else second


@dataclass(frozen=True)
class Actor:
    user: object = None
    # Instance resources; false for a narrowed token, even one of a superuser.
    is_superuser: bool = False
    # A superuser's role in every tenant (admin, or less through a token); "" for everyone else.
    every_tenant_role: str = ""
    # Tenant id → role, from the user's memberships.
    roles: dict = field(default_factory=dict)
    # A token narrowed to some tenants: their ids; None: not narrowed.
    tenant_ids: frozenset | None = None
    # A token narrowed to a role: the most it may do; "": not narrowed.
    role_cap: str = ""

    @property
    def username(self) -> str:
        return getattr(self.user, "username", "")


NOBODY = Actor()


def actor_for_user(user) -> Actor:
    """A logged-in user (the admin) or the user of a token, with all the user's roles."""
    if user is None or not user.is_active or not user.is_authenticated:
        return NOBODY
    if user.is_superuser:
        return Actor(user=user, is_superuser=True, every_tenant_role=Role.ADMIN)
    roles = dict(Membership.objects.filter(user=user).values_list("tenant_id", "role"))
    return Actor(user=user, roles=roles)


def actor_for_token(token: ApiToken) -> Actor:
    """A token acts with its user's roles, never more: narrowed to its tenants and capped at its role."""
    actor = actor_for_user(token.user)
    if actor is NOBODY or not token.narrowed:
        return actor
    tenant_ids = None if token.all_tenants else frozenset(token.tenants.values_list("id", flat=True))
    return Actor(user=actor.user, is_superuser=False, every_tenant_role=actor.every_tenant_role,
                 roles=actor.roles, tenant_ids=tenant_ids, role_cap=token.role)


def role_in(actor: Actor, tenant_id: int) -> str:
    """The actor's role in a tenant, "" for none."""
    if actor.tenant_ids is not None and tenant_id not in actor.tenant_ids:
        return ""
    role = actor.every_tenant_role or actor.roles.get(tenant_id, "")
    return _lesser(role, actor.role_cap) if role and actor.role_cap else role


def tenants_for(actor: Actor, role: str = Role.VIEWER) -> QuerySet:
    """The tenants in which the actor has at least `role`."""
    if actor.every_tenant_role:
        tenants = Tenant.objects.all()
        if actor.tenant_ids is not None:
            tenants = tenants.filter(id__in=actor.tenant_ids)
        return tenants if role_at_least(_lesser(actor.every_tenant_role, actor.role_cap or Role.ADMIN), role) \
            else tenants.none()
    ids = [tenant_id for tenant_id in actor.roles if role_at_least(role_in(actor, tenant_id), role)]
    return Tenant.objects.filter(id__in=ids)


def has_role_somewhere(actor: Actor, role: str = Role.VIEWER) -> bool:
    """Whether the actor has at least `role` in some tenant (which admin pages to show at all)."""
    if actor.every_tenant_role:
        return tenants_for(actor, role).exists()
    return any(role_at_least(role_in(actor, tenant_id), role) for tenant_id in actor.roles)


def tenant_for(actor: Actor, key: str, role: str) -> Tenant:
    """The tenant `key` if the actor has at least `role` in it. A tenant in which the actor has no
    role is NotFound, in the same words as one that does not exist; too small a role is
    PermissionDenied."""
    tenant = Tenant.objects.filter(key=key).first()
    actual = role_in(actor, tenant.id) if tenant is not None else ""
    if not actual:
        raise NotFound(f"tenant '{key}' does not exist")
    if not role_at_least(actual, role):
        if actor.role_cap and not role_at_least(actor.role_cap, role):
            having = f"this token is narrowed to the {actor.role_cap} role"
        else:
            having = f"you have the {actual} role"
        raise PermissionDenied(f"this needs the {role} role in tenant '{key}': {having}")
    return tenant


def require_superuser(actor: Actor, what: str) -> None:
    """Instance resources (tenants, worker groups) are a superuser's."""
    if not actor.is_superuser:
        narrowed = " (a narrowed token never acts as a superuser)" if actor.every_tenant_role else ""
        raise PermissionDenied(f"{what} needs a superuser{narrowed}")


# --- worker groups: instance resources that members may read --------------------------------


def worker_groups_visible(actor: Actor) -> QuerySet:
    """Worker groups a member may read: those open to every tenant or to one of the actor's
    tenants. A superuser sees them all."""
    groups = WorkerGroup.objects.all()
    if actor.is_superuser:
        return groups
    if not has_role_somewhere(actor):
        return groups.none()
    return groups.filter(
        Q(allowed_tenants__isnull=True) | Q(allowed_tenants__in=tenants_for(actor))
    ).distinct()


def worker_group_for(actor: Actor, key: str) -> WorkerGroup:
    group = worker_groups_visible(actor).filter(key=key).prefetch_related("allowed_tenants").first()
    if group is None:
        raise NotFound(f"worker group '{key}' does not exist")
    return group


def visible_tenant_keys(actor: Actor, keys: list[str]) -> list[str]:
    """Of `keys` (a group's allowed tenants), those the actor may know of: others' stay unnamed."""
    if actor.is_superuser:
        return keys
    visible = set(tenants_for(actor).values_list("key", flat=True))
    return [key for key in keys if key in visible]


def allowed(actor: Actor, role: str | None, tenant_id: int | None = None) -> bool:
    """Whether the actor may act with `role` in a tenant (in some tenant when none is named);
    `role` None means a superuser's action. For pages that show or hide what an actor may do."""
    if role is None:
        return actor.is_superuser
    if tenant_id is None:
        return has_role_somewhere(actor, role)
    return role_at_least(role_in(actor, tenant_id), role)
