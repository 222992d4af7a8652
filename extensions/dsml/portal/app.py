"""The portal service as one traitlets Application: the platform's own pages and APIs.

It holds the environments catalog, package requests, the platform's health, training progress
(dsml.portal.training) and usage figures (dsml.portal.usage, with a poller of the hub).

JupyterHub runs it as a managed service (`python -m dsml.portal`) with its URL, prefix and
token in the environment and the platform's settings as `--PortalApp.trait=value` arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from traitlets import Float, Unicode, default, validate

from dsml.client import PORTAL
from dsml.datadir import DataDir
from dsml.portal import health, training, usage
from dsml.portal.apihandlers import environments, pages, requests
from dsml.portal.apihandlers import health as health_handlers
from dsml.portal.apihandlers import training as training_handlers
from dsml.portal.apihandlers import usage as usage_handlers
from dsml.portal.models import utcnow
from dsml.portal.store import Store
from dsml.service.app import ServiceApp
from dsml.service.handlers import Route
from dsml.settings import platform_root


class PortalApp(ServiceApp):
    """Environments catalog, package requests and platform health, behind hub auth."""

    name = "dsml-portal"
    description = "The dsml-platform portal service: the platform's own pages and APIs."
    service_name = PORTAL

    platform_data_dir = Unicode(
        config=True,
        help="The platform's data dir (built environments live below it), a path "
        "(default: the folder above data_dir).",
    )

    @default("platform_data_dir")
    def _platform_data_dir_default(self) -> str:
        return str(Path(self.data_dir).resolve().parent)

    environments_dir = Unicode(
        "",
        config=True,
        help="Folder of the built environments, a path (empty: <platform_data_dir>/envs).",
    )
    health_timeout_seconds = Float(
        5.0, config=True, help="Seconds each health check waits for an answer."
    )

    training_dir = Unicode(
        config=True,
        help="Folder of the training notebooks and their curriculum.json, a path "
        "(default: the platform's training/ folder, the one seeded into homes).",
    )

    @default("training_dir")
    def _training_dir_default(self) -> str:
        return str(platform_root() / "training")

    usage_poll_seconds = Float(
        30.0,
        config=True,
        help="Seconds between polls of the hub's users (first logins, server starts) and "
        "rewrites of today's usage snapshot.",
    )

    @validate("usage_poll_seconds")
    def _check_poll(self, proposal: Any) -> float:
        if proposal["value"] < 1:
            raise ValueError("usage_poll_seconds must be at least 1 second")
        return proposal["value"]

    usage_source_timeout_seconds = Float(
        5.0,
        config=True,
        help="Seconds each call to the hub, scheduler or apps service may take before the "
        "usage figures call that source missing.",
    )

    aliases = {
        "data-dir": "PortalApp.data_dir",
        "db-url": "PortalApp.db_url",
        "platform-data-dir": "PortalApp.platform_data_dir",
        "training-dir": "PortalApp.training_dir",
    }

    def initialize(self, argv: list[str] | None = None) -> None:
        """Read config, open (and migrate) the database, connect to the hub API."""
        super().initialize(argv)
        self.store = Store(self.db_url)
        self.store.migrate()
        self.datadir = DataDir(self.platform_data_dir, self.environments_dir or None)
        self.hub = health.ProbeClient(
            self.hub_api_url, self.api_token, timeout=self.health_timeout_seconds
        )
        self.usage = usage.UsageCollector(self)

    def handlers(self) -> list[Route]:
        """Pages, environments, package requests, health, training progress, usage."""
        return (
            pages.default_handlers
            + environments.default_handlers
            + requests.default_handlers
            + health_handlers.default_handlers
            + training_handlers.default_handlers
            + usage_handlers.default_handlers
        )

    def template_paths(self) -> list[str]:
        """The portal's page templates."""
        return [str(Path(__file__).parent / "templates")]

    async def health(self) -> dict[str, str]:
        """Every part's check (see dsml.portal.health)."""
        return await health.platform_health(
            self.hub, self.service_name, self.health_timeout_seconds
        )

    async def started(self) -> None:
        """Start polling the hub for usage figures."""
        self.usage.start()

    async def stopping(self) -> None:
        """Stop the poller, close the hub connections and the database."""
        await self.usage.close()
        await self.hub.close()
        self.store.close()

    def environment_names(self) -> list[str]:
        """The curated environments (names), as images/ declares them."""
        from dsml.environments import list_environments

        return [e.name for e in list_environments()]

    def catalog(self) -> list[dict[str, Any]]:
        """Every curated environment with its pins, build state and changes since the last lock."""
        from dsml.environments import list_environments
        from dsml.environments.history import describe

        return [describe(env, self.datadir) for env in list_environments()]

    # training progress (the API handlers and the pages call these)

    async def curriculum(self) -> training.Curriculum:
        """The curriculum, read from `training_dir` (read each time: it may be updated)."""
        return await self.run_blocking(training.read_curriculum, self.training_dir)

    async def record_progress(
        self, user: str, entries: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Record checked attempts (`training.check_record`) of `user`; the stored entries."""
        return await self.store.run(self.store.record_results, user, entries)

    async def training_summary(self, user: str) -> dict[str, Any]:
        """A learner's progress: {user, modules: [...], next: {...} | None, results: [...]}."""
        entries = await self.store.run(self.store.results_of, user)
        return training.summary(await self.curriculum(), user, entries)

    async def learners(self) -> list[dict[str, Any]]:
        """Every learner with any attempt: {user, passed, exercises, modules_done, last,
        modules}, most recent first."""
        curriculum = await self.curriculum()
        everyone = await self.store.run(self.store.all_results)
        rows = [training.learner_row(curriculum, u, e) for u, e in everyone.items()]
        return sorted(rows, key=lambda r: r["last"] or "", reverse=True)

    # usage figures

    async def usage_totals(self, recent: bool = False) -> dict[str, Any]:
        """The totals of `GET /api/usage`: asked of the hub, scheduler and apps service now,
        or with `recent`, the last collection while it is younger than `usage_poll_seconds`
        (for scrapes and pages, so that their repeats cost the sources nothing)."""
        max_age = float(self.usage_poll_seconds) if recent else 0.0
        return (await self.usage.collect(max_age=max_age))["figures"]

    async def usage_users(self) -> dict[str, Any]:
        """{"users": [per-user rows], "missing": [...]} (for USAGE_ADMIN callers only)."""
        got = await self.usage.collect(per_user=True)
        return {"users": got["users"], "missing": got["missing"]}

    async def usage_history(self, days: int = 30) -> list[dict[str, Any]]:
        """Daily snapshots of the last `days` days: [{"day": "2026-11-30", "figures": {...}}]."""
        return await self.usage.history(days)

    def now(self) -> Any:
        """The portal's clock (UTC, naive, as stored)."""
        return utcnow()
