"""`python manage.py demo`: the demo tenant, worker group, flows and admin login. Safe to run again."""
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from flows.errors import UserError
from flows.selectors import DEFAULT_TENANT, tenant_get
from flows.models import WorkerGroup
from flows.management.commands.nsfiles import directory_files
from flows.services import flow_upload, namespace_files_upload, worker_group_create

DEMO_GROUP = "gpu"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"


class Command(BaseCommand):
    help = ("Create the demo tenant, the 'gpu' worker group, the flows of examples/ (and the namespace files of "
            "examples/files/<namespace>/) and an admin/admin superuser.")

    def add_arguments(self, parser):
        parser.add_argument(
            "--examples", default=str(Path(settings.BASE_DIR) / "examples"),
            help="directory of *.yml flows to upload (default: examples/)",
        )

    def handle(self, *args, examples: str, **options):
        tenant = tenant_get(DEFAULT_TENANT)
        self.stdout.write(f"tenant '{tenant.key}': ready")

        if WorkerGroup.objects.filter(key=DEMO_GROUP).exists():
            self.stdout.write(f"worker group '{DEMO_GROUP}': already exists")
        else:
            worker_group_create(key=DEMO_GROUP, description="Demo GPU group")
            self.stdout.write(f"worker group '{DEMO_GROUP}': created")

        files = sorted(Path(examples).glob("*.yml"))
        if not files:
            raise CommandError(f"no *.yml flows found in {examples}")
        for path in files:
            try:
                flow = flow_upload(source=path.read_text(encoding="utf-8"), tenant_key=tenant.key)
            except UserError as error:
                raise CommandError(f"{path}:\n{error.message}") from None
            self.stdout.write(f"flow {flow.namespace}.{flow.flow_id} (revision {flow.revision}) from {path.name}")
        # Namespace files the examples run: examples/files/<namespace>/... (docs/namespace-files.md).
        for directory in sorted(path for path in (Path(examples) / "files").glob("*") if path.is_dir()):
            try:
                stored = namespace_files_upload(tenant_key=tenant.key, namespace=directory.name,
                                                files=directory_files(directory))
            except UserError as error:
                raise CommandError(f"{directory}:\n{error.message}") from None
            self.stdout.write(f"namespace files of {directory.name}: {', '.join(stored)}")

        User = get_user_model()
        if User.objects.filter(username=ADMIN_USERNAME).exists():
            self.stdout.write(f"superuser '{ADMIN_USERNAME}': already exists (password unchanged)")
        else:
            User.objects.create_superuser(ADMIN_USERNAME, email="", password=ADMIN_PASSWORD)
            self.stdout.write(f"superuser '{ADMIN_USERNAME}': created")

        self.stdout.write(self.style.SUCCESS(
            "\nDemo ready.\n"
            f"  Admin UI:  http://127.0.0.1:8000/admin/  (user {ADMIN_USERNAME}, password {ADMIN_PASSWORD})\n"
            "  Flower:    http://127.0.0.1:5555/\n"
            f"  API token: .venv/bin/python manage.py token create {ADMIN_USERNAME}\n"
            "             then: curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8000/api/v1/main/flows/demo/hello"
        ))
