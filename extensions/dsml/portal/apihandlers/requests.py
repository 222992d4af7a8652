"""Package requests: any signed-in user files them and sees their own; admins see all, answer.

Admin means the caller's token holds `custom:dsml:env-requests:admin` (dsml.scopes): an
admin's token made without that scope is an ordinary user here.
"""

from __future__ import annotations

import re
from typing import Any

from dsml.portal.exceptions import BadRequest, Forbidden, UnknownRequest
from dsml.portal.models import MAX_TEXT, STATUSES
from dsml.scopes import ENV_REQUESTS_ADMIN
from dsml.service.handlers import MAX_ID, APIHandler

PACKAGE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?"
    r"((===?|~=|!=|<=?|>=?)[A-Za-z0-9.*+!_-]+(,(===?|~=|!=|<=?|>=?)[A-Za-z0-9.*+!_-]+)*)?$"
)
"""A requirement as people write it: a name, extras, version constraints (PEP 440 operators
and version characters only: no markup, URLs or markers); checked with fullmatch, since `$`
alone lets a trailing newline through."""


def _unknown_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _text(body: dict[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string, got {type(value).__name__}")
    return value


def _free_text(body: dict[str, Any], key: str) -> str:
    """A reason or an answer: at most MAX_TEXT characters, no NUL (refused, never cut)."""
    value = _text(body, key)
    if len(value) > MAX_TEXT or "\x00" in value:
        raise BadRequest(
            f"{key} must be text of at most {MAX_TEXT:,} characters without NUL; "
            f"got {len(value):,} characters"
        )
    return value


def check_new_request(body: dict[str, Any], known: list[str]) -> tuple[str, str, str]:
    """(package, environment, reason) of a new request, or BadRequest naming what is wrong."""
    _unknown_fields(body, ("package", "environment", "reason"))
    package = _text(body, "package").strip()
    environment = _text(body, "environment").strip()
    reason = _free_text(body, "reason")
    if not PACKAGE.fullmatch(package) or len(package) > 200:
        raise BadRequest(
            f"package {package[:80]!r} is not a package name (optionally with a version) of at "
            "most 200 characters, e.g. lightgbm or lightgbm>=4,<5"
        )
    if environment not in known:
        raise BadRequest(f"environment {environment!r} is not one of {', '.join(known)}")
    return package, environment, reason


def check_answer(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(status, answer) of an answer; None for what the body leaves as it is."""
    _unknown_fields(body, ("status", "answer"))
    status = body.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    answer = _free_text(body, "answer") if "answer" in body else None
    return status, answer


class RequestsHandler(APIHandler):
    """GET: my requests (admins: all), newest first, paged; POST: file one."""

    async def get(self) -> None:
        """`?mine=1` shows an admin only their own; `cursor`, `limit` page."""
        user = self.user()
        if user.get("kind", "user") != "user" and not self.has_scope(ENV_REQUESTS_ADMIN):
            # a service files no requests: without the admin scope it has none to read
            raise Forbidden(
                f"package requests belong to users; {user.get('kind')} {user['name']} needs "
                f"the {ENV_REQUESTS_ADMIN} scope to read them"
            )
        after, limit = self.page()
        mine = self.get_argument("mine", "") in ("1", "true")
        owner = None if self.has_scope(ENV_REQUESTS_ADMIN) and not mine else user["name"]
        store = self.service_app.store
        rows = await store.run(store.list_requests, owner, after, limit)
        self.write_page(rows, limit, "requests")

    async def post(self) -> None:
        """Body: {"package": "lightgbm>=4", "environment": "datascience", "reason": "..."}."""
        user = self.user()
        if user.get("kind", "user") != "user":
            raise Forbidden(
                f"only users can file package requests; this token belongs to "
                f"{user.get('kind')} {user['name']}"
            )
        body = self.body()
        known = await self.service_app.run_blocking(self.service_app.environment_names)
        package, environment, reason = check_new_request(body, known)
        store = self.service_app.store
        row = await store.run(store.create_request, user["name"], package, environment, reason)
        self.write_json(row, status=201)


class RequestHandler(APIHandler):
    """PATCH one request's status and answer (admins only)."""

    async def patch(self, request_id: str) -> None:
        """Body: {"status": one of STATUSES, "answer": "..."}."""
        self.user()
        if not self.has_scope(ENV_REQUESTS_ADMIN):
            raise Forbidden(
                "only platform admins answer package requests "
                f"(a token with the {ENV_REQUESTS_ADMIN} scope)"
            )
        rid = int(request_id)
        if rid > MAX_ID:
            raise UnknownRequest(f"no environment request {request_id}")
        status, answer = check_answer(self.body())
        store = self.service_app.store
        row = await store.run(store.answer_request, rid, status, answer)
        self.write_json(row)


default_handlers = [
    (r"/api/env-requests", RequestsHandler),
    (r"/api/env-requests/(\d+)", RequestHandler),
]
