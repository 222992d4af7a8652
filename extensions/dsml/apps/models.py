"""The apps service's data: apps, their immutable versions, shares, views, log tails.

SQLAlchemy declarations and the rules on names; no I/O. The schema is created and upgraded by
Alembic (migrations/), so SQLite and PostgreSQL get the same tables.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dsml.client import APP_SERVER_PREFIX

SERVER_PREFIX = APP_SERVER_PREFIX
"""An app's server is its owner's named server `app-<slug>`."""

MAX_SLUG = 30 - len(SERVER_PREFIX)
"""Longest slug: JupyterHub 6 allows server names of at most 30 characters."""

SLUG_RULE = re.compile(rf"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){{0,{MAX_SLUG - 1}}}$")
"""Lowercase letters, digits and single hyphens, starting with a letter, not ending in a hyphen."""

SLUG_HELP = (
    f"1-{MAX_SLUG} lowercase letters, digits and single hyphens, starting with a letter "
    "and not ending with a hyphen"
)

MAX_TITLE = 200
"""Longest title, in characters."""

MAX_DESCRIPTION = 2000
"""Longest description, in characters."""

EVERYONE = "everyone"
"""Share kind: every signed-in user may open the app (JupyterHub shares have no 'everyone')."""

VIEWER = "viewer"
"""Share kind: a hub user share the service granted one viewer because a group or 'everyone'
entitles them (JupyterHub 5.5 leaves group shares out of a viewer's OAuth token scopes, so a
group share alone does not let a member in; see AppsApp.grant_viewer)."""


def utcnow() -> datetime:
    """Now, in UTC, without tzinfo (as stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    """A stored time as the API shows it."""
    return value.isoformat() + "Z" if value else None


def slugify(title: str) -> str:
    """A slug made from a title ("Sales by region!" -> "sales-by-region"); may be empty."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    slug = slug[:MAX_SLUG].rstrip("-")
    if slug and not slug[0].isalpha():
        slug = ("app-" + slug)[:MAX_SLUG].rstrip("-")
    return slug


def server_name(slug: str) -> str:
    """The owner's named server that serves the app."""
    return SERVER_PREFIX + slug


class Base(DeclarativeBase):
    """Declarative base of the apps service's tables."""


class App(Base):
    """A published app: its stable slug, owner, and the version it serves now."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    title: Mapped[str] = mapped_column(String(MAX_TITLE))
    description: Mapped[str] = mapped_column(Text, default="")
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    always_on: Mapped[bool] = mapped_column(Boolean, default=False)
    # declared in the settings file (apps as code): kept in step with it at every start
    managed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Version(Base):
    """One immutable publish of an app: the bundle's hash and what it was made from."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("app_id", "number", name="uq_versions_app_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sha256: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64))
    environment_version: Mapped[str] = mapped_column(String(64), default="")
    notebook_path: Mapped[str] = mapped_column(String(1024), default="")
    files: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of relative paths
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    has_thumbnail: Mapped[bool] = mapped_column(Boolean, default=False)


class Share(Base):
    """Who an app is shared with (a user or a group), as granted in the hub."""

    __tablename__ = "shares"
    __table_args__ = (UniqueConstraint("app_id", "kind", "name", name="uq_shares"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # user, group, everyone, viewer
    name: Mapped[str] = mapped_column(String(255))


class View(Base):
    """One rendering of an app's page for a viewer."""

    __tablename__ = "views"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    viewer: Mapped[str] = mapped_column(String(255))
    render_seconds: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime)


class LogTail(Base):
    """The last lines an app server sent, and the error it last reported."""

    __tablename__ = "log_tails"

    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    lines: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of strings
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


def shares_dict(shares: list[Share]) -> dict[str, Any]:
    """Shares as the API shows them: users, groups, and whether everyone may open it."""
    return {
        "users": sorted(s.name for s in shares if s.kind == "user"),
        "groups": sorted(s.name for s in shares if s.kind == "group"),
        "everyone": any(s.kind == EVERYONE for s in shares),
    }


def version_dict(version: Version) -> dict[str, Any]:
    """A version as the API shows it."""
    import json

    return {
        "version": version.number,
        "author": version.author,
        "created": iso(version.created_at),
        "sha256": version.sha256,
        "environment": version.environment,
        "environment_version": version.environment_version,
        "notebook_path": version.notebook_path,
        "files": json.loads(version.files or "[]"),
        "size_bytes": version.size_bytes,
        "thumbnail": version.has_thumbnail,
    }
