"""Prometheus metrics of the scheduler: runs by final state, run durations, queue depth."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from dsml.scheduler.models import FINAL_STATES, QUEUED, RUNNING, STARTING


class Metrics:
    """The scheduler's own registry (not the process-global one, so tests can make several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.finished = Counter(
            "dsml_scheduler_runs_finished",
            "Runs that reached a final state, by state.",
            ["state"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "dsml_scheduler_run_duration_seconds",
            "Wall time from start to end of finished runs, in seconds.",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 7200),
            registry=self.registry,
        )
        self.queue = Gauge(
            "dsml_scheduler_queue_depth", "Runs waiting to start.", registry=self.registry
        )
        self.active = Gauge(
            "dsml_scheduler_runs_active", "Runs starting or running.", registry=self.registry
        )
        for state in FINAL_STATES:
            self.finished.labels(state=state)

    def observe(self, run: dict[str, Any]) -> None:
        """Count a finished run and its duration."""
        self.finished.labels(state=run["state"]).inc()
        if run.get("duration_seconds") is not None:
            self.duration.observe(run["duration_seconds"])

    async def render(self, store: Any) -> tuple[bytes, str]:
        """Refresh the gauges from the database and return the exposition text."""
        self.queue.set(await store.run(store.count_runs, (QUEUED,)))
        self.active.set(await store.run(store.count_runs, (STARTING, RUNNING)))
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
