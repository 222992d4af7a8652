"""The apps service's pages: the gallery, the stable link that wakes an app, the owner's page."""

from __future__ import annotations

from jupyterhub.utils import url_path_join
from tornado import web

from dsml.apps.apihandlers.base import SLUG, AppsHandler
from dsml.apps.exceptions import ServiceError
from dsml.apps.hub import RUNNING
from dsml.scopes import APPS_ADMIN


class PageHandler(AppsHandler):
    """Pages answer errors with a page in the hub's look, not JSON."""

    def write_error(self, status_code: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        """A clean error page: the one-line message, no traceback, no paths."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = str(exc) if isinstance(exc, ServiceError) else self._reason
        if status_code >= 500:
            message = "Something went wrong on the platform; please try again in a minute."
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(
            self.render_template("app_error.html", status_code=status_code, message=message)
        )


class GalleryHandler(PageHandler):
    """GET: the apps shared with me (and mine), with thumbnails."""

    @web.authenticated
    async def get(self) -> None:
        """Render the gallery."""
        user = self.user()
        app = self.service_app
        mine = await app.store.run(app.store.list_apps, user["name"])
        shared = await app.store.run(
            app.store.shared_with, user["name"], list(user.get("groups") or [])
        )
        seen = {a["slug"] for a in mine}
        every = []
        if self.has_scope(APPS_ADMIN):
            every = [
                a
                for a in await app.store.run(app.store.list_apps)
                if a["slug"] not in seen and a["slug"] not in {s["slug"] for s in shared}
            ]
        self.finish(
            self.render_template(
                "gallery.html",
                mine=[self.app_model(a) for a in mine],
                shared=[self.app_model(a) for a in shared if a["slug"] not in seen],
                others=[self.app_model(a) for a in every],
            )
        )


class OpenHandler(PageHandler):
    """GET /a/<slug>: the app's stable link. Running: on to it. Stopped: wake it, then on."""

    @web.authenticated
    async def get(self, slug: str) -> None:
        """Redirect, or start the server and show live progress until it is ready."""
        found = await self.app_for(slug)
        app = self.service_app
        # a viewer let in by a group or 'everyone' gets a hub share of their own first
        await app.grant_viewer(found, self.user())
        status = await app.status(found)
        if status["state"] == RUNNING and status["ready"]:
            self.redirect(status["url"])
            return
        if status["state"] not in ("starting",):
            # the hub answers a start only when the server is up or after its slow-spawn
            # timeout: start in the background and show the live waiting page now
            app.start_in_background(found)
            status = {**status, "state": "starting", "message": "Starting the app…"}
        self.finish(
            self.render_template("wake.html", app=self.app_model(found), status=status, slug=slug)
        )


class ManageHandler(PageHandler):
    """GET /manage/<slug>: the owner's page: versions, sharing, usage, log."""

    @web.authenticated
    async def get(self, slug: str) -> None:
        """Render it (owner or apps admin)."""
        found = await self.app_for(slug, change=True)
        app = self.service_app
        versions = await app.store.run(app.store.versions, slug)
        usage = await app.store.run(app.store.usage, slug)
        log = await app.store.run(app.store.log, slug)
        status = await app.status(found)
        self.finish(
            self.render_template(
                "manage.html",
                app=self.app_model(found),
                versions=versions,
                usage=usage,
                log=log,
                status=status,
                thumbnail_url=url_path_join(app.service_prefix, f"api/apps/{slug}/thumbnail"),
            )
        )


default_handlers = [
    (r"/?", GalleryHandler),
    (rf"/a/{SLUG}/?", OpenHandler),
    (rf"/manage/{SLUG}/?", ManageHandler),
]
