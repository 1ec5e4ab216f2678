"""Roles: users belong to tenants with a role, and API tokens may be narrowed (docs/security.md).
Worker group keys are matched as whole strings (flows/models.py KEY_PATTERN)."""
import re

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

ROLES = [("viewer", "Viewer"), ("developer", "Developer"), ("admin", "Admin")]


class Migration(migrations.Migration):
    dependencies = [
        ("flows", "0003_triggers"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Membership",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("role", models.CharField(choices=ROLES, max_length=10)),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("updated", models.DateTimeField(auto_now=True)),
                ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="memberships",
                                             to="flows.tenant")),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="memberships",
                                           to=settings.AUTH_USER_MODEL)),
            ],
            options={
                "ordering": ["tenant__key", "user__username"],
                "constraints": [
                    models.UniqueConstraint(fields=("user", "tenant"), name="membership_unique_per_tenant"),
                    models.CheckConstraint(condition=models.Q(("role__in", ["viewer", "developer", "admin"])),
                                           name="membership_role_known"),
                ],
            },
        ),
        migrations.AddField(
            model_name="apitoken",
            name="all_tenants",
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="tenants",
            field=models.ManyToManyField(blank=True, related_name="api_tokens", to="flows.tenant"),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="role",
            field=models.CharField(blank=True, choices=ROLES, default="", max_length=10),
        ),
        migrations.AddConstraint(
            model_name="apitoken",
            constraint=models.CheckConstraint(condition=models.Q(("role__in", ["", "viewer", "developer", "admin"])),
                                              name="api_token_role_known"),
        ),
        migrations.AlterField(
            model_name="workergroup",
            name="key",
            field=models.CharField(max_length=100, unique=True, validators=[
                django.core.validators.RegexValidator(re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9_-]*\Z")),
            ]),
        ),
    ]
