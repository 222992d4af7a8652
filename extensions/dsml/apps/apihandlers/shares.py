"""Who an app is shared with: JupyterHub's sharing of the app's server, mirrored here."""

from __future__ import annotations

from urllib.parse import unquote

from dsml.apps.apihandlers.base import SLUG, AppsHandler
from dsml.apps.models import EVERYONE


class SharesHandler(AppsHandler):
    """GET an app's shares; POST adds users, groups or everyone."""

    async def get(self, slug: str) -> None:
        """The shares."""
        self.write_json((await self.app_for(slug))["shared"])

    async def post(self, slug: str) -> None:
        """Add shares; an unknown user or group is a 400 naming it and nothing is shared."""
        from dsml.apps.app import parse_share

        found = await self.app_for(slug, change=True)
        app = self.service_app
        share = parse_share(self.body())
        await app.check_share_targets(share["users"], share["groups"])
        record = await app.add_shares(found, share)
        self.write_json(record["shared"])


class ShareHandler(AppsHandler):
    """DELETE one share (a user's, a group's, or everyone's): revoked at once."""

    async def delete(self, slug: str, kind: str, name: str | None = None) -> None:
        """Revoke it."""
        found = await self.app_for(slug, change=True)
        if kind == "everyone":
            shared = await self.service_app.remove_share(found, EVERYONE, "*")
        else:
            shared = await self.service_app.remove_share(found, kind[:-1], unquote(name or ""))
        self.write_json(shared)


default_handlers = [
    (rf"/api/apps/{SLUG}/shares/?", SharesHandler),
    (rf"/api/apps/{SLUG}/shares/(users|groups)/([^/]+)", ShareHandler),
    (rf"/api/apps/{SLUG}/shares/(everyone)/?", ShareHandler),
]
