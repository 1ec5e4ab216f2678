"""`token create USERNAME [--tenant T ...] [--role R]` prints a new API token, creating the user if
needed. The token acts with the user's roles (docs/security.md), narrowed if asked."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from flows.errors import UserError
from flows.models import Role
from flows.permissions import actor_for_user, has_role_somewhere
from flows.services import token_create


class Command(BaseCommand):
    help = "Create a bearer token for the REST API."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="{create}")
        sub = verbs.add_parser("create", help="print a new API token for USERNAME (created if needed)")
        sub.add_argument("username", metavar="USERNAME")
        sub.add_argument("--tenant", action="append", default=[], dest="tenants", metavar="TENANT",
                         help="the token acts only in this tenant (repeat for more; default: all the user's tenants)")
        sub.add_argument("--role", default="", choices=Role.values,
                         help="the most the token may do in a tenant (default: as much as the user)")

    def handle(self, *args, username: str, tenants: list[str], role: str, **options):
        try:
            token = token_create(username=username, tenant_keys=tenants, role=role)
        except UserError as error:
            raise CommandError(error.message)
        self.stdout.write(token)
        user = get_user_model().objects.get(username=username.strip())
        if not has_role_somewhere(actor_for_user(user)):
            self.stderr.write(f"note: '{user.username}' has no role in any tenant yet, so this token can do "
                              f"nothing; grant one with `manage.py member add {user.username} TENANT --role viewer`")
