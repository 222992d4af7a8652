"""The platform's health: the overall status for anyone, the detail for a scope.

`GET /api/health` answers 200 `{"status": "ok"}` while every part is up and 503
`{"status": "failing"}` otherwise, with or without a token (what `dsml up` and monitors
poll). A caller whose token holds `custom:dsml:health:read` also gets `checks`, one word per
part; `?detail=1` asks for them and is refused (403) without the scope.
"""

from __future__ import annotations

from dsml.portal.exceptions import Forbidden
from dsml.portal.health import OK
from dsml.scopes import HEALTH_READ
from dsml.service.handlers import APIHandler


class HealthHandler(APIHandler):
    """GET: the platform's health."""

    async def get(self) -> None:
        """200 while all parts are up, else 503; `checks` for HEALTH_READ."""
        detail = self.get_argument("detail", "") in ("1", "true")
        allowed = self.has_scope(HEALTH_READ)
        if detail and not allowed:
            raise Forbidden(
                f"the health detail needs a token with the {HEALTH_READ} scope "
                "(platform admins have it); without one, GET /api/health gives the status"
            )
        checks = await self.service_app.health()
        healthy = all(value == OK for value in checks.values())
        self.set_header("Cache-Control", "no-store")
        body: dict[str, object] = {"status": "ok" if healthy else "failing"}
        if allowed:
            body["checks"] = checks
        self.write_json(body, status=200 if healthy else 503)


default_handlers = [(r"/api/health", HealthHandler)]
