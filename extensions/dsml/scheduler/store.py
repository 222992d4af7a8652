"""All database access of the scheduler: jobs, versions, runs, events, idempotency keys.

Methods are plain synchronous SQLAlchemy calls that each open and close their own session and
return dictionaries; the service calls them through `Store.run`, which runs them on a worker
thread, so the event loop never waits on the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dsml.scheduler.exceptions import Conflict, InvalidTransition, NotFound
from dsml.scheduler.models import (
    ACTIVE_STATES,
    CANCELLED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    SKIPPED,
    STARTING,
    TRANSITIONS,
    IdempotencyKey,
    Job,
    JobVersion,
    Run,
    RunEvent,
    utcnow,
)
from dsml.service.store import SQLStore

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"

JOB_FIELDS = (
    "name",
    "environment",
    "environment_version",
    "schedule",
    "timezone",
    "catch_up",
    "catch_up_cap",
    "overlap",
    "max_concurrent_runs",
    "cell_timeout_seconds",
    "deadline_seconds",
    "retries",
    "retry_backoff_seconds",
    "retry_on_user_error",
    "keep_runs",
    "keep_days",
    "notify",
    "shared_with",
    "parameters",
    "paused",
)
"""Job fields a caller may set."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def job_dict(job: Job) -> dict[str, Any]:
    """A job as the API shows it."""
    out = {f: getattr(job, f) for f in JOB_FIELDS}
    out.update(
        id=job.id,
        owner=job.owner,
        version=job.version,
        paused_reason=job.paused_reason,
        next_run_at=_iso(job.next_run_at),
        created_at=_iso(job.created_at),
        updated_at=_iso(job.updated_at),
    )
    return out


def run_dict(run: Run) -> dict[str, Any]:
    """A run as the API shows it (no token hash)."""
    duration = None
    if run.started_at:
        end = run.finished_at or utcnow()
        duration = round((end - run.started_at).total_seconds(), 3)
    return {
        "id": run.id,
        "job_id": run.job_id,
        "job_version": run.job_version,
        "owner": run.owner,
        "state": run.state,
        "trigger": run.trigger,
        "scheduled_for": _iso(run.scheduled_for),
        "attempt": run.attempt,
        "retry_of": run.retry_of,
        "not_before": _iso(run.not_before),
        "parameters": run.parameters,
        "environment": run.environment,
        "environment_version": run.environment_version,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "deadline_at": _iso(run.deadline_at),
        "duration_seconds": duration,
        "progress": {"cell": run.cell_index, "cells": run.cell_count},
        "error": (
            {
                "cell_index": run.error_cell,
                "executed_cell_index": run.executed_error_cell,
                "name": run.error_name,
                "value": run.error_value,
            }
            if run.error_name or run.error_cell is not None
            else None
        ),
        "failure_kind": run.failure_kind,
        "message": run.message,
        "log_tail": run.log_tail,
        "executor": run.executor,
        "executor_ref": run.executor_ref,
        "has_output": run.has_output,
    }


TickPlan = tuple[list[datetime], list[datetime], datetime]
"""A due job's cron ticks: (ticks to run, ticks to record as skipped, next run time)."""

JOBS_ENDPOINT = "POST /api/jobs"
"""The endpoint an Idempotency-Key of a job create belongs to."""


def runs_endpoint(job_id: int) -> str:
    """The endpoint an Idempotency-Key of a manual run of `job_id` belongs to."""
    return f"POST /api/jobs/{job_id}/runs"


