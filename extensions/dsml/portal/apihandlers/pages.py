"""The portal's pages, in the hub's look: home per role, training, usage, environments.

Every user lands on the home page after login (`c.JupyterHub.default_url`). It gathers what
the person has on the platform: their JupyterLab server, their jobs and last runs (from the
scheduler), the apps shared with them (from the apps service), their training progress and
open package requests; admins also see the platform's health and usage figures. The scheduler
and apps are asked with the *caller's own* token (the page session's OAuth token), so each
person sees exactly what those services would show them, and with a short timeout: a service
that does not answer makes its section say so, never the page fail.

Training and usage figures come from `PortalApp` methods (`training_summary`, `learners`,
`usage_totals`, `usage_history`); the thin wrappers below turn a failure or a timeout into
"not available" for that section only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jupyterhub.utils import url_path_join
from tornado import web

from dsml import scopes
from dsml.client import APPS, RUN_FINAL_STATES, SCHEDULER, AsyncClient
from dsml.portal.exceptions import Forbidden
from dsml.portal.models import OPEN
from dsml.scopes import ENV_REQUESTS_ADMIN, HEALTH_READ
from dsml.service.handlers import APIHandler

log = logging.getLogger("dsml.portal.pages")

PAGE_ROWS = 200
"""Package requests shown on the environments page (newest first)."""

SERVICE_TIMEOUT_SECONDS = 3.0
"""How long the home page waits for the scheduler, the apps service or the hub, in seconds."""

SECTION_TIMEOUT_SECONDS = 4.0
"""How long the home page waits for any one section (health, figures), in seconds."""

HOME_JOBS = 10
"""Jobs listed on the home page (newest first)."""

HISTORY_DAYS = 90
"""Days of daily usage snapshots the usage page draws."""

USAGE_ADMIN = scopes.USAGE_ADMIN

FINAL_RUN_STATES = RUN_FINAL_STATES
"""Run states after which a run changes no more (the usage page charts them)."""


class Unavailable(Exception):
    """A source of a section did not answer, or the portal cannot give it yet."""


async def _portal_figure(app: Any, method: str, *args: Any) -> Any:
    """Call `app.<method>(*args)` within the section's time; Unavailable when it fails."""
    fn: Callable[..., Awaitable[Any]] = getattr(app, method)
    try:
        return await asyncio.wait_for(fn(*args), SECTION_TIMEOUT_SECONDS)
    except Unavailable:
        raise
    except Exception as e:  # one section must never take the page down
        log.warning("pages: %s failed: %s", method, e)
        raise Unavailable(f"{method}: {e}") from None


async def usage_totals(app: Any) -> dict[str, Any]:
    """The platform's usage totals (`GET /api/usage`, up to a poll old), or Unavailable."""
    return await _portal_figure(app, "usage_totals", True)


async def usage_history(app: Any, days: int) -> dict[str, Any]:
    """Daily usage snapshots of the last `days` days: {"days": [...]}, or Unavailable."""
    return {"days": await _portal_figure(app, "usage_history", days)}


async def training_summary(app: Any, user_name: str) -> dict[str, Any]:
    """A user's training progress (`GET /api/training/progress`), or Unavailable."""
    return await _portal_figure(app, "training_summary", user_name)


async def learners(app: Any) -> dict[str, Any]:
    """Every learner's progress: {"learners": [...]}, or Unavailable."""
    return {"learners": await _portal_figure(app, "learners")}


async def service_base_url(handler: APIHandler, name: str) -> str:
    """Where the portal reaches service `name` (its URL and prefix, as the hub lists them)."""
    cache: dict[str, str] = handler.settings.setdefault("dsml_service_urls", {})
    if name not in cache:
        app = handler.service_app
        try:
            model = await asyncio.wait_for(
                app.hub.call("GET", f"services/{name}"), SERVICE_TIMEOUT_SECONDS
            )
        except Exception as e:
            raise Unavailable(f"the hub does not say where {name} is: {e}") from None
        if not model or not model.get("url"):
            raise Unavailable(f"the hub lists no URL for service {name}")
        cache[name] = url_path_join(model["url"], model.get("prefix") or f"/services/{name}/")
    return cache[name]


async def as_caller(handler: APIHandler, base: str, path: str, **params: str) -> Any:
    """GET `path` of an API with the caller's own token, a short timeout; Unavailable else."""
    token = handler.hub_auth.get_token(handler)
    if not token:
        raise Unavailable("no token for this session")
    async with AsyncClient(base, token, timeout=SERVICE_TIMEOUT_SECONDS) as client:
        try:
            return await asyncio.wait_for(
                client.call("GET", path, params=params or None), SERVICE_TIMEOUT_SECONDS + 1
            )
        except Exception as e:  # refused, an error answer, no answer in time: all unavailable
            log.warning("pages: GET %s%s failed: %s", base, path, e)
            raise Unavailable(str(e)) from None


