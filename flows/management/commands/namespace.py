"""`namespace set NAMESPACE [--tenant T] [--worker-group K] [--fallback F]`."""
from django.core.management.base import BaseCommand, CommandError

from flows.errors import UserError
from flows.selectors import DEFAULT_TENANT
from flows.services import namespace_set


class Command(BaseCommand):
    help = "Set a namespace's default worker group and fallback (sub-namespaces inherit them)."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="{set}")
        sub = verbs.add_parser("set", help="set a namespace's defaults")
        sub.add_argument("namespace", metavar="NAMESPACE")
        sub.add_argument("--tenant", default=DEFAULT_TENANT, help=f"tenant key (default: {DEFAULT_TENANT})")
        sub.add_argument("--worker-group", default="", metavar="KEY", help="default worker group key (none = inherit)")
        sub.add_argument("--fallback", default="", help="default fallback: WAIT, FAIL or CANCEL (none = inherit)")

    def handle(self, *args, namespace: str, tenant: str, worker_group: str, fallback: str, **options):
        try:
            stored = namespace_set(tenant_key=tenant, name=namespace, worker_group_key=worker_group, fallback=fallback)
        except UserError as error:
            raise CommandError(error.message)
        self.stdout.write(
            f"namespace '{stored.name}' (tenant {tenant}): worker group {stored.worker_group_key or '(inherited)'}, "
            f"fallback {stored.fallback or '(inherited)'}"
        )
