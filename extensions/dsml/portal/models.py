"""The portal's data: package requests, training progress, usage records and daily snapshots.

SQLAlchemy declarations only, no I/O.

The schema is created and upgraded by Alembic (migrations/), so SQLite and PostgreSQL get the
same tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

OPEN = "open"
STATUSES = (OPEN, "accepted", "rejected", "done")
"""What a package request can be: filed (open), then answered."""

MAX_TEXT = 2000
"""Longest reason or answer kept, in characters."""


def utcnow() -> datetime:
    """Now, in UTC, without tzinfo (as stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value: datetime) -> str:
    """A stored time as the API shows it."""
    return value.isoformat() + "Z"


class Base(DeclarativeBase):
    """Declarative base of the portal's tables."""


class EnvRequest(Base):
    """One request: who asked for which package in which environment, and its answer."""

    __tablename__ = "env_requests"
    __table_args__ = (
        # one open request per user, package and environment (a second POST is a 409)
        Index(
            "uq_env_requests_open",
            "user",
            "package",
            "environment",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    package: Mapped[str] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    answer: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    def to_dict(self) -> dict[str, Any]:
        """The request as the API shows it."""
        return {
            "id": self.id,
            "user": self.user,
            "package": self.package,
            "environment": self.environment,
            "reason": self.reason,
            "status": self.status,
            "answer": self.answer,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


class TrainingResult(Base):
    """One learner's attempts at one exercise: passed stays true once true."""

    __tablename__ = "training_results"
    __table_args__ = (UniqueConstraint("user", "notebook", "exercise", name="uq_training_results"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    notebook: Mapped[str] = mapped_column(String(80))
    exercise: Mapped[str] = mapped_column(String(32))
    passed: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)

    def to_dict(self) -> dict[str, Any]:
        """The entry as the API shows it."""
        return {
            "user": self.user,
            "notebook": self.notebook,
            "exercise": self.exercise,
            "passed": self.passed,
            "attempts": self.attempts,
            "created": iso(self.created),
            "updated": iso(self.updated),
        }


class UsageUser(Base):
    """What the portal saw of a hub user: the hub keeps no first login, first job or app.

    first_job and first_app are the earliest ever seen, so deleting a job keeps them.
    """

    __tablename__ = "usage_users"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    created: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    first_login: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_activity: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    first_job: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    first_app: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class ServerStart(Base):
    """One start of a user's server, recorded once per (user, server, start time)."""

    __tablename__ = "server_starts"
    __table_args__ = (UniqueConstraint("user", "server", "started", name="uq_server_starts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    server: Mapped[str] = mapped_column(String(255))
    started: Mapped[datetime] = mapped_column(DateTime, index=True)


class UsageSnapshot(Base):
    """The usage figures of one day (UTC); today's is rewritten as the day goes."""

    __tablename__ = "usage_snapshots"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # 2026-11-30
    figures: Mapped[dict] = mapped_column(JSON)
    updated: Mapped[datetime] = mapped_column(DateTime)
