"""The run manager: cron ticks, the queue, dispatch to the executor, deadlines, retries,
reconciliation after a restart, retention and notifications.

Everything that changes a run's state goes through here (the API handlers call it too), so
the state machine has one owner.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from traitlets import Float
from traitlets.config import LoggingConfigurable

from dsml.kernels import kernel_name
from dsml.scheduler import cron
from dsml.scheduler.exceptions import Conflict
from dsml.scheduler.executors import Executor, Launch
from dsml.scheduler.models import (
    CANCELLED,
    FAILED,
    LOST,
    QUEUED,
    RUNNING,
    SKIPPED,
    STARTING,
    SUCCEEDED,
    TIMED_OUT,
    utcnow,
)
from dsml.scheduler.notify import Notifier
from dsml.scheduler.outputs import Outputs
from dsml.scheduler.store import Store, hash_token

log = logging.getLogger("dsml.scheduler")


class RunManager(LoggingConfigurable):
    """Owns the scheduler loop and every run state change."""

    tick_seconds = Float(1.0, config=True, help="Seconds between scheduler loop passes.")
    grace_seconds = Float(
        90.0, config=True, help="Seconds after a cron tick within which it counts as on time."
    )
    start_timeout_seconds = Float(
        120.0, config=True, help="Seconds a worker may take to report before the run is lost."
    )

    def __init__(
        self,
        store: Store,
        executor: Executor,
        outputs: Outputs | Path,
        service_url: str,
        *,
        notifier: Notifier | None = None,
        public_url: str = "",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.store = store
        self.executor = executor
        self.outputs = outputs if isinstance(outputs, Outputs) else Outputs(root=str(outputs))
        self.service_url = service_url
        self.public_url = public_url
        self.notifier = notifier
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self.metrics: Any = None

    # lifecycle

    async def start(self) -> None:
        """Reconcile what a previous process left, then run the loop in the background."""
        await self.reconcile()
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        """Stop the loop. After a crash, running workers keep going and report to the next
        process; a graceful stop (the platform is shutting down) stops them, see stop_active."""
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def stop_active(self) -> None:
        """Stop every running worker and record its run as lost (retried per the job's policy):
        when the platform stops, nothing it started may keep running."""
        active = [r for r in await self.store.run(self.store.active_runs) if r["state"] != QUEUED]
        await asyncio.gather(*(self.executor.stop(r) for r in active), return_exceptions=True)
        for run in active:
            try:
                await self.finish(
                    run["id"],
                    LOST,
                    failure_kind="infra",
                    message="the scheduler was stopped while the run was going",
                )
            except Conflict:
                pass  # it reported its result meanwhile

    def wake(self) -> None:
        """Run a loop iteration now (a run was queued)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler tick failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.tick_seconds)
            except TimeoutError:
                pass
            self._wake.clear()

    async def tick(self, now: datetime | None = None) -> None:
        """One pass: fire due cron ticks, watch active runs, dispatch queued ones."""
        now = now or utcnow()
        await self.fire_due(now)
        await self.watch(now)
        await self.dispatch(now)

    # cron

    async def fire_due(self, now: datetime) -> None:
        """Create the runs (or skipped records) of every cron tick that has come."""
        for job in await self.store.run(self.store.due_jobs, now):
            start = datetime.fromisoformat(job["next_run_at"].rstrip("Z"))
            due = cron.ticks_between(job["schedule"], job["timezone"], start, now)
            to_run, to_skip = cron.plan_ticks(
                due, now, job["catch_up"], job["catch_up_cap"], self.grace_seconds
            )
            nxt = cron.next_tick(job["schedule"], job["timezone"], max(now, start))
            # one database round trip per job: 200 jobs due at once must not queue up
            await self.store.run(self.store.fire_ticks, job, to_run, to_skip, nxt)

    # dispatch

    async def dispatch(self, now: datetime) -> None:
        """Start queued runs while the executor has capacity and each job's limits allow."""
        running = await self.store.run(self.store.active_count_by_job)
        in_flight = sum(running.values())
        if in_flight >= self.executor.capacity:
            return
        for run in await self.store.run(self.store.queued_ready, now):
            if in_flight >= self.executor.capacity:
                break
            job = await self.store.run(self.store.get_job, run["job_id"])
            active = running.get(job["id"], 0)
            if job["overlap"] != "allow" and active > 0:
                continue
            if active >= job["max_concurrent_runs"]:
                continue
            await self._launch(run, job, now)
            running[job["id"]] = active + 1
            in_flight += 1

    async def _launch(self, run: dict[str, Any], job: dict[str, Any], now: datetime) -> None:
        token = secrets.token_urlsafe(32)
        deadline = (
            now + timedelta(seconds=job["deadline_seconds"]) if job["deadline_seconds"] else None
        )
        try:
            run = await self.store.run(
                self.store.transition,
                run["id"],
                STARTING,
                token_hash=hash_token(token),
                executor=self.executor.name,
                deadline_at=deadline,
                started_at=now,
            )
        except Conflict:
            return  # cancelled meanwhile
        launch = Launch(
            run_id=run["id"],
            token=token,
            service_url=self.service_url,
            kernel_name=kernel_name(run["environment"], run["environment_version"]),
            environment=run["environment"],
            owner=job["owner"],
        )
        try:
            ref = await self.executor.start(run, launch)
        except Exception as e:  # noqa: BLE001 - any start failure is an infrastructure failure
            log.exception("starting run %s failed", run["id"])
            await self.finish(
                run["id"], FAILED, failure_kind="infra", message=f"the worker did not start: {e}"
            )
            return
        await self.store.run(self.store.update_run, run["id"], executor_ref=ref)

    # watching

    async def watch(self, now: datetime) -> None:
        """End runs past their deadline, and runs whose worker vanished without a result."""
        for run in await self.store.run(self.store.active_runs):
            if run["state"] not in (STARTING, RUNNING):
                continue
            deadline = run["deadline_at"]
            if deadline and now >= datetime.fromisoformat(deadline.rstrip("Z")):
                await self.executor.stop(run)
                await self.finish(
                    run["id"],
                    TIMED_OUT,
                    failure_kind="deadline",
                    message="the run passed its deadline and was stopped",
                )
                continue
            if run["executor_ref"] is None:
                started = datetime.fromisoformat(run["started_at"].rstrip("Z"))
                if (now - started).total_seconds() > self.start_timeout_seconds:
                    await self.finish(
                        run["id"], LOST, failure_kind="infra", message="the worker never started"
                    )
                continue
            if not await self.executor.is_alive(run):
                # a worker posts its result before it exits: give the request a moment to land
                await asyncio.sleep(0.5)
                fresh = await self.store.run(self.store.get_run, run["id"])
                if fresh["state"] in (STARTING, RUNNING):
                    await self.finish(
                        run["id"],
                        LOST,
                        failure_kind="infra",
                        message="the worker exited without reporting a result",
                    )

    async def reconcile(self) -> None:
        """After a restart: keep watching live workers, mark the vanished ones lost."""
        for run in await self.store.run(self.store.active_runs):
            if run["state"] == QUEUED:
                continue
            if run["executor_ref"] and await self.executor.is_alive(run):
                log.info("run %s is still running; watching it again", run["id"])
                continue
            await self.finish(
                run["id"],
                LOST,
                failure_kind="infra",
                message="the scheduler restarted and the run's worker was gone",
            )

    # ending runs

    async def cancel(self, run_id: int) -> dict[str, Any]:
        """Cancel a queued or running run (also one started by a previous process)."""
        run = await self.store.run(self.store.get_run, run_id)
        if run["state"] not in (QUEUED, STARTING, RUNNING):
            raise Conflict(
                f"run {run_id} is {run['state']} already; only active runs can be cancelled"
            )
        if run["state"] != QUEUED:
            await self.executor.stop(run)
        return await self.finish(run_id, CANCELLED, message="cancelled by request", retry=False)

    async def cancel_queued(self, job_id: int, message: str) -> int:
        """Cancel a job's runs that have not started (a paused job starts nothing new)."""
        queued = await self.store.run(
            self.store.list_runs, job_id=job_id, states=(QUEUED,), limit=10_000
        )
        for run in queued:
            try:
                await self.finish(run["id"], CANCELLED, message=message, retry=False)
            except Conflict:
                pass  # started meanwhile
        return len(queued)

    async def finish(
        self,
        run_id: int,
        state: str,
        *,
        failure_kind: str | None = None,
        message: str | None = None,
        retry: bool = True,
        **fields: Any,
    ) -> dict[str, Any]:
        """Move a run to a final state; then retries, retention and notifications."""
        run = await self.store.run(
            self.store.transition,
            run_id,
            state,
            message,
            failure_kind=failure_kind,
            **fields,
        )
        if self.metrics is not None:
            self.metrics.observe(run)
        job = await self.store.run(self.store.get_job, run["job_id"])
        if retry and state in (FAILED, LOST, TIMED_OUT):
            await self._maybe_retry(run, job)
        if self.notifier is not None and state != SKIPPED:
            asyncio.ensure_future(self.notifier.run_finished(job, run, self.run_url(run)))
        await self._apply_retention(job)
        self.wake()
        return run

    def run_url(self, run: dict[str, Any]) -> str:
        """Public URL of a run's page."""
        return f"{self.public_url.rstrip('/')}/runs/{run['id']}"

    async def _maybe_retry(self, run: dict[str, Any], job: dict[str, Any]) -> None:
        kind = run["failure_kind"]
        retryable = kind in ("infra",) or (
            kind in ("user", "deadline") and job["retry_on_user_error"]
        )
        if not retryable or run["attempt"] > job["retries"]:
            return
        backoff = job["retry_backoff_seconds"] * (2 ** (run["attempt"] - 1))
        scheduled = (
            datetime.fromisoformat(run["scheduled_for"].rstrip("Z"))
            if run["scheduled_for"]
            else None
        )
        await self.store.run(
            self.store.create_run,
            {
                **job,
                "version": run["job_version"],
                "environment": run["environment"],
                "environment_version": run["environment_version"],
            },
            trigger="retry",
            parameters=run["parameters"],
            scheduled_for=scheduled,
            attempt=run["attempt"] + 1,
            retry_of=run["id"],
            not_before=utcnow() + timedelta(seconds=backoff),
            message=f"retry {run['attempt']} of {job['retries']} after: {run['message'] or kind}",
        )

    async def _apply_retention(self, job: dict[str, Any]) -> None:
        if not (job["keep_runs"] or job["keep_days"]):
            return
        expired = await self.store.run(self.store.expired_runs, job, utcnow())
        await self.outputs.remove(expired)
        await self.store.run(self.store.delete_runs, expired)

    # worker reports

    async def report_progress(self, run_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """A worker's progress: the first one moves the run to running."""
        run = await self.store.run(self.store.get_run, run_id)
        if run["state"] == STARTING:
            run = await self.store.run(self.store.transition, run_id, RUNNING)
        elif run["state"] != RUNNING:
            raise Conflict(f"run {run_id} is {run['state']}; stop working on it")
        fields = {}
        if isinstance(body.get("cell"), int):
            fields["cell_index"] = body["cell"]
        if isinstance(body.get("cells"), int):
            fields["cell_count"] = body["cells"]
        if isinstance(body.get("log_tail"), str):
            fields["log_tail"] = body["log_tail"][-8000:]
        if fields:
            run = await self.store.run(self.store.update_run, run_id, **fields)
        return run

    async def report_result(self, run_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """A worker's final report: store the outputs, then end the run in its state."""
        run = await self.store.run(self.store.get_run, run_id)
        if run["state"] not in (STARTING, RUNNING):
            raise Conflict(f"run {run_id} is {run['state']} already")
        state = body.get("state")
        if state not in (SUCCEEDED, FAILED, TIMED_OUT):
            raise Conflict(f"a worker cannot end a run as {state!r}")
        has_output = await self.outputs.store_result(
            run_id,
            body["notebook"] if isinstance(body.get("notebook"), str) else None,
            body["html"] if isinstance(body.get("html"), str) else None,
        )
        error = body.get("error") or {}
        fields: dict[str, Any] = {"has_output": has_output}
        if error:
            fields.update(
                error_cell=error.get("cell_index"),
                error_name=(error.get("name") or "")[:255] or None,
                error_value=error.get("value"),
            )
        if isinstance(body.get("log_tail"), str):
            fields["log_tail"] = body["log_tail"][-8000:]
        message = body.get("message")
        if state == FAILED and not message and error:
            message = f"{error.get('name')}: {error.get('value')}"
        return await self.finish(
            run_id, state, failure_kind=body.get("failure_kind"), message=message, **fields
        )
