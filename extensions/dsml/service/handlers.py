"""The base of every service's HTTP handlers: the caller, their rights, JSON in and out, pages.

Callers are resolved through the hub (`jupyterhub.services.auth.HubOAuth`): a hub API token in
the `Authorization` header, or the OAuth cookie a page visit leaves; a cookie counts for a
write only with a valid XSRF token (JupyterHub's own rule). Rights are the scopes of the
caller's token (`dsml.scopes`), never group names. Errors are JSON `{"status", "message"}`.

Each resource module of a service ends in `default_handlers`: a list of `(pattern, Handler)`
with patterns relative to the service prefix (`r"/api/things/(\\d+)"`); `ServiceApp.make_app`
puts the prefix in front, as JupyterHub does with its own `apihandlers`.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.log import app_log

from dsml import scopes
from dsml.service.exceptions import (
    BadRequest,
    Forbidden,
    ServiceError,
    TooLarge,
    UnsupportedMediaType,
)

PAGE_LIMIT = 50
"""Items per page when the caller does not say (`?limit=`)."""

MAX_PAGE_LIMIT = 500
"""Largest `?limit=` a listing accepts."""

MAX_ID = 2**63 - 1
"""Largest id a database row can have (a 64-bit signed integer in SQLite and PostgreSQL)."""

Route = tuple[str, type[web.RequestHandler]] | tuple[str, type[web.RequestHandler], dict]


class _AppHubAuth:
    """Use the app's HubOAuth (configured from its traits), not a process-wide singleton."""

    @property
    def hub_auth(self) -> Any:
        """The service's `HubOAuth`."""
        return self.settings["hub_auth"]  # type: ignore[attr-defined]

    @hub_auth.setter
    def hub_auth(self, value: Any) -> None:
        raise AttributeError("a service's hub_auth comes from its application settings")


class OAuthCallbackHandler(_AppHubAuth, HubOAuthCallbackHandler):
    """Finishes the hub's OAuth login for the service's pages (at `<prefix>oauth_callback`)."""

    def _request_summary(self) -> str:
        # the query holds the one-time OAuth code and state: keep them out of the log
        return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"


