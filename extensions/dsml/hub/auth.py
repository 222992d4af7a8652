"""Password login for the platform, plus the hub API endpoints the platform adds.

The login itself is jupyterhub-nativeauthenticator (bcrypt hashes in the hub database, lock-out
after failed attempts, a change-password page). Self sign-up is off: accounts are made by admins
(`dsml users add`), which set the first password through `PUT /hub/api/dsml/users/NAME/password`.
`GET /hub/api/dsml/health` answers 200 only while the database, the proxy and every service are up.
"""

from __future__ import annotations

import asyncio
import json

import bcrypt
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.orm import UserInfo
from sqlalchemy import text
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Bool


class PasswordAPIHandler(APIHandler):
    """Set a user's password and mark the account authorized (admins only)."""

    @needs_scope("admin:users")
    async def put(self, user_name: str) -> None:
        """Body: {"password": "..."}; 400 on a weak password, 404 on an unknown user."""
        body = self.get_json_body() or {}
        password = body.get("password") if isinstance(body, dict) else None
        minimum = self.authenticator.minimum_password_length
        if not isinstance(password, str) or len(password) < minimum:
            raise web.HTTPError(400, f"password must be a string of at least {minimum} characters")
        if self.authenticator.check_common_password and self.authenticator.is_password_common(
            password
        ):
            raise web.HTTPError(400, "password is on the list of common passwords; pick another")
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(
                404, f"no user {user_name!r}; create it first (POST /hub/api/users/{user_name})"
            )
        hashed = await asyncio.to_thread(bcrypt.hashpw, password.encode(), bcrypt.gensalt())
        info = UserInfo.find(self.db, user.name)
        if info is None:
            info = UserInfo(username=user.name, password=hashed, is_authorized=True)
            self.db.add(info)
        else:
            info.password = hashed
            info.is_authorized = True
        self.db.commit()
        self.write(json.dumps({"name": user.name, "authorized": True}))


class HealthAPIHandler(APIHandler):
    """Report the health of the hub database, the proxy and every service."""

    async def _check_service(self, service) -> str:  # type: ignore[no-untyped-def]
        if service.managed:
            spawner = service.spawner
            if spawner is None or (await spawner.poll()) is not None:
                return "process not running"
        if service.url:
            try:
                await AsyncHTTPClient().fetch(
                    service.url.rstrip("/") + "/", request_timeout=5, follow_redirects=False
                )
            except HTTPClientError as e:
                if e.code >= 500 or e.code == 599:
                    return f"answered HTTP {e.code}"
            except OSError as e:
                return f"not reachable: {e}"
        return "ok"

    async def get(self) -> None:
        """200 with {"status": "ok", "checks": {...}} when all is well, else 503."""
        checks: dict[str, str] = {}
        try:
            self.db.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as e:  # noqa: BLE001 - any failure is the answer
            checks["database"] = f"failing: {e}"
        try:
            await asyncio.wait_for(self.proxy.get_all_routes(), timeout=5)
            checks["proxy"] = "ok"
        except Exception as e:  # noqa: BLE001
            checks["proxy"] = f"failing: {e!r}"
        for name, service in sorted(self.services.items()):
            checks[f"service:{name}"] = await self._check_service(service)
        healthy = all(v == "ok" for v in checks.values())
        self.set_status(200 if healthy else 503)
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps({"status": "ok" if healthy else "failing", "checks": checks}))


class DsmlAuthenticator(NativeAuthenticator):
    """NativeAuthenticator with admin-made accounts and the platform's extra API handlers."""

    enable_signup = Bool(False, config=True, help="Allow people to request an account themselves.")
    allow_all = Bool(
        True,
        config=True,
        help="Let every authorized account log in (accounts exist only when an admin made them).",
    )

    def get_handlers(self, app):  # type: ignore[no-untyped-def]
        """NativeAuthenticator's pages plus the platform's pages and API endpoints."""
        from dsml import envcatalog, envrequests

        envrequests.create_table(self.db)
        return (
            envrequests.default_handlers
            + envcatalog.default_handlers
            + [
                (r"/api/dsml/health", HealthAPIHandler),
                (r"/api/dsml/users/([^/]+)/password", PasswordAPIHandler),
            ]
            + super().get_handlers(app)
        )
