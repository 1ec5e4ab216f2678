from django.core.validators import RegexValidator
from django.db import models

WORKER_GROUP_KEY_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"


class WorkerGroup(models.Model):
    """A worker group; its key is the Celery queue its workers consume."""

    key = models.CharField(max_length=100, unique=True, validators=[RegexValidator(WORKER_GROUP_KEY_PATTERN)])
    description = models.TextField(blank=True, default="")
    allowed_tenants = models.ManyToManyField("flows.Tenant", blank=True, related_name="worker_groups")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(key__in=["default", "executor", "scheduler"]),
                name="worker_group_key_not_reserved",
            ),
        ]

    def __str__(self):
        return self.key


class Worker(models.Model):
    """A Celery worker as seen through its heartbeats."""

    hostname = models.CharField(max_length=255, unique=True)
    groups = models.JSONField(default=list)
    pid = models.PositiveIntegerField(default=0)
    concurrency = models.PositiveIntegerField(default=0)
    running = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_heartbeat = models.DateTimeField()

    class Meta:
        ordering = ["hostname"]

    def __str__(self):
        return self.hostname
