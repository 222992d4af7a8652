"""Usage figures: totals for every signed-in user, history, per-user table, Prometheus metrics.

Totals and history are for anyone signed in (a leaders' app shows them); the per-user table
needs a token with `custom:dsml:usage:admin`. Every answer lists the sources that did not
answer (`missing`): their part is null, the rest is there.
"""

from __future__ import annotations

from dsml.portal.exceptions import BadRequest, Forbidden
from dsml.portal.usage import metrics_text
from dsml.scopes import USAGE_ADMIN
from dsml.service.handlers import APIHandler

MAX_DAYS = 366
"""Longest history one call returns, in days."""


class UsageHandler(APIHandler):
    """GET: the totals."""

    async def get(self) -> None:
        """Users, servers started, jobs and runs, apps and views, environments, medians."""
        self.user()
        self.set_header("Cache-Control", "no-store")
        self.write_json(await self.service_app.usage_totals())


class HistoryHandler(APIHandler):
    """GET: one snapshot of the figures per day."""

    async def get(self) -> None:
        """`?days=N` (1-366, default 30): {"days": [{"day", "figures"}]}, oldest first."""
        self.user()
        raw = self.get_argument("days", "30")
        try:
            days = int(raw)
        except ValueError:
            days = 0
        if not 1 <= days <= MAX_DAYS or not raw.strip().isdigit():
            raise BadRequest(f"days must be a whole number from 1 to {MAX_DAYS}, got {raw!r}"[:200])
        self.set_header("Cache-Control", "no-store")
        self.write_json({"days": await self.service_app.usage_history(days)})


class UsersHandler(APIHandler):
    """GET: the per-user table (admins only)."""

    async def get(self) -> None:
        """{"users": [{"user", "first_login", "last_activity", "servers_started", "jobs",
        "runs", "apps", "first_job", "first_app"}], "missing": [...]}."""
        self.user()
        if not self.has_scope(USAGE_ADMIN):
            raise Forbidden(
                f"the per-user usage table needs a token with the {USAGE_ADMIN} scope "
                "(platform admins); GET /api/usage gives the totals"
            )
        self.set_header("Cache-Control", "no-store")
        self.write_json(await self.service_app.usage_users())


class MetricsHandler(APIHandler):
    """GET: the totals as Prometheus gauges (`dsml_portal_*`), for any hub token."""

    async def get(self) -> None:
        """The text exposition format."""
        self.user()
        figures = await self.service_app.usage_totals(recent=True)
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(metrics_text(figures))


default_handlers = [
    (r"/api/usage", UsageHandler),
    (r"/api/usage/history", HistoryHandler),
    (r"/api/usage/users", UsersHandler),
    (r"/metrics", MetricsHandler),
]
