"""The service itself: its health, its Prometheus metrics, the environments jobs may use."""

from __future__ import annotations

from dsml.scheduler.apihandlers.base import BaseHandler
from dsml.service.handlers import JSONHandler


class EnvironmentsHandler(BaseHandler):
    """GET: the curated environments jobs can run in."""

    async def get(self) -> None:
        """Name, display name, description and version of each."""
        self.user()
        self.write_json({"environments": self.app.environment_records()})


class HealthHandler(JSONHandler):
    """GET: 200 while the database answers and the loop runs."""

    async def get(self) -> None:
        """{"status": "ok", ...} or 503."""
        app = self.service_app
        try:
            queued = await app.store.run(app.store.count_runs, ("queued",))
            ok = app.manager._task is not None and not app.manager._task.done()
        except Exception as e:  # noqa: BLE001
            self.set_status(503)
            self.finish({"status": "failing", "message": str(e)})
            return
        self.set_status(200 if ok else 503)
        self.finish({"status": "ok" if ok else "failing", "queued": queued})


class MetricsHandler(JSONHandler):
    """GET: Prometheus metrics (runs by final state, duration histogram, queue depth)."""

    async def get(self) -> None:
        """The text exposition format."""
        app = self.service_app
        body, content_type = await app.metrics.render(app.store)
        self.set_header("Content-Type", content_type)
        self.finish(body)


default_handlers = [
    (r"/api/health", HealthHandler),
    (r"/metrics", MetricsHandler),
    (r"/api/environments", EnvironmentsHandler),
]
