"""What every apps handler shares: the app a URL names, checked against the caller's rights."""

from __future__ import annotations

from typing import Any

from dsml import scopes
from dsml.apps.exceptions import Forbidden, UnknownApp
from dsml.apps.models import SLUG_RULE
from dsml.service.handlers import APIHandler

SLUG = r"([^/]+)"
"""A slug in a route (checked against the slug rule by `app_for`)."""


class AppsHandler(APIHandler):
    """An apps API handler: finds the app and says 404 to those who may not see it."""

    async def app_for(
        self, slug: str, change: bool = False, figures: bool = False
    ) -> dict[str, Any]:
        """The app, if the caller may see it (404 otherwise) and change it (403 otherwise).

        `figures`: the call only reads the app's versions or view counts, which a token with
        the read-only apps scope may read of every app (the portal's usage figures).
        """
        user = self.user()
        app = self.service_app
        if not SLUG_RULE.fullmatch(slug):
            raise UnknownApp(f"no app {slug!r}")
        found = await app.store.run(app.store.get_app, slug)
        if figures and scopes.has_scope(user, scopes.APPS_READ):
            return found
        if not app.may_see(user, found):
            # apps not shared with the caller are not there for them
            raise UnknownApp(f"no app {slug!r}")
        if change and not app.may_change(user, found):
            raise Forbidden(
                f"only {found['owner']} (the owner) or a platform admin may change app {slug!r}"
            )
        return found

    def app_model(self, record: dict[str, Any]) -> dict[str, Any]:
        """An app as the API shows it."""
        from dsml.apps.models import iso, server_name

        prefix = self.service_app.public_prefix
        return {
            "slug": record["slug"],
            "owner": record["owner"],
            "title": record["title"],
            "description": record["description"],
            "current_version": record["current_version"],
            "always_on": record["always_on"],
            "managed": record["managed"],
            "created": iso(record["created_at"]),
            "updated": iso(record["updated_at"]),
            "server": server_name(record["slug"]),
            "url": f"{prefix}a/{record['slug']}",
            "shared": record["shared"],
        }
