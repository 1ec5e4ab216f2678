"""`nsfiles upload NAMESPACE DIR [--to PREFIX]`, `nsfiles list NAMESPACE`, `nsfiles delete
NAMESPACE PATH`, each with `[--tenant T]`: namespace files (docs/namespace-files.md)."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from flows import storage
from flows.errors import UserError
from flows.selectors import DEFAULT_TENANT, namespace_files_all, tenant_get
from flows.services import namespace_file_delete, namespace_files_upload

# Never uploaded from a directory: version control and caches. A `.kestraignore` file in the
# directory adds patterns of its own (Kestra's globs, one a line, `#` starts a comment).
ALWAYS_IGNORED = [".git/**", "**/.git/**", "**/__pycache__/**", ".kestraignore"]


def _ignored_patterns(directory: Path) -> list[str]:
    ignore = directory / ".kestraignore"
    if not ignore.is_file():
        return ALWAYS_IGNORED
    lines = [line.strip() for line in ignore.read_text(encoding="utf-8").splitlines()]
    return ALWAYS_IGNORED + [line for line in lines if line and not line.startswith("#")]


def directory_files(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (links not followed), by path relative to it."""
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory")
    ignored = _ignored_patterns(directory)
    files = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_symlink() or not path.is_file() or not storage.matches(relative, include=[], exclude=ignored):
            continue
        files[relative] = path.read_bytes()
    return files


class Command(BaseCommand):
    help = "Upload, list or delete the files of a namespace (laid into script tasks with namespaceFiles)."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="{upload,list,delete}")
        upload = verbs.add_parser("upload", help="upload every file under DIR (all or none)")
        upload.add_argument("namespace", metavar="NAMESPACE")
        upload.add_argument("directory", metavar="DIR")
        upload.add_argument("--to", default="", metavar="PREFIX", help="a directory of the namespace to upload into")
        listing = verbs.add_parser("list", help="list the namespace's files")
        listing.add_argument("namespace", metavar="NAMESPACE")
        delete = verbs.add_parser("delete", help="delete a file, or a directory and its files")
        delete.add_argument("namespace", metavar="NAMESPACE")
        delete.add_argument("path", metavar="PATH")
        for sub in (upload, listing, delete):
            sub.add_argument("--tenant", default=DEFAULT_TENANT, help=f"tenant key (default: {DEFAULT_TENANT})")

    def handle(self, *args, verb: str, namespace: str, tenant: str, **options):
        try:
            if verb == "upload":
                self._upload(namespace, tenant, Path(options["directory"]), options["to"])
            elif verb == "list":
                for path in namespace_files_all(tenant=tenant_get(tenant), namespace=namespace):
                    self.stdout.write(path)
            else:
                count = namespace_file_delete(tenant_key=tenant, namespace=namespace, path=options["path"])
                self.stdout.write(f"deleted {count} file(s) of namespace {namespace} (tenant {tenant})")
        except UserError as error:
            raise CommandError(error.message) from None

    def _upload(self, namespace: str, tenant: str, directory: Path, prefix: str) -> None:
        files = directory_files(directory)
        if not files:
            raise UserError(f"{directory}: no file to upload")
        prefix = storage.clean_path(prefix, where="--to", allow_root=True)
        if prefix:
            files = {f"{prefix}/{path}": content for path, content in files.items()}
        for path in namespace_files_upload(tenant_key=tenant, namespace=namespace, files=files):
            self.stdout.write(f"{path} → {storage.uri_of(storage.namespace_files_prefix(namespace) + '/' + path)}")
        self.stdout.write(f"{len(files)} file(s) uploaded to namespace {namespace} (tenant {tenant})")
