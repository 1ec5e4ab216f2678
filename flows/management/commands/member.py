"""`member add USERNAME TENANT --role R`, `member remove USERNAME TENANT`, `member list [--tenant T]
[--user U]`: who belongs to which tenant, with which role (docs/security.md)."""
from django.core.management.base import BaseCommand, CommandError

from flows.errors import UserError
from flows.models import Role
from flows.selectors import membership_list
from flows.services import membership_remove, membership_set


class Command(BaseCommand):
    help = "Give users a role in a tenant (viewer, developer, admin), take it away, or list memberships."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="{add,remove,list}")
        add = verbs.add_parser("add", help="give USERNAME (created if needed) a role in TENANT, replacing any other")
        add.add_argument("username", metavar="USERNAME")
        add.add_argument("tenant", metavar="TENANT")
        add.add_argument("--role", required=True, choices=Role.values)
        remove = verbs.add_parser("remove", help="take away USERNAME's role in TENANT")
        remove.add_argument("username", metavar="USERNAME")
        remove.add_argument("tenant", metavar="TENANT")
        listing = verbs.add_parser("list", help="list memberships")
        listing.add_argument("--tenant", default="", help="only this tenant's")
        listing.add_argument("--user", default="", metavar="USERNAME", help="only this user's")

    def handle(self, *args, verb: str, **options):
        try:
            getattr(self, f"_{verb}")(**options)
        except UserError as error:
            raise CommandError(error.message)

    def _add(self, *, username: str, tenant: str, role: str, **options):
        membership = membership_set(username=username, tenant_key=tenant, role=role)
        self.stdout.write(f"user '{membership.user.username}' is {membership.role} in tenant '{tenant}'")

    def _remove(self, *, username: str, tenant: str, **options):
        membership_remove(username=username, tenant_key=tenant)
        self.stdout.write(f"user '{username}' has no role in tenant '{tenant}' any more")

    def _list(self, *, tenant: str, user: str, **options):
        memberships = membership_list(tenant_key=tenant, username=user)
        rows = [("TENANT", "USER", "ROLE")] + [(m.tenant.key, m.user.username, m.role) for m in memberships]
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