def hash_token(token: str) -> str:
    """sha256 of a per-run token (only the hash is stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Store(SQLStore):
    """The scheduler database."""

    migrations = MIGRATIONS

    # jobs

    def create_job(
        self,
        owner: str,
        fields: dict[str, Any],
        notebook_name: str,
        notebook: str,
        sha256: str,
        parameter_schema: dict[str, Any],
        next_run_at: datetime | None,
        idempotency_key: str | None = None,
        max_jobs: int | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Create a job with its first notebook version; returns (job, created).

        With an idempotency key this owner sent to this endpoint before, returns the job made
        then and created=False. Conflict when the owner has `max_jobs` jobs already.
        """
        with Session(self.engine) as s:
            if idempotency_key:
                found = self._idempotent(s, owner, JOBS_ENDPOINT, idempotency_key, "job")
                if found is not None:
                    job = s.get(Job, found)
                    if job is not None:
                        return job_dict(job), False
            if max_jobs is not None:
                have = s.scalar(select(func.count(Job.id)).where(Job.owner == owner)) or 0
                if have >= max_jobs:
                    raise Conflict(
                        f"you have {have} jobs; the limit (max_jobs_per_user) is {max_jobs}: "
                        "delete jobs you no longer need"
                    )
            job = Job(owner=owner, version=1, next_run_at=next_run_at, **fields)
            s.add(job)
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                raise Conflict(
                    f"you have a job named {fields['name']!r} already; pick another name "
                    "or update that job"
                ) from None
            s.add(
                JobVersion(
                    job_id=job.id,
                    version=1,
                    notebook_name=notebook_name,
                    notebook=notebook,
                    sha256=sha256,
                    parameter_schema=parameter_schema,
                )
            )
            if idempotency_key:
                s.add(
                    IdempotencyKey(
                        owner=owner,
                        endpoint=JOBS_ENDPOINT,
                        key=idempotency_key,
                        kind="job",
                        resource_id=job.id,
                    )
                )
            s.commit()
            return job_dict(job), True

    @staticmethod
    def _idempotent(s: Session, owner: str, endpoint: str, key: str, kind: str) -> int | None:
        """The resource an owner's key made on this endpoint before (keys are per both)."""
        row = s.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.owner == owner,
                IdempotencyKey.endpoint == endpoint,
                IdempotencyKey.key == key,
            )
        )
        if row is None:
            return None
        if row.kind != kind:
            raise Conflict(f"Idempotency-Key {key!r} was used for a {row.kind} already")
        return row.resource_id

    def get_job(self, job_id: int) -> dict[str, Any]:
        """One job, or NotFound."""
        with Session(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            return job_dict(job)

    def list_jobs(
        self, owner: str | None, groups: list[str], after: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """Jobs the caller may see (owner None: all), newest first, `limit` after cursor `after`."""
        with Session(self.engine) as s:
            q = select(Job).order_by(Job.id.desc()).limit(limit)
            if after is not None:
                q = q.where(Job.id < after)
            if owner is not None:
                jobs = [j for j in s.scalars(q.where(Job.owner == owner)).all()]
                if groups:
                    shared = s.scalars(
                        select(Job).where(Job.owner != owner).order_by(Job.id.desc())
                    ).all()
                    jobs += [j for j in shared if set(j.shared_with or []) & set(groups)]
                    jobs = sorted(jobs, key=lambda j: -j.id)
                    if after is not None:
                        jobs = [j for j in jobs if j.id < after]
                    jobs = jobs[:limit]
            else:
                jobs = list(s.scalars(q).all())
            names = dict(
                s.execute(
                    select(JobVersion.job_id, JobVersion.notebook_name).where(
                        JobVersion.job_id.in_([j.id for j in jobs]),
                        JobVersion.version
                        == select(Job.version).where(Job.id == JobVersion.job_id).scalar_subquery(),
                    )
                ).all()
            )
            return [job_dict(j) | {"notebook_name": names.get(j.id)} for j in jobs]

    def count_jobs(self, owner: str | None, groups: list[str]) -> int:
        """How many jobs `list_jobs` would list over every page."""
        with Session(self.engine) as s:
            if owner is None:
                return s.scalar(select(func.count(Job.id))) or 0
            mine = s.scalar(select(func.count(Job.id)).where(Job.owner == owner)) or 0
            if not groups:
                return mine
            shared = s.scalars(select(Job.shared_with).where(Job.owner != owner)).all()
            return mine + sum(1 for g in shared if set(g or []) & set(groups))

    def update_job(
        self,
        job_id: int,
        fields: dict[str, Any],
        notebook: tuple[str, str, str, dict[str, Any]] | None,
        next_run_at: datetime | None | bool,
    ) -> dict[str, Any]:
        """Change a job; a new notebook (name, content, sha256, schema) makes a new version.

        next_run_at False leaves the next run time unchanged.
        """
        with Session(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            for key, value in fields.items():
                setattr(job, key, value)
            if notebook is not None:
                name, content, sha, schema = notebook
                latest = s.scalar(
                    select(func.max(JobVersion.version)).where(JobVersion.job_id == job_id)
                )
                job.version = (latest or 0) + 1
                s.add(
                    JobVersion(
                        job_id=job_id,
                        version=job.version,
                        notebook_name=name,
                        notebook=content,
                        sha256=sha,
                        parameter_schema=schema,
                    )
                )
            if next_run_at is not False:
                job.next_run_at = next_run_at  # type: ignore[assignment]
            job.updated_at = utcnow()
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
                raise Conflict(f"you have a job named {fields.get('name')!r} already") from None
            return job_dict(job)

    def set_job_version(self, job_id: int, version: int) -> dict[str, Any]:
        """Point the job at an earlier (or later) notebook version: a rollback."""
        with Session(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            exists = s.scalar(
                select(JobVersion.id).where(
                    JobVersion.job_id == job_id, JobVersion.version == version
                )
            )
            if exists is None:
                raise NotFound(f"job {job_id} has no version {version}")
            job.version = version
            job.updated_at = utcnow()
            s.commit()
            return job_dict(job)

    def delete_job(self, job_id: int) -> list[int]:
        """Delete a job with its versions, runs, events and idempotency keys; its run ids."""
        with Session(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            active = s.scalar(
                select(func.count(Run.id)).where(
                    Run.job_id == job_id, Run.state.in_((STARTING, RUNNING))
                )
            )
            if active:
                raise Conflict(f"job {job_id} has {active} run(s) in progress; cancel them first")
            run_ids = list(s.scalars(select(Run.id).where(Run.job_id == job_id)).all())
            _delete_run_rows(s, run_ids)
            s.query(IdempotencyKey).filter(
                IdempotencyKey.kind == "job", IdempotencyKey.resource_id == job_id
            ).delete(synchronize_session=False)
            s.query(JobVersion).filter(JobVersion.job_id == job_id).delete(
                synchronize_session=False
            )
            s.delete(job)
            s.commit()
            return run_ids

    def get_version(self, job_id: int, version: int) -> dict[str, Any]:
        """One notebook version of a job (with the notebook content)."""
        with Session(self.engine) as s:
            row = s.scalar(
                select(JobVersion).where(JobVersion.job_id == job_id, JobVersion.version == version)
            )
            if row is None:
                raise NotFound(f"job {job_id} has no version {version}")
            return {
                "version": row.version,
                "notebook_name": row.notebook_name,
                "notebook": row.notebook,
                "sha256": row.sha256,
                "parameter_schema": row.parameter_schema,
                "created_at": _iso(row.created_at),
            }

    def list_versions(self, job_id: int) -> list[dict[str, Any]]:
        """Every notebook version of a job, newest first, without content."""
        with Session(self.engine) as s:
            rows = s.scalars(
                select(JobVersion)
                .where(JobVersion.job_id == job_id)
                .order_by(JobVersion.version.desc())
            ).all()
            return [
                {
                    "version": r.version,
                    "notebook_name": r.notebook_name,
                    "sha256": r.sha256,
                    "created_at": _iso(r.created_at),
                }
                for r in rows
            ]

    def due_jobs(self, now: datetime) -> list[dict[str, Any]]:
        """Active scheduled jobs whose next run time has come."""
        with Session(self.engine) as s:
            rows = s.scalars(
                select(Job).where(
                    Job.paused.is_(False), Job.schedule.is_not(None), Job.next_run_at <= now
                )
            ).all()
            return [job_dict(j) for j in rows]

    # runs

    def create_run(
        self,
        job: dict[str, Any],
        *,
        trigger: str,
        parameters: dict[str, Any],
        scheduled_for: datetime | None = None,
        state: str = QUEUED,
        attempt: int = 1,
        retry_of: int | None = None,
        not_before: datetime | None = None,
        message: str | None = None,
        idempotency_key: str | None = None,
        owner: str | None = None,
        max_queued: int | None = None,
    ) -> dict[str, Any] | None:
        """Create a run; None if this (job, tick, attempt) exists already (a duplicate tick).

        An Idempotency-Key belongs to the caller and this job's runs endpoint. Conflict when
        the job's owner has `max_queued` runs queued already.
        """
        with Session(self.engine) as s:
            caller = owner or job["owner"]
            endpoint = runs_endpoint(job["id"])
            if idempotency_key:
                found = self._idempotent(s, caller, endpoint, idempotency_key, "run")
                if found is not None:
                    existing = s.get(Run, found)
                    if existing is not None:
                        return run_dict(existing)
            if max_queued is not None and state == QUEUED:
                queued = _queued_of(s, job["owner"])
                if queued >= max_queued:
                    raise Conflict(
                        f"{job['owner']} has {queued} runs queued; the limit "
                        f"(max_queued_runs_per_user) is {max_queued}: wait for them or cancel some"
                    )
            try:
                run = _add_run(
                    s,
                    job,
                    state=state,
                    trigger=trigger,
                    scheduled_for=scheduled_for,
                    attempt=attempt,
                    retry_of=retry_of,
                    not_before=not_before,
                    parameters=parameters,
                    message=message,
                )
            except IntegrityError:
                s.rollback()
                return None
            if idempotency_key:
                s.add(
                    IdempotencyKey(
                        owner=caller,
                        endpoint=endpoint,
                        key=idempotency_key,
                        kind="run",
                        resource_id=run.id,
                    )
                )
            s.commit()
            return run_dict(run)

    def due_soon(self, now: datetime, until: datetime) -> list[tuple[str, str]]:
        """(environment, owner) of the active cron jobs whose next tick falls in (now, until]."""
        with Session(self.engine) as s:
            rows = s.execute(
                select(Job.environment, Job.owner)
                .where(
                    Job.paused.is_(False),
                    Job.schedule.is_not(None),
                    Job.next_run_at > now,
                    Job.next_run_at <= until,
                )
                .distinct()
            ).all()
        return [(environment, owner) for environment, owner in rows]

    def fire_due(
        self,
        now: datetime,
        planner: Callable[[dict[str, Any]], TickPlan],
        max_queued: int | None = None,
    ) -> int:
        """Record the due cron ticks of every due job in one transaction; how many it queued.

        `planner` (pure, no I/O) turns a due job into its ticks to run, ticks to skip and next
        run time. Missed ticks become `skipped` records; a tick while a run of the job is
        active is `skipped` too when the job's overlap is "skip", and so is a tick of an owner
        with `max_queued` runs queued. A tick recorded before (a restarted service) is left as
        it is. Then each job's next run time moves on. One call whatever the number of jobs.
        """
        queued = 0
        with Session(self.engine) as s:
            due = s.scalars(
                select(Job).where(
                    Job.paused.is_(False), Job.schedule.is_not(None), Job.next_run_at <= now
                )
            ).all()
            if not due:
                return 0
            ids = [j.id for j in due]
            busy_jobs = set(
                s.scalars(
                    select(Run.job_id)
                    .where(Run.job_id.in_(ids), Run.state.in_(ACTIVE_STATES))
                    .group_by(Run.job_id)
                ).all()
            )
            owners = {j.owner for j in due}
            in_queue = dict(
                s.execute(
                    select(Run.owner, func.count(Run.id))
                    .where(Run.owner.in_(owners), Run.state == QUEUED)
                    .group_by(Run.owner)
                ).all()
            )
            for row in due:
                job = job_dict(row)
                run_ticks, skip_ticks, next_run_at = planner(job)
                busy = row.id in busy_jobs
                plan = [
                    (t, SKIPPED, "missed while the scheduler was down (catch_up policy)")
                    for t in skip_ticks
                ]
                for tick in run_ticks:
                    waiting = in_queue.get(row.owner, 0)
                    if busy and job["overlap"] == "skip":
                        plan.append(
                            (tick, SKIPPED, "the previous run was still going (overlap: skip)")
                        )
                    elif max_queued is not None and waiting >= max_queued:
                        plan.append(
                            (
                                tick,
                                SKIPPED,
                                f"{row.owner} had {waiting} runs queued, the limit "
                                f"(max_queued_runs_per_user) is {max_queued}",
                            )
                        )
                    else:
                        plan.append((tick, QUEUED, None))
                        busy = True
                for tick, state, message in plan:
                    try:
                        with s.begin_nested():
                            _add_run(
                                s,
                                job,
                                state=state,
                                trigger="cron",
                                scheduled_for=tick,
                                parameters=job["parameters"],
                                message=message,
                            )
                    except IntegrityError:
                        continue  # this tick was recorded before
                    if state == QUEUED:
                        queued += 1
                        in_queue[row.owner] = in_queue.get(row.owner, 0) + 1
                row.next_run_at = next_run_at
            s.commit()
        return queued

    def get_run(self, run_id: int) -> dict[str, Any]:
        """One run, or NotFound."""
        with Session(self.engine) as s:
            run = s.get(Run, run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            return run_dict(run)

    def run_token_hash(self, run_id: int, now: datetime | None = None) -> str | None:
        """The stored hash of a run's worker token; None once the token has expired."""
        with Session(self.engine) as s:
            run = s.get(Run, run_id)
            if run is None:
                return None
            if run.token_expires_at is not None and (now or utcnow()) >= run.token_expires_at:
                return None
            return run.token_hash

    def expire_token(self, run_id: int, at: datetime | None) -> None:
        """End a run's worker token at `at` (None: now, the token is forgotten)."""
        with Session(self.engine) as s:
            run = s.get(Run, run_id)
            if run is None:
                return
            if at is None:
                run.token_hash = None
                run.token_expires_at = utcnow()
            elif run.token_expires_at is None or at < run.token_expires_at:
                run.token_expires_at = at
            s.commit()

    def list_runs(
        self,
        *,
        job_id: int | None = None,
        owner: str | None = None,
        states: tuple[str, ...] | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Runs newest first, filtered, `limit` after cursor `after` (a run id)."""
        with Session(self.engine) as s:
            q = select(Run).order_by(Run.id.desc()).limit(limit)
            if job_id is not None:
                q = q.where(Run.job_id == job_id)
            if owner is not None:
                q = q.where(Run.owner == owner)
            if states:
                q = q.where(Run.state.in_(states))
            if after is not None:
                q = q.where(Run.id < after)
            return [run_dict(r) for r in s.scalars(q).all()]

    def count_filtered_runs(
        self,
        *,
        job_id: int | None = None,
        owner: str | None = None,
        states: tuple[str, ...] | None = None,
    ) -> int:
        """How many runs `list_runs` would list over every page."""
        with Session(self.engine) as s:
            q = select(func.count(Run.id))
            if job_id is not None:
                q = q.where(Run.job_id == job_id)
            if owner is not None:
                q = q.where(Run.owner == owner)
            if states:
                q = q.where(Run.state.in_(states))
            return s.scalar(q) or 0

    def queued_of(self, owner: str) -> int:
        """How many runs of `owner`'s jobs are queued."""
        with Session(self.engine) as s:
            return _queued_of(s, owner)

    def output_bytes_of(self, owner: str) -> int:
        """Bytes of run outputs `owner`'s runs keep."""
        with Session(self.engine) as s:
            return s.scalar(select(func.sum(Run.output_bytes)).where(Run.owner == owner)) or 0

    def delete_run(self, run_id: int) -> None:
        """Delete one ended run with its events and idempotency keys (409 while active)."""
        with Session(self.engine) as s:
            run = s.get(Run, run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            if run.state in ACTIVE_STATES:
                raise Conflict(f"run {run_id} is {run.state}; cancel it first, then delete it")
            _delete_run_rows(s, [run_id])
            s.commit()

    def owners_of(self, run_ids: list[int]) -> list[str]:
        """The distinct owners of these runs."""
        with Session(self.engine) as s:
            return list(s.scalars(select(Run.owner).where(Run.id.in_(run_ids)).distinct()).all())

    def owners_to_check(self) -> set[str]:
        """Owners whose rights matter now: of active scheduled jobs and of queued runs."""
        with Session(self.engine) as s:
            scheduled = s.scalars(
                select(Job.owner).where(Job.paused.is_(False), Job.schedule.is_not(None)).distinct()
            ).all()
            queued = s.scalars(select(Run.owner).where(Run.state == QUEUED).distinct()).all()
            return set(scheduled) | set(queued)

    def jobs_by_id(self, job_ids: list[int]) -> dict[int, dict[str, Any]]:
        """{id: job} of these jobs (the ones that exist)."""
        with Session(self.engine) as s:
            rows = s.scalars(select(Job).where(Job.id.in_(job_ids))).all() if job_ids else []
            return {j.id: job_dict(j) for j in rows}

    def outputs_done(self, run_id: int, extra_bytes: int) -> None:
        """The worker's last upload is in: count its bytes and forget the run's token."""
        with Session(self.engine) as s:
            run = s.get(Run, run_id)
            if run is None:
                return
            run.output_bytes = (run.output_bytes or 0) + extra_bytes
            run.token_hash = None
            run.token_expires_at = utcnow()
            s.commit()

    def revoke_owner(self, owner: str, reason: str) -> tuple[list[int], list[int]]:
        """Pause every job of `owner` with `reason` and cancel their queued runs, at once.

        Returns (ids of the jobs paused now, ids of the runs cancelled).
        """
        with Session(self.engine) as s:
            jobs = s.scalars(select(Job).where(Job.owner == owner)).all()
            paused = []
            now = utcnow()
            for job in jobs:
                if not job.paused:
                    paused.append(job.id)
                job.paused = True
                job.paused_reason = reason
                job.updated_at = now
            runs = s.scalars(select(Run).where(Run.owner == owner, Run.state == QUEUED)).all()
            message = f"cancelled before it started: {reason}"
            for run in runs:
                run.state = CANCELLED
                run.finished_at = now
                run.message = message
                s.add(RunEvent(run_id=run.id, state=CANCELLED, at=now, message=message))
            s.commit()
            return paused, [r.id for r in runs]

    def active_runs(self) -> list[dict[str, Any]]:
        """Runs queued, starting or running, oldest first."""
        with Session(self.engine) as s:
            rows = s.scalars(select(Run).where(Run.state.in_(ACTIVE_STATES)).order_by(Run.id)).all()
            return [run_dict(r) for r in rows]

    def count_runs(self, states: tuple[str, ...]) -> int:
        """How many runs are in the given states."""
        with Session(self.engine) as s:
            return s.scalar(select(func.count(Run.id)).where(Run.state.in_(states))) or 0

    def transition(
        self, run_id: int, state: str, message: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Move a run to `state` (checked against TRANSITIONS), set fields, record the event."""
        with Session(self.engine) as s:
            run = s.get(Run, run_id, with_for_update=True)
            if run is None:
                raise NotFound(f"no run {run_id}")
            if state != run.state and state not in TRANSITIONS.get(run.state, ()):
                raise InvalidTransition(f"run {run_id} is {run.state}; it cannot become {state}")
            now = utcnow()
            if state != run.state:
                s.add(RunEvent(run_id=run_id, state=state, at=now, message=message))
            run.state = state
            if state == RUNNING and run.started_at is None:
                run.started_at = now
            if state in FINAL_STATES:
                run.finished_at = now
            if message is not None:
                run.message = message
            for key, value in fields.items():
                setattr(run, key, value)
            s.commit()
            return run_dict(run)

    def update_run(self, run_id: int, **fields: Any) -> dict[str, Any]:
        """Set fields of an active run without a state change (progress, log tail)."""
        with Session(self.engine) as s:
            run = s.get(Run, run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            if run.state in FINAL_STATES:
                raise Conflict(f"run {run_id} is {run.state} already")
            for key, value in fields.items():
                setattr(run, key, value)
            s.commit()
            return run_dict(run)

    def events(self, run_id: int) -> list[dict[str, Any]]:
        """Every state transition of a run, oldest first."""
        with Session(self.engine) as s:
            rows = s.scalars(
                select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.id)
            ).all()
            return [{"state": e.state, "at": _iso(e.at), "message": e.message} for e in rows]

    def latest_run(self, job_id: int, state: str) -> dict[str, Any] | None:
        """The newest run of a job in `state`."""
        with Session(self.engine) as s:
            run = s.scalar(
                select(Run)
                .where(Run.job_id == job_id, Run.state == state)
                .order_by(Run.id.desc())
                .limit(1)
            )
            return run_dict(run) if run else None

    def active_count_by_job(self) -> dict[int, int]:
        """{job id: runs starting or running}."""
        return self.active_counts()[0]

    def active_counts(self) -> tuple[dict[int, int], dict[str, int]]:
        """({job id: runs starting or running}, {owner: runs starting or running})."""
        with Session(self.engine) as s:
            rows = s.execute(
                select(Run.job_id, Run.owner, func.count(Run.id))
                .where(Run.state.in_((STARTING, RUNNING)))
                .group_by(Run.job_id, Run.owner)
            ).all()
            by_job: dict[int, int] = {}
            by_owner: dict[str, int] = {}
            for job_id, owner, n in rows:
                by_job[job_id] = by_job.get(job_id, 0) + n
                by_owner[owner] = by_owner.get(owner, 0) + n
            return by_job, by_owner

    def has_active_run(self, job_id: int) -> bool:
        """Whether a run of the job is queued, starting or running."""
        with Session(self.engine) as s:
            return bool(
                s.scalar(
                    select(func.count(Run.id)).where(
                        Run.job_id == job_id, Run.state.in_(ACTIVE_STATES)
                    )
                )
            )

    def expired_runs(self, job: dict[str, Any], now: datetime) -> list[int]:
        """Ids of a job's finished runs that its retention no longer keeps."""
        with Session(self.engine) as s:
            ids: set[int] = set()
            finished = select(Run.id).where(Run.job_id == job["id"], Run.state.in_(FINAL_STATES))
            if job.get("keep_runs"):
                keep = s.scalars(finished.order_by(Run.id.desc()).limit(job["keep_runs"])).all()
                ids |= set(s.scalars(finished.where(Run.id.not_in(keep) if keep else and_())).all())
            if job.get("keep_days"):
                cutoff = now - timedelta(days=job["keep_days"])
                ids |= set(s.scalars(finished.where(Run.finished_at < cutoff)).all())
            return sorted(ids)

    def delete_runs(self, run_ids: list[int]) -> None:
        """Delete runs, their events and idempotency keys."""
        if not run_ids:
            return
        with Session(self.engine) as s:
            _delete_run_rows(s, run_ids)
            s.commit()

    def queued_ready(self, now: datetime) -> list[dict[str, Any]]:
        """Queued runs whose retry back-off has passed, oldest first."""
        with Session(self.engine) as s:
            rows = s.scalars(
                select(Run)
                .where(
                    Run.state == QUEUED,
                    or_(Run.not_before.is_(None), Run.not_before <= now),
                )
                .order_by(Run.id)
            ).all()
            return [run_dict(r) for r in rows]


def _queued_of(s: Session, owner: str) -> int:
    return s.scalar(select(func.count(Run.id)).where(Run.owner == owner, Run.state == QUEUED)) or 0


def _delete_run_rows(s: Session, run_ids: list[int]) -> None:
    """Delete runs with their events and the idempotency keys that named them."""
    if not run_ids:
        return
    s.query(RunEvent).filter(RunEvent.run_id.in_(run_ids)).delete(synchronize_session=False)
    s.query(IdempotencyKey).filter(
        IdempotencyKey.kind == "run", IdempotencyKey.resource_id.in_(run_ids)
    ).delete(synchronize_session=False)
    s.query(Run).filter(Run.id.in_(run_ids)).delete(synchronize_session=False)


def _add_run(
    s: Session,
    job: dict[str, Any],
    *,
    state: str,
    trigger: str,
    parameters: dict[str, Any],
    scheduled_for: datetime | None = None,
    attempt: int = 1,
    retry_of: int | None = None,
    not_before: datetime | None = None,
    message: str | None = None,
) -> Run:
    """Insert a run of `job` and its first event; IntegrityError when the tick exists."""
    now = utcnow()
    run = Run(
        job_id=job["id"],
        job_version=job["version"],
        owner=job["owner"],
        state=state,
        trigger=trigger,
        scheduled_for=scheduled_for,
        attempt=attempt,
        retry_of=retry_of,
        not_before=not_before,
        parameters=parameters,
        environment=job["environment"],
        environment_version=job.get("environment_version"),
        created_at=now,
        finished_at=now if state in FINAL_STATES else None,
        message=message,
    )
    s.add(run)
    s.flush()
    s.add(RunEvent(run_id=run.id, state=state, at=now, message=message))
    return run
