"""The run manager: cron ticks, the queue, dispatch to the executor, deadlines, retries,
reconciliation after a restart, retention and notifications.

Everything that changes a run's state goes through here (the API handlers call it too), so
the state machine has one owner.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

from dsml.kernels import kernel_name
from dsml.scheduler import cron
from dsml.scheduler.exceptions import Conflict, SchedulerError
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
from dsml.scheduler.outputs import LOG, Outputs, OutputsFull
from dsml.scheduler.rights import OwnerRights
from dsml.scheduler.store import Store, hash_token
from dsml.service.exceptions import Unavailable

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
    warm_ahead_seconds = Float(
        60.0,
        config=True,
        help="Seconds ahead of a job's next tick at which the executor readies its worker.",
    )
    max_queued_runs_per_user = Integer(
        500,
        config=True,
        help="Runs one user's jobs may have queued at once (a count); more are refused (409) "
        "or, for cron ticks, recorded as skipped.",
    )
    default_deadline_seconds = Integer(
        6 * 3600,
        config=True,
        help="Deadline of a run whose job sets none, in seconds (0: none).",
    )
    max_output_bytes_per_user = Integer(
        5 * 1024**3,
        config=True,
        help="Bytes of run outputs one user's runs may keep in all; a run over it keeps none "
        "and fails saying so (0: no limit).",
    )
    token_grace_seconds = Float(
        120.0,
        config=True,
        help="Seconds a run's token still works after its result is in (for the HTML upload).",
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
        rights: OwnerRights | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.rights = rights or OwnerRights()
        self._served: dict[str, int] = {}
        self._serial = itertools.count(1)
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
            except Unavailable as e:
                # the database is busy or down: the next pass does this tick's work
                log.warning("scheduler tick put off: %s", e)
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
        await self.enforce_rights()
        await self.fire_due(now)
        await self.watch(now)
        await self.dispatch(now)
        upcoming = await self.store.run(
            self.store.due_soon, now, now + timedelta(seconds=self.warm_ahead_seconds)
        )
        await self.executor.maintain(upcoming)

    # cron

    async def fire_due(self, now: datetime) -> None:
        """Create the runs (or skipped records) of every cron tick that has come."""

        def plan(job: dict[str, Any]) -> tuple[list[datetime], list[datetime], datetime]:
            start = datetime.fromisoformat(job["next_run_at"].rstrip("Z"))
            due = cron.ticks_between(job["schedule"], job["timezone"], start, now)
            to_run, to_skip = cron.plan_ticks(
                due, now, job["catch_up"], job["catch_up_cap"], self.grace_seconds
            )
            nxt = cron.next_tick(job["schedule"], job["timezone"], max(now, start))
            return to_run, to_skip, nxt

        # one database round trip per tick, whatever the number of due jobs
        await self.store.run(self.store.fire_due, now, plan, self.max_queued_runs_per_user)

    # rights

    async def enforce_rights(self) -> None:
        """Pause the jobs (and cancel the queued runs) of owners who lost the right to run."""
        for owner in await self.store.run(self.store.owners_to_check):
            await self.check_owner(owner)

    async def check_owner(self, owner: str) -> str | None:
        """None when `owner` may run jobs; else pause their jobs, cancel queued runs, say why.

        When the hub does not answer, what it said last holds (see `OwnerRights`).
        """
        reason = await self.rights.refusal(owner)
        if reason is None:
            return None
        paused, cancelled = await self.store.run(self.store.revoke_owner, owner, reason)
        if paused or cancelled:
            log.info(
                "paused %d job(s) and cancelled %d queued run(s) of %s: %s",
                len(paused),
                len(cancelled),
                owner,
                reason,
            )
        return reason

    # dispatch

    async def dispatch(self, now: datetime) -> None:
        """Start queued runs while the executor has capacity and each job's limits allow.

        Fair across users: each free slot goes to the owner with the fewest runs going,
        and among those to the one served longest ago, so one user's thousand queued runs
        do not keep another user's single run waiting behind them.
        """
        running, by_owner = await self.store.run(self.store.active_counts)
        in_flight = sum(running.values())
        if in_flight >= self.executor.capacity:
            return
        ready = await self.store.run(self.store.queued_ready, now)
        if not ready:
            return
        jobs = await self.store.run(self.store.jobs_by_id, sorted({r["job_id"] for r in ready}))
        queues: dict[str, list[dict[str, Any]]] = {}
        for run in ready:
            queues.setdefault(run["owner"], []).append(run)
        while in_flight < self.executor.capacity and queues:
            owner = min(
                queues,
                key=lambda o: (by_owner.get(o, 0), self._served.get(o, 0), queues[o][0]["id"]),
            )
            run = self._next_launchable(queues[owner], jobs, running)
            if run is None:
                del queues[owner]
                continue
            if await self.check_owner(owner) is not None:
                del queues[owner]
                continue
            job = jobs[run["job_id"]]
            await self._launch(run, job, now)
            running[job["id"]] = running.get(job["id"], 0) + 1
            by_owner[owner] = by_owner.get(owner, 0) + 1
            self._served[owner] = next(self._serial)
            in_flight += 1
            if not queues[owner]:
                del queues[owner]

    @staticmethod
    def _next_launchable(
        queue: list[dict[str, Any]], jobs: dict[int, dict[str, Any]], running: dict[int, int]
    ) -> dict[str, Any] | None:
        """Take the oldest run of `queue` whose job's overlap and concurrency allow a start."""
        for i, run in enumerate(queue):
            job = jobs.get(run["job_id"])
            if job is None:
                continue
            active = running.get(job["id"], 0)
            if job["overlap"] != "allow" and active > 0:
                continue
            if active >= job["max_concurrent_runs"]:
                continue
            return queue.pop(i)
        queue.clear()
        return None

    async def _launch(self, run: dict[str, Any], job: dict[str, Any], now: datetime) -> None:
        token = secrets.token_urlsafe(32)
        seconds = job["deadline_seconds"] or self.default_deadline_seconds
        deadline = now + timedelta(seconds=seconds) if seconds else None
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
        await asyncio.to_thread(self.outputs.make_folder, run["id"])
        launch = Launch(
            run_id=run["id"],
            token=token,
            service_url=self.service_url,
            kernel_name=kernel_name(run["environment"], run["environment_version"]),
            environment=run["environment"],
            owner=job["owner"],
            log_path=str(self.outputs.path(run["id"], LOG)),
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
                    # this process watched it die (killed, out of memory): a failure of the
                    # run, retried per the job's policy; `lost` is for runs nobody watched
                    await self.finish(
                        run["id"],
                        FAILED,
                        failure_kind="infra",
                        message="the run's worker process died without reporting a result "
                        "(killed, or out of memory)",
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
        notebook = body["notebook"] if isinstance(body.get("notebook"), str) else None
        html = body["html"] if isinstance(body.get("html"), str) else None
        size = len((notebook or "").encode()) + len((html or "").encode())
        message = body.get("message")
        failure_kind = body.get("failure_kind")
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        limit = self.max_output_bytes_per_user
        if limit and size:
            kept = await self.store.run(self.store.output_bytes_of, run["owner"])
            if kept + size > limit:
                notebook = html = None
                size = 0
                state, failure_kind = FAILED, "user"
                message = (
                    f"the outputs were not kept: {run['owner']}'s runs keep {kept:,} bytes of "
                    f"outputs and the limit (max_output_bytes_per_user) is {limit:,}; delete "
                    "old runs or set keep_runs on your jobs"
                )
        try:
            has_output = await self.outputs.store_result(run_id, notebook, html)
        except OutputsFull as e:
            # the run fails saying so; the service, and every output kept before, go on
            has_output, size = False, 0
            state, failure_kind, message = FAILED, "infra", str(e)
        fields: dict[str, Any] = {"has_output": has_output, "output_bytes": size}
        if error:
            executed = error.get("cell_index")
            submitted = await self._submitted_cell(run, executed)
            fields.update(
                error_cell=submitted,
                executed_error_cell=executed if isinstance(executed, int) else None,
                error_name=(str(error.get("name") or ""))[:255] or None,
                error_value=error.get("value"),
            )
        if isinstance(body.get("log_tail"), str):
            fields["log_tail"] = body["log_tail"][-8000:]
        if state == FAILED and not message and error:
            message = f"{error.get('name')}: {error.get('value')}"
        ended = await self.finish(
            run_id, state, failure_kind=failure_kind, message=message, **fields
        )
        # the worker may still send the HTML render; after that, or this grace, its token ends
        grace = utcnow() + timedelta(seconds=self.token_grace_seconds)
        await self.store.run(self.store.expire_token, run_id, grace if has_output else None)
        return ended

    async def _submitted_cell(self, run: dict[str, Any], executed: Any) -> int | None:
        """The index in the notebook the user submitted of cell `executed` of the executed copy.

        Papermill injects a parameters cell right after the cell tagged `parameters` (at the
        top when there is none), unless the notebook has an injected cell already, which it
        replaces in place: cells after the injected one move down by one.
        """
        if not isinstance(executed, int) or isinstance(executed, bool):
            return None
        try:
            version = await self.store.run(
                self.store.get_version, run["job_id"], run["job_version"]
            )
            cells = json.loads(version["notebook"]).get("cells") or []
        except (SchedulerError, ValueError, AttributeError):
            return executed
        tags = [set((c.get("metadata") or {}).get("tags") or []) for c in cells]
        if any("injected-parameters" in t for t in tags):
            return executed
        injected = next((i + 1 for i, t in enumerate(tags) if "parameters" in t), 0)
        if executed == injected:
            return None  # the injected cell itself failed: it is not in the user's notebook
        return executed - 1 if executed > injected else executed
