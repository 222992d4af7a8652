"""Runs: list mine, read one with its history, cancel or delete one, fetch its outputs."""

from __future__ import annotations

from dsml.scheduler.apihandlers.base import BaseHandler, object_id
from dsml.scheduler.exceptions import NotFound


class RunsHandler(BaseHandler):
    """GET: the caller's runs across jobs."""

    async def get(self) -> None:
        """Runs newest first, optionally filtered by ?state=a,b."""
        user = self.user()
        after, limit = self.page()
        states = tuple(s for s in self.get_argument("state", "").split(",") if s) or None
        owner = None if self.lists_all(user) else user["name"]
        runs = await self.store.run(
            self.store.list_runs, owner=owner, states=states, after=after, limit=limit
        )
        total = await self.store.run(self.store.count_filtered_runs, owner=owner, states=states)
        self.write_listing([self.run_links(r) for r in runs], limit, "runs", total)


class RunHandler(BaseHandler):
    """GET one run, with its state history; DELETE one that has ended, with its outputs."""

    async def get(self, run_id: str) -> None:
        """The run record, its events and links."""
        run, _job = await self.run_for(object_id(run_id, "run"))
        out = self.run_links(run)
        out["events"] = await self.store.run(self.store.events, run["id"])
        self.write_json(out)

    async def delete(self, run_id: str) -> None:
        """Delete the run, its events and outputs (409 while it is queued or going)."""
        run, _job = await self.run_for(object_id(run_id, "run"), write=True)
        await self.store.run(self.store.delete_run, run["id"])
        await self.app.outputs.remove([run["id"]])
        self.set_status(204)
        self.finish()


class CancelHandler(BaseHandler):
    """POST: cancel an active run (409 when it has ended)."""

    async def post(self, run_id: str) -> None:
        """Stop the worker and record the run as cancelled."""
        run, _job = await self.run_for(object_id(run_id, "run"), write=True)
        self.write_json(self.run_links(await self.manager.cancel(run["id"])))


class OutputHandler(BaseHandler):
    """GET a run's executed notebook or its HTML render."""

    async def get(self, run_id: str, what: str) -> None:
        """Serve output.ipynb or output.html (404 when the run kept none)."""
        run, _job = await self.run_for(object_id(run_id, "run"))
        data = await self.app.outputs.read(run["id"], what) if run["has_output"] else None
        if data is None:
            raise NotFound(
                f"run {run_id} has no {what} ({run['state']}: {run['message'] or 'no output'})"
            )
        if what.endswith(".html"):
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header(
                "Content-Security-Policy",
                "sandbox allow-scripts; default-src 'self' 'unsafe-inline' data:",
            )
        else:
            self.set_header("Content-Type", "application/x-ipynb+json")
            self.set_header("Content-Disposition", f'attachment; filename="run-{run_id}.ipynb"')
        self.finish(data)


default_handlers = [
    (r"/api/runs", RunsHandler),
    (r"/api/runs/(\d+)", RunHandler),
    (r"/api/runs/(\d+)/cancel", CancelHandler),
    (r"/api/runs/(\d+)/(output\.html|output\.ipynb)", OutputHandler),
]
