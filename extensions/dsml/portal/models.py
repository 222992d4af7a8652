"""The portal's data: package requests. SQLAlchemy declarations only, no I/O.

The schema is created and upgraded by Alembic (migrations/), so SQLite and PostgreSQL get the
same tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, Text, text
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
