"""An app's server and what it reports: start, stop, status, log tail, views, usage, metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from dsml.apps.apihandlers.base import SLUG, AppsHandler
from dsml.apps.exceptions import BadRequest
from dsml.service.handlers import MAX_ID, APIHandler


class StartHandler(AppsHandler):
    """POST: start the app's server. Anyone who may open the app may wake it."""

    async def post(self, slug: str) -> None:
        """Start it; answer its status."""
        found = await self.app_for(slug)
        app = self.service_app
        await app.start_server(found)
        self.write_json(await app.status(found))


class StopHandler(AppsHandler):
    """POST: stop the app's server (owner or admin)."""

    async def post(self, slug: str) -> None:
        """Stop it; answer its status."""
        found = await self.app_for(slug, change=True)
        app = self.service_app
        await app.stop_server(found)
        self.write_json(await app.status(found))


class StatusHandler(AppsHandler):
    """GET the app server's state (what the waiting page polls)."""

    async def get(self, slug: str) -> None:
        """The status."""
        found = await self.app_for(slug)
        self.write_json(await self.service_app.status(found))


class LogsHandler(AppsHandler):
    """GET the log tail and last error the app's server sent (owner or admin)."""

    async def get(self, slug: str) -> None:
        """The log."""
        await self.app_for(slug, change=True)
        app = self.service_app
        self.write_json(await app.store.run(app.store.log, slug))


class UsageHandler(AppsHandler):
    """GET views, unique viewers and render times, per version (owner or admin)."""

    async def get(self, slug: str) -> None:
        """The figures."""
        await self.app_for(slug, change=True, figures=True)
        app = self.service_app
        self.write_json(await app.store.run(app.store.usage, slug))


MAX_EVENTS = 1000
"""Most views one report may carry."""


def _views(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_EVENTS:
        raise BadRequest(f"views must be a list of at most {MAX_EVENTS} views")
    out = []
    for v in value:
        if not isinstance(v, dict):
            raise BadRequest('each view must be {"viewer", "version", "render_seconds"}')
        viewer, version, seconds = v.get("viewer"), v.get("version"), v.get("render_seconds")
        if not isinstance(viewer, str) or not 0 < len(viewer) <= 255:
            raise BadRequest("view.viewer must be a user name")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_ID:
            raise BadRequest("view.version must be a version number")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds < 86400
        ):
            raise BadRequest("view.render_seconds must be a number of seconds (0-86400)")
        out.append({"viewer": viewer, "version": version, "render_seconds": float(seconds)})
    return out


class EventsHandler(AppsHandler):
    """POST from the app server (the owner's server token): views, log tail, error."""

    async def post(self, slug: str) -> None:
        """Record them."""
        await self.app_for(slug, change=True)
        body = self.body()
        views = _views(body.get("views"))
        lines = body.get("log")
        if lines is not None and (
            not isinstance(lines, list) or not all(isinstance(x, str) for x in lines)
        ):
            raise BadRequest("log must be a list of lines (strings)")
        error = body.get("error")
        if error is not None and not isinstance(error, str):
            raise BadRequest("error must be text or null")
        app = self.service_app
        if views:
            await app.store.run(app.store.add_views, slug, views)
        if lines is not None or error is not None:
            lines = [x[:2000] for x in lines[-200:]] if lines is not None else None
            await app.store.run(app.store.set_log, slug, lines, (error or "")[:20000] or None)
        self.set_status(204)
        self.finish()


class MetricsHandler(APIHandler):
    """GET Prometheus metrics: views, unique viewers and median render time per app."""

    async def get(self) -> None:
        """The metrics, in Prometheus' text format."""
        self.user()
        app = self.service_app
        totals = await app.store.run(app.store.usage_totals)
        registry = CollectorRegistry()
        registry.register(_Collector(totals))
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.finish(generate_latest(registry))


class _Collector:
    def __init__(self, totals: list[dict[str, Any]]):
        self.totals = totals

    def collect(self):  # type: ignore[no-untyped-def]
        views = CounterMetricFamily(
            "dsml_app_views", "Renderings of an app's page", labels=["app", "version"]
        )
        viewers = GaugeMetricFamily(
            "dsml_app_unique_viewers", "People who opened an app", labels=["app"]
        )
        render = GaugeMetricFamily(
            "dsml_app_render_seconds_p50",
            "Median time to render an app's page, in seconds",
            labels=["app"],
        )
        apps = GaugeMetricFamily("dsml_apps", "Published apps")
        apps.add_metric([], len(self.totals))
        for t in self.totals:
            viewers.add_metric([t["slug"]], t["unique_viewers"])
            if t["render_seconds_p50"] is not None:
                render.add_metric([t["slug"]], t["render_seconds_p50"])
            for v in t["versions"]:
                views.add_metric([t["slug"], str(v["version"])], v["views"])
        yield from (apps, views, viewers, render)


default_handlers = [
    (rf"/api/apps/{SLUG}/start/?", StartHandler),
    (rf"/api/apps/{SLUG}/stop/?", StopHandler),
    (rf"/api/apps/{SLUG}/status/?", StatusHandler),
    (rf"/api/apps/{SLUG}/logs/?", LogsHandler),
    (rf"/api/apps/{SLUG}/usage/?", UsageHandler),
    (rf"/api/apps/{SLUG}/events/?", EventsHandler),
    (r"/metrics", MetricsHandler),
]
