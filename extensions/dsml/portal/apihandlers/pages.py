"""The portal's pages, in the hub's look: the environments catalog with package requests."""

from __future__ import annotations

from jupyterhub.utils import url_path_join
from tornado import web

from dsml.scopes import ENV_REQUESTS_ADMIN
from dsml.service.handlers import APIHandler

PAGE_ROWS = 200
"""Package requests shown on the page (newest first)."""


class EnvironmentsPageHandler(APIHandler):
    """GET: the catalog, my package requests (admins: all), a request form."""

    @web.authenticated
    async def get(self) -> None:
        """Render the page."""
        user = self.user()
        app = self.service_app
        is_admin = self.has_scope(ENV_REQUESTS_ADMIN)
        catalog = await app.run_blocking(app.catalog)
        owner = None if is_admin else user["name"]
        rows = await app.store.run(app.store.list_requests, owner, None, PAGE_ROWS)
        self.finish(
            self.render_template(
                "environments.html", environments=catalog, requests=rows, is_admin=is_admin
            )
        )


class HomeHandler(APIHandler):
    """GET the service's root: the environments page (the portal's home until it has one)."""

    async def get(self) -> None:
        """Redirect."""
        self.redirect(url_path_join(self.service_app.service_prefix, "environments"))


default_handlers = [
    (r"/?", HomeHandler),
    (r"/environments/?", EnvironmentsPageHandler),
]
