"""Usage figures: collected from the hub's, the scheduler's and the apps service's APIs.

What the hub does not keep (a user's first login, each server start) the portal records itself
by polling `GET /hub/api/users`; jobs and runs come from the scheduler API, apps and their views
from the apps API, each with the portal's own service token. A source that does not answer in
time is listed in `missing` and its part of the figures is null: the rest still answers.
Today's figures are kept as a daily snapshot in the portal database (rewritten as the day goes;
a missing source keeps the part it had), so history survives restarts.

Plain async functions with explicit arguments; `UsageCollector` ties them to one app.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from jupyterhub.utils import url_path_join
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from dsml.client import (
    APP_SERVER_PREFIX,
    APPS,
    RUN_FINAL_STATES,
    SCHEDULER,
    ApiError,
    AsyncClient,
)
from dsml.portal.models import iso, utcnow

log = logging.getLogger("dsml.portal.usage")

HUB = "hub"
"""Name of the hub as a source of figures (in `missing`)."""

SOURCES = (HUB, SCHEDULER, APPS)
"""Every source of figures."""

FINAL_STATES = RUN_FINAL_STATES
"""A run's final states, as the scheduler's API names them."""

MONTH = timedelta(days=30)
WEEK = timedelta(days=7)

PAGINATION = {"Accept": "application/jupyterhub-pagination+json"}
"""The hub pages `GET /users` (offset, limit, total) when asked for this media type."""

MAX_PARALLEL = 8
"""Calls to a service at once when asking about each app."""


class SourceDown(Exception):
    """A source of figures did not answer (or answered with an error)."""


def parse_time(value: str | None) -> datetime | None:
    """A time from an API (ISO 8601, `Z` or offset) as stored: naive UTC; None stays None."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def show_time(value: datetime | None) -> str | None:
    """A stored time as the API shows it (None stays None)."""
    return iso(value) if value is not None else None


async def hub_users(hub: AsyncClient) -> list[dict[str, Any]]:
    """Every hub user as `Store.observe_users` takes them: name, times, server starts.

    App servers (`app-<slug>`) are the apps service's, not a person starting a server: left out.
    """
    users: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await hub.call(
            "GET", "users", params={"offset": str(offset), "limit": "200"}, headers=PAGINATION
        )
        items = page["items"] if isinstance(page, dict) else page
        for u in items:
            starts = [
                (name, parse_time(server.get("started")))
                for name, server in (u.get("servers") or {}).items()
                if server.get("started") and not name.startswith(APP_SERVER_PREFIX)
            ]
            users.append(
                {
                    "name": u["name"],
                    "created": parse_time(u.get("created")),
                    "last_activity": parse_time(u.get("last_activity")),
                    "starts": starts,
                }
            )
        following = (page.get("_pagination") or {}).get("next") if isinstance(page, dict) else None
        if not following or not items:
            return users
        offset = int(following["offset"])


async def scheduler_figures(client: AsyncClient, per_user: bool) -> dict[str, Any]:
    """Jobs (every user's, with owner, time and environment) and runs per final state.

    With `per_user`, also runs per owner (one pass over every run; only the admins' table
    needs it). Needs a token with the jobs admin scope: `?all=1` lists everyone's.
    """
    jobs = [j async for j in client.pages("jobs", "jobs", {"all": "1"}, limit=500)]
    totals = await asyncio.gather(
        *(
            client.call("GET", "runs", params={"all": "1", "state": state, "limit": "1"})
            for state in FINAL_STATES
        )
    )
    out: dict[str, Any] = {
        "jobs": [
            {
                "owner": j["owner"],
                "created": parse_time(j.get("created_at")),
                "environment": j.get("environment"),
            }
            for j in jobs
        ],
        "runs": {
            state: int(t.get("total", 0)) for state, t in zip(FINAL_STATES, totals, strict=True)
        },
    }
    if per_user:
        runs: dict[str, int] = {}
        async for r in client.pages("runs", "runs", {"all": "1"}, limit=500):
            runs[r["owner"]] = runs.get(r["owner"], 0) + 1
        out["runs_per_user"] = runs
    return out


