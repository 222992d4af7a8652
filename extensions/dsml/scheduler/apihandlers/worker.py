"""The worker API: what a run's worker fetches and reports, authenticated by the run's token.

It has its own base without hub authentication: a worker holds only its run's token, which
stops working once the run's outputs are in (the HTML that follows the result, or a short
grace after the result).
"""

from __future__ import annotations

import hmac
from typing import Any

from dsml.kernels import kernel_name
from dsml.scheduler.apihandlers.base import BodyLimit, object_id
from dsml.scheduler.exceptions import Forbidden, TooLarge
from dsml.scheduler.store import hash_token


class WorkerHandler(BodyLimit):
    """Base of the worker API: authenticated by the run's own token, nothing else."""

    @property
    def app(self) -> Any:
        """The SchedulerApp."""
        return self.service_app

    def prepare(self) -> None:
        """Refuse an oversized body before it is read."""
        self.check_length()

    def body_limit(self) -> int:
        """Progress reports are small."""
        return 1024 * 1024

    def report(self) -> dict[str, Any]:
        """A worker's JSON report."""
        return self.body()

    def check_xsrf_cookie(self) -> None:
        """Workers send a run token header, no cookies."""

    async def authorize(self, run_id: int) -> None:
        """403 unless X-Dsml-Run-Token matches the token the run was started with (and it
        has not expired)."""
        token = self.request.headers.get("X-Dsml-Run-Token", "")
        stored = await self.app.store.run(self.app.store.run_token_hash, run_id)
        if not token or not stored or not hmac.compare_digest(stored, hash_token(token)):
            raise Forbidden(f"not the worker of run {run_id}")


class WorkerInputHandler(WorkerHandler):
    """GET: the run's notebook, parameters, kernel and limits."""

    async def get(self, run_id: str) -> None:
        """What the worker executes, with the job version's input files."""
        rid = object_id(run_id, "run")
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
                "input_files": await self.app.run_blocking(
                    self.app.inputs.load, run["job_id"], run["job_version"]
                ),
            }
        )


class WorkerProgressHandler(WorkerHandler):
    """POST: cell k of n and the log tail (409 tells the worker its run has ended)."""

    async def post(self, run_id: str) -> None:
        """Record progress."""
        rid = object_id(run_id, "run")
        await self.authorize(rid)
        run = await self.app.manager.report_progress(rid, self.report())
        self.finish({"state": run["state"]})


class WorkerHtmlHandler(WorkerHandler):
    """POST: the HTML render of the executed notebook (sent right after the result)."""

    def body_limit(self) -> int:
        """One HTML render."""
        return int(self.app.max_output_bytes)

    async def post(self, run_id: str) -> None:
        """Store output.html of the run; the run's token ends with it."""
        rid = object_id(run_id, "run")
        await self.authorize(rid)
        data = self.raw_body()
        await self.app.outputs.store_html(rid, data)
        await self.app.store.run(self.app.store.outputs_done, rid, len(data))
        self.finish({"stored": True})


class WorkerResultHandler(WorkerHandler):
    """POST: the outcome, the executed notebook and its HTML."""

    def body_limit(self) -> int:
        """The executed notebook and its HTML, JSON-escaped."""
        return 3 * int(self.app.max_output_bytes)

    async def post(self, run_id: str) -> None:
        """End the run."""
        rid = object_id(run_id, "run")
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