async def my_jobs(handler: APIHandler) -> list[dict[str, Any]]:
    """The caller's jobs (newest first), each with its last run (or None)."""
    base = await service_base_url(handler, SCHEDULER)
    jobs, runs = await asyncio.gather(
        as_caller(handler, base, "api/jobs", limit=str(HOME_JOBS)),
        as_caller(handler, base, "api/runs", limit="100"),
    )
    last: dict[int, dict[str, Any]] = {}
    for run in runs.get("runs") or []:
        last.setdefault(run.get("job_id"), run)  # newest first: the first one seen is the last
    return [{**job, "last_run": last.get(job.get("id"))} for job in jobs.get("jobs") or []]


async def my_apps(handler: APIHandler) -> list[dict[str, Any]]:
    """The apps the caller owns or that are shared with them."""
    base = await service_base_url(handler, APPS)
    return (await as_caller(handler, base, "api/apps")).get("apps") or []


async def my_server(handler: APIHandler, name: str) -> dict[str, Any]:
    """The caller's default server as the hub reports it: {"state": ..., "url": ...}."""
    hub = handler.service_app.hub_api_url
    model = await as_caller(handler, hub, f"users/{name}")
    servers = model.get("servers")
    if servers is None:
        raise Unavailable("the session may not read the server's state")
    server = servers.get("")
    if not server:
        return {"state": "stopped", "url": None}
    if server.get("ready"):
        return {"state": "running", "url": server.get("url")}
    return {"state": server.get("pending") or "starting", "url": server.get("url")}


async def section(work: Awaitable[Any]) -> dict[str, Any]:
    """Run one section's work: {"ok": True, "data": ...} or {"ok": False, "why": ...}."""
    try:
        return {"ok": True, "data": await asyncio.wait_for(work, SECTION_TIMEOUT_SECONDS + 2)}
    except Unavailable as e:
        return {"ok": False, "why": str(e)}
    except Exception as e:  # timeouts and anything else: the section says it is unavailable
        log.warning("pages: a home page section failed: %r", e)
        return {"ok": False, "why": repr(e)}


class PageHandler(APIHandler):
    """What every portal page knows: who asks and what they may see."""

    async def prepare(self) -> None:
        """Pages are for people: a service's token (the usage reader in app kernels) gets 403."""
        await super().prepare()
        model = self.current_user
        if model and model.get("kind", "user") != "user":
            raise Forbidden(
                f"portal pages are for users; this token belongs to {model.get('kind')} "
                f"{model.get('name')}: GET {self.service_app.service_prefix}api/usage instead"
            )

    def page_flags(self) -> dict[str, bool]:
        """Whether the caller uses JupyterLab and whether they administer the platform."""
        return {
            "is_lab_user": self.has_scope(scopes.JOBS_RUN),
            "is_admin": self.has_scope(HEALTH_READ) or self.has_scope(ENV_REQUESTS_ADMIN),
            "is_usage_admin": self.has_scope(USAGE_ADMIN),
        }


class HomeHandler(PageHandler):
    """GET the service's root: the caller's home, per role."""

    @web.authenticated
    async def get(self) -> None:
        """Render the home page; every section is fetched at once, each may be unavailable."""
        user = self.user()
        app = self.service_app
        flags = self.page_flags()
        name = user["name"]
        work: dict[str, Awaitable[Any]] = {"apps": my_apps(self)}
        # training, package requests, the server and jobs are for people who use JupyterLab
        if flags["is_lab_user"]:
            work["training"] = training_summary(app, name)
            work["requests"] = app.store.run(app.store.list_requests, name, None, 50)
            work["server"] = my_server(self, name)
            work["jobs"] = my_jobs(self)
        if flags["is_admin"]:
            work["health"] = app.health()
            work["usage"] = usage_totals(app)
        results = dict(
            zip(work, await asyncio.gather(*(section(w) for w in work.values())), strict=True)
        )
        if results.get("requests", {}).get("ok"):
            results["requests"]["data"] = [
                r for r in results["requests"]["data"] if r["status"] == OPEN
            ]
        if results["apps"]["ok"]:
            apps = results["apps"]["data"]
            results["apps"]["mine"] = [a for a in apps if a["owner"] == name]
            results["apps"]["shared"] = [a for a in apps if a["owner"] != name]
        self.set_header("Cache-Control", "no-store")
        self.finish(self.render_template("home.html", me=name, s=results, **flags))


class TrainingPageHandler(PageHandler):
    """GET: a bar per training module (mine); admins also get the table of learners."""

    @web.authenticated
    async def get(self) -> None:
        """Render the training page."""
        user = self.user()
        app = self.service_app
        flags = self.page_flags()
        mine = await section(training_summary(app, user["name"]))
        everyone = await section(learners(app)) if flags["is_usage_admin"] else None
        self.set_header("Cache-Control", "no-store")
        self.finish(self.render_template("training.html", mine=mine, everyone=everyone, **flags))