async def apps_figures(client: AsyncClient) -> dict[str, Any]:
    """Every app (owner, publish time, environment of its current version) and its views.

    Needs a token with the apps admin scope: `?all=1` lists every app, and an app's usage and
    versions are its owner's or an admin's to read.
    """
    apps = (await client.call("GET", "apps", params={"all": "1"}))["apps"]
    gate = asyncio.Semaphore(MAX_PARALLEL)

    async def detail(app: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            usage, versions = await asyncio.gather(
                client.call("GET", f"apps/{app['slug']}/usage"),
                client.call("GET", f"apps/{app['slug']}/versions"),
            )
        current = next(
            (v for v in versions["versions"] if v.get("version") == app["current_version"]),
            (versions["versions"] or [{}])[0],
        )
        return {
            "slug": app["slug"],
            "owner": app["owner"],
            "created": parse_time(app.get("created")),
            "environment": current.get("environment"),
            "views": int(usage.get("views") or 0),
            "unique_viewers": int(usage.get("unique_viewers") or 0),
        }

    return {"apps": list(await asyncio.gather(*(detail(a) for a in apps)))}


def median_seconds(pairs: list[tuple[datetime | None, datetime | None]]) -> float | None:
    """Median of (later - earlier) in seconds over pairs with both times; None with none.

    A negative gap (the portal saw the login after the job, having started later) counts as 0.
    """
    gaps = [max(0.0, (b - a).total_seconds()) for a, b in pairs if a is not None and b is not None]
    return round(statistics.median(gaps), 3) if gaps else None


def figures_from(
    now: datetime,
    users: list[dict[str, Any]],
    starts: tuple[int, int],
    scheduler: dict[str, Any] | None,
    apps: dict[str, Any] | None,
    missing: list[str],
) -> dict[str, Any]:
    """The totals as `GET /api/usage` shows them, from what each source gave (None: missing)."""
    present = [u for u in users if not u["deleted"]]

    def within(key: str, span: timedelta) -> int:
        return sum(1 for u in present if u[key] is not None and u[key] >= now - span)

    environments: dict[str, int] = {}
    for item in (scheduler or {}).get("jobs", []) + (apps or {}).get("apps", []):
        if item.get("environment"):
            environments[item["environment"]] = environments.get(item["environment"], 0) + 1
    return {
        "generated_at": iso(now),
        "missing": missing,
        "users": {
            "total": len(present),
            "active_monthly": within("last_activity", MONTH),
            "active_weekly": within("last_activity", WEEK),
            "new_monthly": within("first_login", MONTH),
            "new_weekly": within("first_login", WEEK),
        },
        "servers_started": {"total": starts[0], "last_30_days": starts[1]},
        "jobs": None
        if scheduler is None
        else {"defined": len(scheduler["jobs"]), "runs": dict(scheduler["runs"])},
        "apps": None
        if apps is None
        else {
            "published": len(apps["apps"]),
            "views": sum(a["views"] for a in apps["apps"]),
            # per app, summed: the apps API counts each app's viewers, not who they are
            "unique_viewers": sum(a["unique_viewers"] for a in apps["apps"]),
        },
        "environments": dict(sorted(environments.items())),
        "median_seconds_to_first_job": median_seconds(
            [(u["first_login"], u["first_job"]) for u in users]
        ),
        "median_seconds_to_first_app": median_seconds(
            [(u["first_login"], u["first_app"]) for u in users]
        ),
    }


def firsts(items: list[dict[str, Any]]) -> dict[str, datetime]:
    """Each owner's earliest `created` among jobs or apps."""
    out: dict[str, datetime] = {}
    for item in items:
        at = item.get("created")
        if at is not None and (item["owner"] not in out or at < out[item["owner"]]):
            out[item["owner"]] = at
    return out


def user_table(
    users: list[dict[str, Any]], scheduler: dict[str, Any] | None, apps: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Per user: first login, activity, servers started, jobs, runs, apps, first job and app.

    jobs, runs and apps are null when their source is missing.
    """

    def count(items: list[dict[str, Any]], name: str) -> int:
        return sum(1 for i in items if i["owner"] == name)

    rows = []
    for u in users:
        if u["deleted"]:
            continue
        rows.append(
            {
                "user": u["user"],
                "first_login": show_time(u["first_login"]),
                "last_activity": show_time(u["last_activity"]),
                "servers_started": u["servers_started"],
                "jobs": None if scheduler is None else count(scheduler["jobs"], u["user"]),
                "runs": None
                if scheduler is None
                else scheduler.get("runs_per_user", {}).get(u["user"], 0),
                "apps": None if apps is None else count(apps["apps"], u["user"]),
                "first_job": show_time(u["first_job"]),
                "first_app": show_time(u["first_app"]),
            }
        )
    return rows


def merge_snapshot(figures: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """Today's snapshot: the new figures, with a missing source's parts kept from `old`."""
    kept = dict(figures)
    if old:
        for part in ("jobs", "apps"):
            if kept.get(part) is None and old.get(part) is not None:
                kept[part] = old[part]
        if kept.get("missing") and not old.get("missing"):
            # environments count jobs and apps: keep the complete count of earlier today
            kept["environments"] = old.get("environments", kept["environments"])
    return kept


class UsageCollector:
    """Collects the figures for one portal: clients of the three sources, the store, a poller."""

    def __init__(self, app: Any):
        self.app = app
        self.timeout = float(app.usage_source_timeout_seconds)
        self.hub = AsyncClient(app.hub_api_url, app.api_token, timeout=self.timeout)
        self._services: dict[str, AsyncClient] = {}
        self._lock = asyncio.Lock()
        # per `per_user`: (monotonic start, result) of the last collection
        self._last: dict[bool, tuple[float, dict[str, Any]]] = {}
        self._task: asyncio.Task | None = None

    async def close(self) -> None:
        """Stop the poller and close the connections."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping anyway
                pass
        await self.hub.close()
        for client in self._services.values():
            await client.close()

    async def service(self, name: str) -> AsyncClient:
        """A client of a service's API at the address the hub gives for it."""
        if name not in self._services:
            model = await self.hub.call("GET", f"services/{name}")
            if not model.get("url"):
                raise SourceDown(f"the hub knows no URL of service {name}")
            base = url_path_join(model["url"], model.get("prefix") or f"/services/{name}/", "api")
            self._services[name] = AsyncClient(base, self.app.api_token, timeout=self.timeout)
        return self._services[name]

    async def _source(self, name: str, call: Any) -> Any:
        """The result of a source's call, or None (logged) when it did not answer in time."""
        try:
            return await asyncio.wait_for(call, self.timeout * 3)
        except (ApiError, SourceDown, TimeoutError, OSError) as e:
            log.warning("usage: %s did not answer: %s", name, e)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("usage: %s answered something unexpected: %r", name, e)
        return None

    async def _scheduler(self, per_user: bool) -> dict[str, Any]:
        return await scheduler_figures(await self.service(SCHEDULER), per_user)

    async def _apps(self) -> dict[str, Any]:
        return await apps_figures(await self.service(APPS))

    async def collect(self, per_user: bool = False) -> dict[str, Any]:
        """Ask every source, record what the hub does not keep, save today's snapshot.

        Returns {"figures", "users" (the admins' table rows), "missing"}. One collection at
        a time: callers that arrive meanwhile wait, then share the next collection instead of
        each asking the sources again (a result is shared only with callers that arrived before
        it started, so nobody gets figures older than their request).
        """
        arrived = time.monotonic()
        async with self._lock:
            last = self._last.get(per_user)
            if last is not None and last[0] >= arrived:
                return last[1]
            started = time.monotonic()
            got = await self._collect(per_user)
            self._last[per_user] = (started, got)
            return got

    async def _collect(self, per_user: bool) -> dict[str, Any]:
        store = self.app.store
        now = utcnow()
        hub_users_, scheduler, apps = await asyncio.gather(
            self._source(HUB, hub_users(self.hub)),
            self._source(SCHEDULER, self._scheduler(per_user)),
            self._source(APPS, self._apps()),
        )
        missing = [
            name
            for name, got in zip(SOURCES, (hub_users_, scheduler, apps), strict=True)
            if got is None
        ]
        if hub_users_ is not None:
            await store.run(store.observe_users, hub_users_, now)
        await store.run(
            store.observe_firsts,
            firsts(scheduler["jobs"]) if scheduler else {},
            firsts(apps["apps"]) if apps else {},
            now,
        )
        users = await store.run(store.usage_users)
        starts = (
            await store.run(store.count_server_starts),
            await store.run(store.count_server_starts, now - MONTH),
        )
        figures = figures_from(now, users, starts, scheduler, apps, missing)
        day = now.date().isoformat()
        old = await store.run(store.latest_snapshot)
        previous = old["figures"] if old and old["day"] == day else None
        await store.run(store.save_snapshot, day, merge_snapshot(figures, previous))
        table = user_table(users, scheduler, apps) if per_user else []
        return {"figures": figures, "users": table, "missing": missing}

    async def history(self, days: int) -> list[dict[str, Any]]:
        """The daily snapshots of the last `days` days (today included), oldest first."""
        store = self.app.store
        since = (utcnow().date() - timedelta(days=days - 1)).isoformat()
        rows = await store.run(store.snapshots, since)
        return [{"day": r["day"], "figures": r["figures"]} for r in rows]

    def start(self) -> None:
        """Poll every `usage_poll_seconds` (a first poll right away)."""
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            try:
                await self.collect()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the poller must outlive any one failure
                log.exception("usage: poll failed")
            await asyncio.sleep(float(self.app.usage_poll_seconds))


def metrics_text(figures: dict[str, Any]) -> bytes:
    """The totals as Prometheus gauges (`dsml_portal_*`), in the text exposition format."""
    registry = CollectorRegistry()
    registry.register(_Collector(figures))
    return generate_latest(registry)


class _Collector:
    def __init__(self, figures: dict[str, Any]):
        self.f = figures

    def collect(self):  # type: ignore[no-untyped-def]
        f = self.f

        def gauge(name: str, doc: str, value: float | None, labels: dict | None = None):  # type: ignore[no-untyped-def]
            g = GaugeMetricFamily(f"dsml_portal_{name}", doc, labels=list(labels or {}))
            if value is not None:
                g.add_metric(list((labels or {}).values()), value)
            return g

        users = f["users"]
        active = GaugeMetricFamily(
            "dsml_portal_users_active", "Users active in the window", labels=["window"]
        )
        active.add_metric(["monthly"], users["active_monthly"])
        active.add_metric(["weekly"], users["active_weekly"])
        new = GaugeMetricFamily(
            "dsml_portal_users_new", "Users whose first login is in the window", labels=["window"]
        )
        new.add_metric(["monthly"], users["new_monthly"])
        new.add_metric(["weekly"], users["new_weekly"])
        yield gauge("users", "Users the hub knows", users["total"])
        yield active
        yield new
        yield gauge("servers_started", "Server starts recorded", f["servers_started"]["total"])
        yield gauge(
            "servers_started_last_30_days",
            "Server starts in the last 30 days",
            f["servers_started"]["last_30_days"],
        )
        runs = GaugeMetricFamily(
            "dsml_portal_job_runs", "Runs of scheduled jobs by final state", labels=["state"]
        )
        jobs = f.get("jobs")
        if jobs is not None:
            for state, n in jobs["runs"].items():
                runs.add_metric([state], n)
        yield gauge("jobs_defined", "Jobs defined", None if jobs is None else jobs["defined"])
        yield runs
        apps = f.get("apps")
        yield gauge("apps_published", "Apps published", apps and apps["published"])
        yield gauge("app_views", "Views of every app", apps and apps["views"])
        yield gauge(
            "app_unique_viewers", "Unique viewers per app, summed", apps and apps["unique_viewers"]
        )
        envs = GaugeMetricFamily(
            "dsml_portal_environment_use",
            "Jobs and apps using each curated environment",
            labels=["environment"],
        )
        for name, n in f["environments"].items():
            envs.add_metric([name], n)
        yield envs
        yield gauge(
            "median_seconds_to_first_job",
            "Median seconds from a user's first login to their first job",
            f["median_seconds_to_first_job"],
        )
        yield gauge(
            "median_seconds_to_first_app",
            "Median seconds from a user's first login to their first published app",
            f["median_seconds_to_first_app"],
        )
        up = GaugeMetricFamily(
            "dsml_portal_source_up", "1 when a source of figures answered", labels=["source"]
        )
        for name in SOURCES:
            up.add_metric([name], 0 if name in f["missing"] else 1)
        yield up
