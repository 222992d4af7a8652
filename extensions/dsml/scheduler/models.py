"""The scheduler's data: job definitions, their notebook versions, runs and run events.

Pure SQLAlchemy declarations, no I/O. The schema is created and upgraded by Alembic
(migrations/), so SQLite and PostgreSQL get the same tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dsml.client import RUN_FINAL_STATES

QUEUED = "queued"
STARTING = "starting"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMED_OUT = "timed_out"
CANCELLED = "cancelled"
LOST = "lost"
SKIPPED = "skipped"

ACTIVE_STATES = (QUEUED, STARTING, RUNNING)
"""States of a run that has not ended."""

FINAL_STATES = RUN_FINAL_STATES
"""States a run never leaves (SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, LOST, SKIPPED)."""

TRANSITIONS: dict[str, tuple[str, ...]] = {
    QUEUED: (STARTING, CANCELLED, SKIPPED, LOST),
    STARTING: (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, LOST),
    RUNNING: (SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, LOST),
}
"""Allowed moves of the run state machine; final states have none."""

CATCH_UP = ("none", "latest", "all")
OVERLAP = ("skip", "queue", "allow")


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (what the database stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of the scheduler's tables."""


class Job(Base):
    """A job definition: a notebook snapshot, where and when it runs, and what to do on failure."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner", "name", name="uq_jobs_owner_name"),
        # ids are never handed out twice, also after a delete (SQLite reuses them otherwise)
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, default=1)
    environment: Mapped[str] = mapped_column(String(64))
    # the environment version (lock hash prefix) runs use until the owner moves the job on
    environment_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    schedule: Mapped[str | None] = mapped_column(String(255), nullable=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    catch_up: Mapped[str] = mapped_column(String(16), default="latest")
    catch_up_cap: Mapped[int] = mapped_column(Integer, default=10)
    overlap: Mapped[str] = mapped_column(String(16), default="skip")
    max_concurrent_runs: Mapped[int] = mapped_column(Integer, default=1)
    cell_timeout_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    deadline_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retries: Mapped[int] = mapped_column(Integer, default=2)
    retry_backoff_seconds: Mapped[int] = mapped_column(Integer, default=30)
    retry_on_user_error: Mapped[bool] = mapped_column(Boolean, default=False)
    keep_runs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    keep_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    notify: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    shared_with: Mapped[list[str]] = mapped_column(JSON, default=list)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # why the scheduler paused the job itself (its owner lost the right to run jobs)
    paused_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class JobVersion(Base):
    """One snapshot of a job's notebook; every update of the notebook is a new version."""

    __tablename__ = "job_versions"
    __table_args__ = (
        UniqueConstraint("job_id", "version", name="uq_job_versions"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    notebook_name: Mapped[str] = mapped_column(String(255))
    notebook: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    parameter_schema: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Run(Base):
    """One execution of a job version; `state` moves only along TRANSITIONS."""

    __tablename__ = "runs"
    __table_args__ = (
        # a cron tick makes at most one run (per attempt), even across restarts
        UniqueConstraint("job_id", "scheduled_for", "attempt", name="uq_runs_tick"),
        Index("ix_runs_job_id_id", "job_id", "id"),
        Index("ix_runs_state", "state"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    job_version: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    retry_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    environment: Mapped[str] = mapped_column(String(64))
    environment_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    cell_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cell_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the failing cell's index in the notebook the user submitted ...
    error_cell: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # ... and in the executed copy, which has Papermill's injected-parameters cell
    executed_error_cell: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_tail: Mapped[str | None] = mapped_column(Text, nullable=True)
    executor: Mapped[str | None] = mapped_column(String(32), nullable=True)
    executor_ref: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the run token stops working at this time (set when the result is in)
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    has_output: Mapped[bool] = mapped_column(Boolean, default=False)
    output_bytes: Mapped[int] = mapped_column(Integer, default=0)


class RunEvent(Base):
    """One state transition of a run, with when it happened and why."""

    __tablename__ = "run_events"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


class IdempotencyKey(Base):
    """A create request's Idempotency-Key, so a retried POST returns the first result.

    A key belongs to its owner and the endpoint it was sent to: the same key from another
    user, or on another endpoint, is another key.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("owner", "endpoint", "key", name="uq_idempotency_endpoint"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(255))
    endpoint: Mapped[str] = mapped_column(String(255), default="")
    key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