def usage_charts(totals: dict[str, Any], history: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Plotly figures (data + layout) of the usage totals and their daily history."""
    charts: list[dict[str, Any]] = []
    days = (history or {}).get("days") or []
    if days:
        x = [d["day"] for d in days]
        # a few days read better as labels than as a time axis of hours
        axis = {"type": "category"} if len(x) < 7 else {"type": "date", "tickformat": "%b %d"}

        def series(path: tuple[str, ...]) -> list[Any]:
            out = []
            for d in days:
                value: Any = d.get("figures") or {}
                for key in path:
                    value = value.get(key) if isinstance(value, dict) else None
                out.append(value)
            return out

        charts.append(
            {
                "id": "chart-active",
                "title": "Active users",
                "layout": {"xaxis": axis},
                "data": [
                    {
                        "type": "scatter",
                        "mode": "lines+markers",
                        "name": "monthly",
                        "x": x,
                        "y": series(("users", "active_monthly")),
                    },
                    {
                        "type": "scatter",
                        "mode": "lines+markers",
                        "name": "weekly",
                        "x": x,
                        "y": series(("users", "active_weekly")),
                    },
                ],
            }
        )
        charts.append(
            {
                "id": "chart-growth",
                "title": "Users, jobs and apps over time",
                "layout": {"xaxis": axis},
                "data": [
                    {"type": "scatter", "mode": "lines", "name": name, "x": x, "y": series(path)}
                    for name, path in (
                        ("users", ("users", "total")),
                        ("jobs defined", ("jobs", "defined")),
                        ("apps published", ("apps", "published")),
                    )
                ],
            }
        )
    runs = (totals.get("jobs") or {}).get("runs") or {}
    charts.append(
        {
            "id": "chart-runs",
            "title": "Runs by final state",
            "data": [
                {
                    "type": "bar",
                    "x": list(runs) or list(FINAL_RUN_STATES[:3]),
                    "y": list(runs.values()) or [0, 0, 0],
                }
            ],
        }
    )
    envs = totals.get("environments") or {}
    charts.append(
        {
            "id": "chart-environments",
            "title": "Environments in use (jobs and apps)",
            "data": [{"type": "bar", "x": list(envs) or ["none"], "y": list(envs.values()) or [0]}],
        }
    )
    return charts


class UsagePageHandler(PageHandler):
    """GET: the platform's usage figures with charts (plotly.js served by the portal)."""

    @web.authenticated
    async def get(self) -> None:
        """Render the usage page."""
        self.user()
        app = self.service_app
        totals, history = await asyncio.gather(
            section(usage_totals(app)), section(usage_history(app, HISTORY_DAYS))
        )
        charts = []
        if totals["ok"]:
            charts = usage_charts(totals["data"], history["data"] if history["ok"] else None)
        self.set_header("Cache-Control", "no-store")
        self.finish(
            self.render_template(
                "usage.html",
                totals=totals,
                history=history,
                # inside <script>: "</" must not end the element, whatever a label holds
                charts_json=json.dumps(charts).replace("</", "<\\/"),
                **self.page_flags(),
            )
        )


def plotly_js_path() -> Path:
    """The plotly.min.js the `plotly` Python package ships (served at static/plotly.min.js)."""
    import plotly

    return Path(os.path.dirname(plotly.__file__)) / "package_data" / "plotly.min.js"


class PlotlyHandler(web.StaticFileHandler):
    """GET static/plotly.min.js: the charting library, from the platform itself (no CDN)."""

    def initialize(self, path: str = "", default_filename: str | None = None) -> None:
        """Serve the folder of the `plotly` package's bundled plotly.min.js."""
        super().initialize(str(plotly_js_path().parent), default_filename)

    def set_extra_headers(self, path: str) -> None:
        """Cache it for a day: it changes only with the platform's plotly version."""
        self.set_header("Cache-Control", "public, max-age=86400")


class EnvironmentsPageHandler(PageHandler):
    """GET: the catalog, my package requests (admins: all), a request form."""

    @web.authenticated
    async def get(self) -> None:
        """Render the page."""
        user = self.user()
        app = self.service_app
        is_admin = self.has_scope(ENV_REQUESTS_ADMIN)
        catalog = await app.run_blocking(app.catalog)
        owner = None if is_admin else user["name"]
        rows = await app.store.run(app.store.list_requests, owner, None, PAGE_ROWS)
        flags = self.page_flags()
        flags["is_admin"] = is_admin
        self.finish(
            self.render_template("environments.html", environments=catalog, requests=rows, **flags)
        )


default_handlers = [
    (r"/?", HomeHandler),
    (r"/training/?", TrainingPageHandler),
    (r"/usage/?", UsagePageHandler),
    (r"/environments/?", EnvironmentsPageHandler),
    (r"/static/(plotly\.min\.js)", PlotlyHandler),
]
