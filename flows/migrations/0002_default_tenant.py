"""The default tenant `main` exists from the start, so that reading it never has to create it."""
from django.db import migrations

DEFAULT_TENANT = "main"


def create_default_tenant(apps, schema_editor):
    apps.get_model("flows", "Tenant").objects.get_or_create(key=DEFAULT_TENANT)


class Migration(migrations.Migration):
    dependencies = [("flows", "0001_initial")]

    operations = [migrations.RunPython(create_default_tenant, migrations.RunPython.noop)]
