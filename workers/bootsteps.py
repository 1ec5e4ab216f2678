"""Consumer bootsteps of a group worker. Each stays thin and hands the work to a plain object."""
from celery import bootsteps
from django.conf import settings

from .heartbeat import Heart


class HeartbeatStep(bootsteps.StartStopStep):
    """Records the worker's heartbeat every WORKER_HEARTBEAT_INTERVAL seconds on the consumer's timer,
    so it beats whatever the pool is doing."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer, **kwargs):
        super().__init__(consumer, **kwargs)
        self.heart = None
        self.timer_entry = None

    def start(self, consumer):
        self.heart = Heart(consumer)
        self.heart.beat()
        self.timer_entry = consumer.timer.call_repeatedly(settings.WORKER_HEARTBEAT_INTERVAL, self.heart.beat, priority=10)

    def stop(self, consumer):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None
        if self.heart is not None:
            self.heart.stopped()
            self.heart = None

    def shutdown(self, consumer):
        self.stop(consumer)
