"""`token create USERNAME` prints a new API token, creating the user if needed."""
from django.core.management.base import BaseCommand, CommandError

from flows.errors import UserError
from flows.services import token_create


class Command(BaseCommand):
    help = "Create a bearer token for the REST API."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="{create}")
        sub = verbs.add_parser("create", help="print a new API token for USERNAME (created if needed)")
        sub.add_argument("username", metavar="USERNAME")

    def handle(self, *args, username: str, **options):
        try:
            token = token_create(username=username)
        except UserError as error:
            raise CommandError(error.message)
        self.stdout.write(token)
