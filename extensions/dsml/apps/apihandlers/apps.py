"""Apps and their versions: publish, list, get, edit, delete, versions, rollback, bundle."""

from __future__ import annotations

from typing import Any

from dsml.apps.apihandlers.base import SLUG, AppsHandler
from dsml.apps.exceptions import BadRequest, Forbidden
from dsml.scopes import APPS_ADMIN, APPS_READ, JOBS_RUN
from dsml.service.handlers import MAX_ID


class AppsListHandler(AppsHandler):
    """GET the caller's apps and those shared with them; POST publishes."""

    async def get(self) -> None:
        """`?owned=1`: only the caller's; `?all=1` (apps admins): every app."""
        user = self.user()
        app = self.service_app
        owned = self.get_argument("owned", "") in ("1", "true")
        every = self.get_argument("all", "") in ("1", "true")
        if every:
            if not (self.has_scope(APPS_ADMIN) or self.has_scope(APPS_READ)):
                raise Forbidden(f"?all=1 needs the {APPS_ADMIN} scope (platform admins)")
            rows = await app.store.run(app.store.list_apps)
        else:
            rows = await app.store.run(app.store.list_apps, user["name"])
            if not owned:
                seen = {r["slug"] for r in rows}
                shared = await app.store.run(
                    app.store.shared_with, user["name"], list(user.get("groups") or [])
                )
                rows += [r for r in shared if r["slug"] not in seen]
        self.write_json({"apps": [self.app_model(r) for r in rows], "next_cursor": None})

    async def post(self) -> None:
        """Publish: a new app, or a new version of the caller's app with that slug."""
        user = self.user()
        # a published notebook runs on a server of its owner: publishing needs the right to
        # run code (stakeholders and tokens made without it are viewers only)
        if not (self.has_scope(JOBS_RUN) or self.has_scope(APPS_ADMIN)):
            raise Forbidden(
                f"publishing an app needs the scope {JOBS_RUN} (members of analysts, "
                f"data-scientists, newcomers and platform-admins have it) or {APPS_ADMIN}; "
                "this token has neither"
            )
        body = self.body()
        app = self.service_app
        owner = user["name"]
        slug = body.get("slug")
        if isinstance(slug, str) and slug:
            existing = await app.store.run(app.store.find_app, slug)
            # an apps admin may publish a new version of someone else's app
            if existing and existing["owner"] != owner and self.has_scope(APPS_ADMIN):
                owner = existing["owner"]
        record, version, _ = await app.publish(owner, user["name"], body)
        self.write_json(
            {
                "app": self.app_model(record),
                "version": version,
                "url": self.app_model(record)["url"],
            },
            status=201,
        )


class AppHandler(AppsHandler):
    """GET, PATCH (title, description, always-on) or DELETE one app."""

    async def get(self, slug: str) -> None:
        """The app."""
        self.write_json(self.app_model(await self.app_for(slug)))

    async def patch(self, slug: str) -> None:
        """Change title, description or always-on."""
        from dsml.apps.app import parse_app_fields

        found = await self.app_for(slug, change=True)
        body = self.body()
        unknown = set(body) - {"title", "description", "always_on"}
        if unknown:
            raise BadRequest(
                f"cannot change {sorted(unknown)}; an app's title, description and always_on "
                "may change (publish a new version for anything else)"
            )
        app = self.service_app
        record = await app.store.run(app.store.update, slug, parse_app_fields(body, partial=True))
        if record["always_on"] and not found["always_on"]:
            await app.start_server(record)
        self.write_json(self.app_model(record))

    async def delete(self, slug: str) -> None:
        """Delete the app, its versions, its server and its shares."""
        found = await self.app_for(slug, change=True)
        await self.service_app.delete(found)
        self.set_status(204)
        self.finish()


class VersionsHandler(AppsHandler):
    """GET every version of an app, newest first."""

    async def get(self, slug: str) -> None:
        """The versions."""
        await self.app_for(slug, figures=True)
        app = self.service_app
        self.write_json({"versions": await app.store.run(app.store.versions, slug)})


class RollbackHandler(AppsHandler):
    """POST {"version": n}: serve an earlier (or later) version again."""

    async def post(self, slug: str) -> None:
        """Point the app at the version and restart its server with it."""
        found = await self.app_for(slug, change=True)
        number = self.body().get("version")
        # beyond a 64-bit integer the database cannot even compare it (a 500 before)
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_ID:
            raise BadRequest(f"version must be a version number (1, 2, ...), got {number!r}")
        app = self.service_app
        record = await app.store.run(app.store.set_current, slug, number)
        if found["current_version"] != number:
            await app.serve_current(record, restart=True)
        self.write_json(self.app_model(record))


class BundleHandler(AppsHandler):
    """GET the current version's bundle: what the app server serves (owner or admin)."""

    async def get(self, slug: str) -> None:
        """The gzip tar, with its version, kernel and hash in headers."""
        await self.app_for(slug, change=True)
        app = self.service_app
        version: dict[str, Any] = await app.store.run(app.store.version, slug, None)
        data = await app.run_blocking(app.bundles.read, version["sha256"])
        from dsml.apps.bundles import kernel_of

        self.set_header("Content-Type", "application/gzip")
        self.set_header("X-Dsml-App-Version", str(version["version"]))
        self.set_header("X-Dsml-Sha256", version["sha256"])
        self.set_header("X-Dsml-Kernel", kernel_of(data))
        self.set_header("Cache-Control", "no-store")
        self.finish(data)


class ThumbnailHandler(AppsHandler):
    """GET the current version's thumbnail (404 when it has none)."""

    async def get(self, slug: str) -> None:
        """The image."""
        await self.app_for(slug)
        app = self.service_app
        version = await app.store.run(app.store.version, slug, None)
        data = await app.run_blocking(app.bundles.thumbnail, version["sha256"])
        if data is None:
            from dsml.apps.exceptions import NotFound

            raise NotFound(f"app {slug!r} has no thumbnail")
        self.set_header("Content-Type", "image/png" if data[:4] == b"\x89PNG" else "image/jpeg")
        self.set_header("Cache-Control", "private, max-age=60")
        self.finish(data)


default_handlers = [
    (r"/api/apps/?", AppsListHandler),
    (rf"/api/apps/{SLUG}/?", AppHandler),
    (rf"/api/apps/{SLUG}/versions/?", VersionsHandler),
    (rf"/api/apps/{SLUG}/rollback/?", RollbackHandler),
    (rf"/api/apps/{SLUG}/bundle/?", BundleHandler),
    (rf"/api/apps/{SLUG}/thumbnail/?", ThumbnailHandler),
]
