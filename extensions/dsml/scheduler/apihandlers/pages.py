"""The service's page: my jobs and runs with live status, and the hub's OAuth callback."""

from __future__ import annotations

from datetime import datetime

from tornado import web

from dsml.scheduler.apihandlers.base import BaseHandler


def _fmt_time(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value.rstrip("Z")).strftime("%Y-%m-%d %H:%M:%S")


class PageHandler(BaseHandler):
    """The service page: my jobs and runs, with status, duration and links to outputs."""

    @web.authenticated
    async def get(self, run_id: str | None = None) -> None:
        """Render the list (or one run) with live status."""
        user = self.user()
        jobs = await self.store.run(
            self.store.list_jobs, user["name"], list(user.get("groups") or []), None, 200
        )
        runs = await self.store.run(self.store.list_runs, owner=user["name"], after=None, limit=100)
        self.finish(
            self.render_template(
                "scheduler.html",
                me=user,
                jobs=jobs,
                runs=[self.run_links(r) for r in runs],
                prefix=self.app.public_prefix,
                fmt=_fmt_time,
                names={j["id"]: j["name"] for j in jobs},
                focus=int(run_id) if run_id else None,
            )
        )


default_handlers = [
    (r"/?", PageHandler),
    (r"/runs/(\d+)/?", PageHandler),
]
