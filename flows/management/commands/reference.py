"""`reference`: write docs/reference/ and docs/flow.schema.json from the flow schema (flows/reference.py)."""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from flows.reference import reference_write


class Command(BaseCommand):
    help = "Generate the reference pages (docs/reference/) and the flow JSON Schema (docs/flow.schema.json)."

    def add_arguments(self, parser):
        parser.add_argument("--docs", default=str(Path(settings.BASE_DIR) / "docs"), help="the docs directory")

    def handle(self, *args, docs: str, **options):
        written = reference_write(Path(docs))
        self.stdout.write(f"{len(written)} file(s) written under {docs}")
