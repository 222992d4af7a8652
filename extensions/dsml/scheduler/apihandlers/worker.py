"""The worker API: what a run's worker fetches and reports, authenticated by the run's token.

It has its own base without hub authentication: a worker holds only its run's token.
"""

from __future__ import annotations

import hmac
from typing import Any

from dsml.kernels import kernel_name
from dsml.scheduler.exceptions import Forbidden, TooLarge
from dsml.scheduler.store import hash_token
from dsml.service.handlers import JSONHandler


class WorkerHandler(JSONHandler):
    """Base of the worker API: authenticated by the run's own token, nothing else."""

    @property
    def app(self) -> Any:
        """The SchedulerApp."""
        return self.service_app

    def report(self) -> dict[str, Any]:
        """A worker's JSON report: executed notebooks are larger than an API call's body."""
        return self.body(limit=3 * self.app.max_output_bytes)

    def check_xsrf_cookie(self) -> None:
        """Workers send a run token header, no cookies."""

    async def authorize(self, run_id: int) -> None:
        """403 unless X-Dsml-Run-Token matches the token the run was started with."""
        token = self.request.headers.get("X-Dsml-Run-Token", "")
        stored = await self.app.store.run(self.app.store.run_token_hash, run_id)
        if not token or not stored or not hmac.compare_digest(stored, hash_token(token)):
            raise Forbidden(f"not the worker of run {run_id}")


class WorkerInputHandler(WorkerHandler):
    """GET: the run's notebook, parameters, kernel and limits."""

    async def get(self, run_id: str) -> None:
        """What the worker executes."""
        rid = int(run_id)
        await self.authorize(rid)
        store = self.app.store
        run = await store.run(store.get_run, rid)
        job = await store.run(store.get_job, run["job_id"])
        version = await store.run(store.get_version, run["job_id"], run["job_version"])
        scheduled = run["scheduled_for"] or run["created_at"]
        self.finish(
            {
                "run_id": rid,
                "notebook_name": version["notebook_name"],
                "notebook": version["notebook"],
                "parameters": run["parameters"],
                "scheduled_for": scheduled,
                "kernel_name": kernel_name(run["environment"], run["environment_version"]),
                "cell_timeout_seconds": job["cell_timeout_seconds"],
                "max_output_bytes": self.app.max_output_bytes,
            }
        )


class WorkerProgressHandler(WorkerHandler):
    """POST: cell k of n and the log tail (409 tells the worker its run has ended)."""

    async def post(self, run_id: str) -> None:
        """Record progress."""
        rid = int(run_id)
        await self.authorize(rid)
        run = await self.app.manager.report_progress(rid, self.report())
        self.finish({"state": run["state"]})


class WorkerHtmlHandler(WorkerHandler):
    """POST: the HTML render of the executed notebook (sent right after the result)."""

    async def post(self, run_id: str) -> None:
        """Store output.html of the run."""
        rid = int(run_id)
        await self.authorize(rid)
        if len(self.request.body) > self.app.max_output_bytes:
            raise TooLarge(f"html is over the {self.app.max_output_bytes:,} byte output limit")
        await self.app.outputs.store_html(rid, self.request.body)
        self.finish({"stored": True})


class WorkerResultHandler(WorkerHandler):
    """POST: the outcome, the executed notebook and its HTML."""

    async def post(self, run_id: str) -> None:
        """End the run."""
        rid = int(run_id)
        await self.authorize(rid)
        body = self.report()
        for key in ("notebook", "html"):
            if (
                isinstance(body.get(key), str)
                and len(body[key].encode()) > self.app.max_output_bytes
            ):
                raise TooLarge(f"{key} is over the {self.app.max_output_bytes:,} byte output limit")
        run = await self.app.manager.report_result(rid, body)
        self.finish({"state": run["state"]})


default_handlers = [
    (r"/api/worker/runs/(\d+)", WorkerInputHandler),
    (r"/api/worker/runs/(\d+)/progress", WorkerProgressHandler),
    (r"/api/worker/runs/(\d+)/result", WorkerResultHandler),
    (r"/api/worker/runs/(\d+)/html", WorkerHtmlHandler),
]
