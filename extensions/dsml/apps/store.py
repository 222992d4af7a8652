"""All database access of the apps service: apps, versions, shares, views, log tails.

Methods are plain synchronous SQLAlchemy calls that return dictionaries; handlers await them
through `Store.run` (dsml.service.store), so the event loop never waits on the database.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dsml.apps.exceptions import BadRequest, SlugTaken, UnknownApp
from dsml.apps.models import (
    EVERYONE,
    VIEWER,
    App,
    LogTail,
    Share,
    Version,
    View,
    shares_dict,
    utcnow,
    version_dict,
)
from dsml.service.store import SQLStore

MAX_LOG_LINES = 200
"""Lines of an app server's log kept for its owner."""


class Store(SQLStore):
    """The apps database."""

    migrations = Path(__file__).parent / "migrations"

    @staticmethod
    def _app(s: Session, slug: str) -> App:
        app = s.scalars(select(App).where(App.slug == slug)).first()
        if app is None:
            raise UnknownApp(f"no app {slug!r}")
        return app

    @staticmethod
    def _record(s: Session, app: App) -> dict[str, Any]:
        shares = list(s.scalars(select(Share).where(Share.app_id == app.id)))
        return {
            "id": app.id,
            "slug": app.slug,
            "owner": app.owner,
            "title": app.title,
            "description": app.description,
            "current_version": app.current_version,
            "always_on": app.always_on,
            "managed": app.managed,
            "created_at": app.created_at,
            "updated_at": app.updated_at,
            "shared": shares_dict(shares),
        }

    def get_app(self, slug: str) -> dict[str, Any]:
        """One app with its shares (UnknownApp when there is none)."""
        with Session(self.engine) as s:
            return self._record(s, self._app(s, slug))

    def find_app(self, slug: str) -> dict[str, Any] | None:
        """One app with its shares, or None when there is none."""
        with Session(self.engine) as s:
            app = s.scalars(select(App).where(App.slug == slug)).first()
            return self._record(s, app) if app is not None else None

    def list_apps(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Every app (or one owner's), newest first."""
        query = select(App).order_by(App.updated_at.desc(), App.id.desc())
        if owner is not None:
            query = query.where(App.owner == owner)
        with Session(self.engine) as s:
            return [self._record(s, app) for app in s.scalars(query)]

    def shared_with(self, user: str, groups: list[str]) -> list[dict[str, Any]]:
        """Apps shared with this user directly, with one of their groups, or with everyone."""
        ids = select(Share.app_id).where(
            ((Share.kind == "user") & (Share.name == user))
            | ((Share.kind == "group") & Share.name.in_(groups))
            | (Share.kind == EVERYONE)
        )
        query = select(App).where(App.id.in_(ids)).order_by(App.updated_at.desc(), App.id.desc())
        with Session(self.engine) as s:
            return [self._record(s, app) for app in s.scalars(query)]

    def publish(
        self,
        slug: str,
        owner: str,
        author: str,
        app_fields: dict[str, Any],
        version_fields: dict[str, Any],
        managed: bool = False,
    ) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """Add a version (and the app when it is new); returns (app, version, created).

        A slug another owner holds is a SlugTaken; the new version becomes the current one.
        Concurrent publishes of one app get consecutive versions: the app's row is locked
        while its next number is taken (PostgreSQL; SQLite has one writer), and the loser of a
        race to create the app publishes again, as a new version of the winner's app.
        """
        for attempt in (1, 2):
            try:
                with Session(self.engine) as s:
                    now = utcnow()
                    app = s.scalars(select(App).where(App.slug == slug).with_for_update()).first()
                    created = app is None
                    if app is None:
                        app = App(
                            slug=slug,
                            owner=owner,
                            title=app_fields["title"],
                            description=app_fields.get("description", ""),
                            always_on=bool(app_fields.get("always_on", False)),
                            managed=managed,
                            current_version=1,
                            created_at=now,
                            updated_at=now,
                        )
                        s.add(app)
                        s.flush()
                        number = 1
                    else:
                        if app.owner != owner:
                            raise SlugTaken(
                                f"the app {slug!r} belongs to {app.owner}; pick another slug "
                                "(--slug) or publish without one to get a new app"
                            )
                        last = s.scalar(
                            select(func.max(Version.number)).where(Version.app_id == app.id)
                        )
                        number = (last or 0) + 1
                        for key in ("title", "description", "always_on"):
                            if key in app_fields:
                                setattr(app, key, app_fields[key])
                        app.managed = app.managed or managed
                        app.current_version = number
                        app.updated_at = now
                    version = Version(
                        app_id=app.id,
                        number=number,
                        author=author,
                        created_at=now,
                        sha256=version_fields["sha256"],
                        environment=version_fields["environment"],
                        environment_version=version_fields.get("environment_version") or "",
                        notebook_path=version_fields.get("notebook_path", ""),
                        files=json.dumps(version_fields.get("files", [])),
                        size_bytes=version_fields["size_bytes"],
                        has_thumbnail=bool(version_fields.get("has_thumbnail")),
                    )
                    s.add(version)
                    s.commit()
                    return self._record(s, app), version_dict(version), created
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    def versions(self, slug: str) -> list[dict[str, Any]]:
        """Every version of an app, newest first."""
        with Session(self.engine) as s:
            app = self._app(s, slug)
            rows = s.scalars(
                select(Version).where(Version.app_id == app.id).order_by(Version.number.desc())
            )
            return [version_dict(v) for v in rows]

    def version(self, slug: str, number: int | None = None) -> dict[str, Any]:
        """One version of an app (the current one for None)."""
        with Session(self.engine) as s:
            app = self._app(s, slug)
            wanted = app.current_version if number is None else number
            row = s.scalars(
                select(Version).where(Version.app_id == app.id, Version.number == wanted)
            ).first()
            if row is None:
                known = [
                    v
                    for (v,) in s.execute(
                        select(Version.number)
                        .where(Version.app_id == app.id)
                        .order_by(Version.number)
                    )
                ]
                raise BadRequest(
                    f"app {slug!r} has no version {wanted}; its versions are "
                    f"{', '.join(map(str, known))}"
                )
            return version_dict(row)

    def set_current(self, slug: str, number: int) -> dict[str, Any]:
        """Make an existing version the one the app serves."""
        self.version(slug, number)
        with Session(self.engine) as s:
            app = self._app(s, slug)
            app.current_version = number
            app.updated_at = utcnow()
            s.commit()
            return self._record(s, app)

    def update(self, slug: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change an app's title, description or always-on flag."""
        with Session(self.engine) as s:
            app = self._app(s, slug)
            for key, value in fields.items():
                setattr(app, key, value)
            app.updated_at = utcnow()
            s.commit()
            return self._record(s, app)

    def delete(self, slug: str) -> list[str]:
        """Delete an app with its versions, shares, views and log; returns the bundle hashes."""
        with Session(self.engine) as s:
            app = self._app(s, slug)
            hashes = [
                h for (h,) in s.execute(select(Version.sha256).where(Version.app_id == app.id))
            ]
            for table in (Version, Share, View):
                s.execute(delete(table).where(table.app_id == app.id))
            s.execute(delete(LogTail).where(LogTail.app_id == app.id))
            s.delete(app)
            s.commit()
            return hashes

    def hash_in_use(self, sha256: str) -> bool:
        """Whether any version still points at this bundle."""
        with Session(self.engine) as s:
            return s.scalar(select(func.count()).where(Version.sha256 == sha256)) > 0

    def add_share(self, slug: str, kind: str, name: str) -> dict[str, Any]:
        """Record a share the hub granted (a second one of the same is a no-op)."""
        with Session(self.engine) as s:
            app = self._app(s, slug)
            exists = s.scalars(
                select(Share).where(Share.app_id == app.id, Share.kind == kind, Share.name == name)
            ).first()
            if exists is None:
                s.add(Share(app_id=app.id, kind=kind, name=name))
                s.commit()
            return self._record(s, app)["shared"]

    def viewers(self, slug: str | None = None) -> list[dict[str, str]]:
        """Viewer grants (kind VIEWER) of one app, or of every app: slug, owner, name."""
        query = select(App.slug, App.owner, Share.name).join(App, App.id == Share.app_id)
        query = query.where(Share.kind == VIEWER)
        if slug is not None:
            query = query.where(App.slug == slug)
        with Session(self.engine) as s:
            return [{"slug": a, "owner": o, "name": n} for a, o, n in s.execute(query)]

    def has_share(self, slug: str, kind: str, name: str) -> bool:
        """Whether the app has this share recorded."""
        with Session(self.engine) as s:
            app = self._app(s, slug)
            return (
                s.scalars(
                    select(Share).where(
                        Share.app_id == app.id, Share.kind == kind, Share.name == name
                    )
                ).first()
                is not None
            )

    def remove_share(self, slug: str, kind: str, name: str) -> dict[str, Any]:
        """Forget a share the hub revoked."""
        with Session(self.engine) as s:
            app = self._app(s, slug)
            s.execute(
                delete(Share).where(Share.app_id == app.id, Share.kind == kind, Share.name == name)
            )
            s.commit()
            return self._record(s, app)["shared"]

    def add_views(self, slug: str, views: list[dict[str, Any]]) -> None:
        """Record renderings of the app's page."""
        with Session(self.engine) as s:
            app = self._app(s, slug)
            now = utcnow()
            for v in views:
                s.add(
                    View(
                        app_id=app.id,
                        version=v["version"],
                        viewer=v["viewer"],
                        render_seconds=v["render_seconds"],
                        at=now,
                    )
                )
            s.commit()

    def set_log(self, slug: str, lines: list[str] | None, error: str | None) -> None:
        """Keep the app server's latest log tail and error (None: keep what is there)."""
        with Session(self.engine) as s:
            app = self._app(s, slug)
            row = s.get(LogTail, app.id)
            if row is None:
                row = LogTail(app_id=app.id, lines="[]", error=None, updated_at=utcnow())
                s.add(row)
            if lines is not None:
                row.lines = json.dumps(lines[-MAX_LOG_LINES:])
            if error is not None:
                row.error = error or None
            row.updated_at = utcnow()
            s.commit()

    def log(self, slug: str) -> dict[str, Any]:
        """The kept log tail and error of an app's server."""
        with Session(self.engine) as s:
            app = self._app(s, slug)
            row = s.get(LogTail, app.id)
            if row is None:
                return {"lines": [], "error": None, "updated": None}
            return {
                "lines": json.loads(row.lines),
                "error": row.error,
                "updated": row.updated_at.isoformat() + "Z",
            }

    def usage(self, slug: str) -> dict[str, Any]:
        """Views, unique viewers and median render time, for the app and per version."""
        with Session(self.engine) as s:
            app = self._app(s, slug)
            rows = list(
                s.execute(
                    select(View.version, View.viewer, View.render_seconds).where(
                        View.app_id == app.id
                    )
                )
            )
        return _usage(rows)

    def usage_totals(self) -> list[dict[str, Any]]:
        """Per app and version: owner, views, unique viewers, render times (for metrics)."""
        with Session(self.engine) as s:
            apps = {a.id: a for a in s.scalars(select(App))}
            rows = list(
                s.execute(select(View.app_id, View.version, View.viewer, View.render_seconds))
            )
        out = []
        for app_id, app in apps.items():
            mine = [(v, who, sec) for (a, v, who, sec) in rows if a == app_id]
            out.append({"slug": app.slug, "owner": app.owner, **_usage(mine)})
        return out


def _usage(rows: list[Any]) -> dict[str, Any]:
    def figures(part: list[Any]) -> dict[str, Any]:
        seconds = [r[2] for r in part]
        return {
            "views": len(part),
            "unique_viewers": len({r[1] for r in part}),
            "render_seconds_p50": round(statistics.median(seconds), 4) if seconds else None,
        }

    versions = sorted({r[0] for r in rows})
    return {
        **figures(rows),
        "versions": [{"version": n, **figures([r for r in rows if r[0] == n])} for n in versions],
    }
