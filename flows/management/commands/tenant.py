"""`tenant create KEY [--worker-group K] [--fallback F]`."""
from django.core.management.base import BaseCommand, CommandError

from flows.errors import UserError
from flows.services import tenant_create, tenant_update


class Command(BaseCommand):
    help = "Create a tenant, or change its default worker group and fallback."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="{create,update}")
        for verb, text in (("create", "create a tenant"), ("update", "set a tenant's defaults")):
            sub = verbs.add_parser(verb, help=text)
            sub.add_argument("key")
            sub.add_argument("--worker-group", default="", metavar="KEY", help="default worker group key (none = the default group)")
            sub.add_argument("--fallback", default="", help="default fallback: WAIT, FAIL or CANCEL")

    def handle(self, *args, verb: str, key: str, worker_group: str, fallback: str, **options):
        service = tenant_create if verb == "create" else tenant_update
        try:
            tenant = service(key=key, worker_group_key=worker_group, fallback=fallback)
        except UserError as error:
            raise CommandError(error.message)
        self.stdout.write(
            f"tenant '{tenant.key}': worker group {tenant.worker_group_key or '(default)'}, "
            f"fallback {tenant.fallback or 'WAIT'}"
        )
