"""The hub page that shows the curated environments: packages, versions, what changed, requests.

Served by the hub at `/hub/environments` (through the authenticator's handlers, so it has the
hub's look and login); people file package requests from it, admins see everyone's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyterhub.handlers.base import BaseHandler
from tornado import web

from dsml.environments import list_environments
from dsml.environments.history import describe


def catalog(datadir: Any) -> list[dict[str, Any]]:
    """Every curated environment with its pins, build state and changes since the last lock."""
    return [describe(env, datadir) for env in list_environments()]


class EnvironmentsPageHandler(BaseHandler):
    """GET /hub/environments: the catalog, my package requests (admins: all), a request form."""

    @web.authenticated
    async def get(self) -> None:
        """Render the page."""
        from dsml.envrequests import EnvRequest
        from dsml.hub import config as hubconfig

        datadir = hubconfig.datadir_for(hubconfig.load_settings())
        environments = await asyncio.to_thread(catalog, datadir)
        user = self.current_user
        is_admin = "admin:users" in self.expanded_scopes or any(
            g.name == "platform-admins" for g in user.groups
        )
        query = self.db.query(EnvRequest).order_by(EnvRequest.id.desc())
        if not is_admin:
            query = query.filter(EnvRequest.user == user.name)
        html = await self.render_template(
            "environments.html",
            environments=environments,
            requests=[r.to_dict() for r in query.limit(200)],
            is_admin=is_admin,
        )
        self.finish(html)


default_handlers = [(r"/environments", EnvironmentsPageHandler)]
