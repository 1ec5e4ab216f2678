"""`flow validate FILE...` and `flow upload FILE... [--tenant T]`."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from flows.errors import UserError
from flows.selectors import DEFAULT_TENANT
from flows.services import flow_upload, flow_validate


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("no such file")
    except IsADirectoryError:
        raise UserError("is a directory, not a YAML file")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the file: {error}")


class Command(BaseCommand):
    help = "Validate or upload flow YAML files."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="{validate,upload}")
        for verb, text in (("validate", "check flow files; store nothing"), ("upload", "store flow files, all or none")):
            sub = verbs.add_parser(verb, help=text)
            sub.add_argument("files", nargs="+", metavar="FILE")
            sub.add_argument("--tenant", default=DEFAULT_TENANT, help=f"tenant key (default: {DEFAULT_TENANT})")

    def handle(self, *args, verb: str, files: list[str], tenant: str, **options):
        sources = self._validated(files, tenant_key=tenant, uploading=verb == "upload")
        if verb == "validate":
            return
        try:
            with transaction.atomic():
                flows = [(path, flow_upload(source=source, tenant_key=tenant)) for path, source in sources]
        except UserError as error:
            raise CommandError(error.message)
        for path, flow in flows:
            self.stdout.write(f"{path}: {flow.namespace}.{flow.flow_id} revision {flow.revision} (tenant {tenant})")

    def _validated(self, files: list[str], *, tenant_key: str, uploading: bool) -> list[tuple[str, str]]:
        """Each file's source; every fault of every file is written to stderr before giving up."""
        sources, failed = [], 0
        for path in files:
            try:
                source = _read(path)
                flow_validate(source=source, tenant_key=tenant_key)
            except UserError as error:
                failed += 1
                for fault in error.faults:
                    self.stderr.write(f"{path}: {fault}")
                continue
            sources.append((path, source))
            if not uploading:
                self.stdout.write(f"{path}: ok")
        if failed:
            outcome = "; nothing was stored" if uploading else ""
            raise CommandError(f"{failed} of {len(files)} file(s) failed validation{outcome}")
        return sources