class JSONHandler(web.RequestHandler):
    """JSON in and out, errors as JSON {status, message}: the base of every route.

    It knows nothing of the hub: a route that authenticates some other way (a scheduler
    worker with its run's token) subclasses it directly.
    """

    @property
    def service_app(self) -> Any:
        """The `ServiceApp` serving this request."""
        return self.settings["service_app"]

    def body(self, limit: int | None = None) -> dict[str, Any]:
        """The JSON object in the request body (400 not one, 413 too big, 415 not JSON).

        `limit` is in bytes; the service's `max_request_bytes` unless a route says otherwise.
        """
        raw = self.request.body or b""
        limit = limit or self.service_app.max_request_bytes
        if len(raw) > limit:
            raise TooLarge(f"request body is {len(raw):,} bytes; the limit is {limit:,}")
        media = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if raw and media and media != "application/json" and not media.endswith("+json"):
            raise UnsupportedMediaType(
                f"request body is {media}; send JSON with 'Content-Type: application/json'"
            )
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("request body is not valid JSON") from None
        except RecursionError:
            # json.loads recurses per level: thousands of `[` must be a 400, not a 500
            raise BadRequest("request body is JSON nested too deeply (over ~900 levels)") from None
        if not isinstance(data, dict):
            raise BadRequest(f"request body must be a JSON object, found {type(data).__name__}")
        return data

    def _request_summary(self) -> str:
        """Method, path and client for tornado's log lines, without the query string.

        tornado puts the whole URI there (its warnings for 4xx, its access log): a `?token=`,
        which HubAuth accepts, would reach the log.
        """
        return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"

    def write_json(self, data: Any, status: int = 200) -> None:
        """Answer with JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error is JSON {status, message}; a server error says no more than that."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = self._reason
        if isinstance(exc, ServiceError):
            message = str(exc)
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"status": status_code, "message": message}))

    def log_exception(self, typ, value, tb):  # type: ignore[no-untyped-def]
        """Expected errors are not server errors: log them in one line."""
        if isinstance(value, ServiceError):
            app_log.info(
                "%s %s: %s %s", self.request.method, self.request.path, value.status, value
            )
        else:
            super().log_exception(typ, value, tb)

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, ServiceError):
            self.log_exception(type(e), e, e.__traceback__)
            if not self._finished:
                self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class APIHandler(_AppHubAuth, HubOAuthenticated, JSONHandler):
    """Shared plumbing: the app, the caller and their scopes, JSON bodies, errors, paging."""

    async def prepare(self) -> None:
        """Resolve the caller through the hub without blocking the event loop."""
        self._hub_auth_user_cache = None
        self._refused: dict[str, Any] | None = None
        model = await self.hub_auth.get_user(self, sync=False)
        if model:
            try:
                self._hub_auth_user_cache = self.check_hub_user(model)
            except UserNotAllowed:
                self._refused = model

    def _refusal(self) -> Forbidden:
        model = self._refused or {}
        return Forbidden(
            f"{model.get('kind', 'user')} {model.get('name')} may not use this service: the "
            f"token lacks {' or '.join(sorted(self.hub_auth.access_scopes))}"
        )

    def get_login_url(self) -> str:
        """The hub's OAuth login; a caller the hub knows but this service refuses gets 403."""
        if getattr(self, "_refused", None):
            raise self._refusal()
        return super().get_login_url()

    def user(self) -> dict[str, Any]:
        """The caller's hub model (user or service), or Forbidden when nobody is signed in."""
        model = self.current_user
        if not model:
            if getattr(self, "_refused", None):
                raise self._refusal()
            raise Forbidden(
                "authentication required: send a hub API token as 'Authorization: token <token>'"
            )
        return model

    def has_scope(self, scope: str) -> bool:
        """Whether the caller's token holds `scope` (what the token holds, not its owner)."""
        return scopes.has_scope(self.current_user, scope)

    def page(self) -> tuple[int | None, int]:
        """The `cursor` (an id, None for the first page) and `limit` query arguments."""
        cursor = self.get_argument("cursor", None)
        limit = self.get_argument("limit", str(PAGE_LIMIT))
        try:
            after = int(cursor) if cursor else None
            n = int(limit)
        except ValueError:
            raise BadRequest(
                f"cursor and limit must be whole numbers, got cursor={cursor!r} limit={limit!r}"
            ) from None
        if not 1 <= n <= MAX_PAGE_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE_LIMIT}, got {n}")
        if after is not None and not 0 <= after <= MAX_ID:
            raise BadRequest(f"cursor must be a next_cursor from a previous page, got {after}")
        return after, n

    def write_page(self, items: list[dict[str, Any]], limit: int, key: str) -> None:
        """A page of results with the cursor of the next page (null at the end)."""
        cursor = str(items[-1]["id"]) if len(items) == limit else None
        self.write_json({key: items, "next_cursor": cursor})

    def render_template(self, name: str, **namespace: Any) -> str:
        """Render a page in the hub's look: what the hub's page.html expects, plus `namespace`.

        Links and static files point at the hub (`/hub/...`), so the navigation bar is the
        hub's own; `service_prefix` and `xsrf_token` are this service's.
        """
        hub = self.hub_auth.hub_prefix
        model = self.current_user
        user = None
        if model:
            user = {
                "name": model["name"],
                "json_escaped_name": json.dumps(model["name"])[1:-1],
            }
        xsrf = self.xsrf_token
        ns = {
            "base_url": hub,
            "prefix": hub.rstrip("/").rsplit("/", 1)[0] + "/",
            "static_url": lambda path, include_version=True: url_path_join(hub, "static", path),
            "version_hash": "",
            "user": user,
            # the hub's nav shows Admin for the admin-ui scope: the page session carries it
            # when the service's oauth_client_allowed_scopes include it
            "parsed_scopes": set(model.get("scopes") or ()) if model else set(),
            "services": [],
            "login_url": url_path_join(hub, "login"),
            "logout_url": url_path_join(hub, "logout"),
            "logo_url": url_path_join(hub, "home"),
            "no_spawner_check": True,
            "admin_access": False,
            "announcement": None,
            "xsrf_token": xsrf.decode() if isinstance(xsrf, bytes) else xsrf,
            "service_prefix": self.service_app.service_prefix,
        }
        ns.update(namespace)
        return self.service_app.jinja_env.get_template(name).render(**ns)


class NotFoundHandler(APIHandler):
    """Anything under the prefix that no route serves: a JSON 404, never tornado's HTML."""

    async def prepare(self) -> None:
        """No caller needed to say that nothing is here."""
        raise web.HTTPError(404, f"nothing at {self.request.path}")
