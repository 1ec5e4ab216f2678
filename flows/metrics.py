"""Prometheus metrics at `/metrics` (docs/operations.md).

Every figure is read from the database when Prometheus scrapes, by one custom collector: the web
process serves /metrics while workers start and end the task runs, so counters kept in one
process's memory would miss what the others did. Counters and the histogram are counts over the
task runs stored (they drop if executions are deleted, which Prometheus takes for a counter reset).
"""
import hmac

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .models import queue_for_group
from .selectors import dispatch_latency_histogram, taskruns_ended_counts, worker_group_health

# Seconds from a task run's creation to its start on a worker.
DISPATCH_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class WorkerGroupCollector:
    """Gauges per group from the health selector, counters and a histogram over the stored task runs.
    The `group` label is the group's queue name (`default` for the default group)."""

    def collect(self):
        now = timezone.now()
        gauges = {
            name: GaugeMetricFamily(f"workergroups_{name}", text, labels=["group"])
            for name, text in (
                ("alive_workers", "Alive workers consuming the group's queue, drained ones left out."),
                ("task_runs_waiting", "Task runs CREATED: waiting for a worker or for a slot."),
                ("task_runs_running", "Task runs RUNNING on the group's workers."),
                ("oldest_waiting_seconds", "How long the oldest waiting task run has waited (0: none waits)."),
                ("broker_queue_length", "Messages in the group's Redis queue, priority sub-queues included."),
                ("flagged", "1 when task runs wait and no alive, undrained worker may take them."),
                ("drained", "1 when the whole group is drained."),
            )
        }
        for key, health in worker_group_health().items():
            group = queue_for_group(key)
            oldest = health["oldestQueuedSince"]
            values = {
                "alive_workers": health["alive"], "task_runs_waiting": health["queued"],
                "task_runs_running": health["running"],
                "oldest_waiting_seconds": (now - oldest).total_seconds() if oldest else 0.0,
                "broker_queue_length": health["brokerQueueLength"], "flagged": int(health["flagged"]),
                "drained": int(health["drained"]),
            }
            for name, value in values.items():
                if value is not None:
                    gauges[name].add_metric([group], value)
        yield from gauges.values()

        ended = CounterMetricFamily("workergroups_task_runs_ended", "Task runs of the group that ended, by state.",
                                    labels=["group", "state"])
        for key, state, count in taskruns_ended_counts():
            ended.add_metric([queue_for_group(key), state], count)
        yield ended

        latency = HistogramMetricFamily(
            "workergroups_dispatch_latency_seconds",
            "Seconds from a task run's creation to the start of its last attempt on a worker.", labels=["group"],
        )
        for key, (cumulative, count, total_seconds) in dispatch_latency_histogram(DISPATCH_LATENCY_BUCKETS).items():
            buckets = [(f"{bound:g}", below) for bound, below in zip(DISPATCH_LATENCY_BUCKETS, cumulative)]
            latency.add_metric([queue_for_group(key)], [*buckets, ("+Inf", count)], total_seconds)
        yield latency


registry = CollectorRegistry(auto_describe=False)
registry.register(WorkerGroupCollector())


@require_GET
def metrics_view(request):
    """The metrics in Prometheus' text format; with METRICS_TOKEN set, only for `Authorization: Bearer <it>`."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            response = HttpResponse("a metrics token is required: Authorization: Bearer <METRICS_TOKEN>\n",
                                    status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
