"""The scheduler API's base handler: the caller through the hub, their rights, JSON in and out.

User requests are authenticated by the hub (a hub API token, or the OAuth cookie for pages);
rights are the scopes of the caller's token (`dsml.scopes`). Every error is JSON
`{"status", "message"}` with the status the exception names.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.services.auth import HubOAuthenticated, UserNotAllowed
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.log import app_log

from dsml.scheduler.exceptions import BadRequest, Forbidden, NotFound, SchedulerError, TooLarge
from dsml.scopes import JOBS_ADMIN, has_scope

PAGE_LIMIT = 50
MAX_PAGE_LIMIT = 500


class JSONErrors:
    """A RequestHandler mixin: errors as JSON {status, message}, expected ones in one log line."""

    @property
    def app(self) -> Any:
        """The SchedulerApp."""
        return self.settings["scheduler_app"]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error is JSON {status, message}."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = self._reason
        if isinstance(exc, SchedulerError):
            message = str(exc)
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))

    def log_exception(self, typ, value, tb):  # type: ignore[no-untyped-def]
        """Expected errors are not server errors: log them in one line."""
        if isinstance(value, SchedulerError):
            app_log.info("%s %s: %s", self.request.method, self.request.uri, value)
        else:
            super().log_exception(typ, value, tb)

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, SchedulerError):
            self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    def write_json(self, data: Any, status: int = 200) -> None:
        """Answer with JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def json_body(self, limit: int) -> dict[str, Any]:
        """The JSON object in the request body (400 when it is not one; 413 over `limit`)."""
        raw = self.request.body or b"{}"
        if len(raw) > limit:
            raise TooLarge(f"request body is {len(raw):,} bytes; the limit is {limit:,}")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest(f"request body must be a JSON object, found {type(data).__name__}")
        return data


class BaseHandler(JSONErrors, HubOAuthenticated, web.RequestHandler):
    """Shared plumbing: app objects, JSON bodies, JSON errors, the caller and their rights."""

    @property
    def store(self) -> Any:
        """The Store."""
        return self.app.store

    @property
    def manager(self) -> Any:
        """The RunManager."""
        return self.app.manager

    async def prepare(self) -> None:
        """Resolve the caller through the hub without blocking the event loop."""
        self._hub_auth_user_cache = None
        model = await self.hub_auth.get_user(self, sync=False)
        if model:
            try:
                self._hub_auth_user_cache = self.check_hub_user(model)
            except UserNotAllowed:
                self._hub_auth_user_cache = None

    def user(self) -> dict[str, Any]:
        """The caller's hub model, or 403 when the request is not authenticated."""
        model = self.current_user
        if not model:
            raise Forbidden(
                "authentication required: send a hub API token as 'Authorization: token <token>'"
            )
        return model

    def is_admin(self, user: dict[str, Any]) -> bool:
        """Callers whose token holds the jobs admin scope see and change every job."""
        return has_scope(user, JOBS_ADMIN)

    def can_read(self, user: dict[str, Any], job: dict[str, Any]) -> bool:
        """Owner, admin, or a member of a group the job is shared with."""
        return (
            job["owner"] == user["name"]
            or self.is_admin(user)
            or bool(set(job.get("shared_with") or []) & set(user.get("groups") or []))
        )

    def can_write(self, user: dict[str, Any], job: dict[str, Any]) -> bool:
        """Owner or admin."""
        return job["owner"] == user["name"] or self.is_admin(user)

    async def job_for(self, job_id: int, write: bool = False) -> dict[str, Any]:
        """The job, if the caller may see it (404 otherwise) and change it (403 otherwise)."""
        user = self.user()
        try:
            job = await self.store.run(self.store.get_job, job_id)
        except NotFound:
            raise NotFound(f"no job {job_id}") from None
        if not self.can_read(user, job):
            raise NotFound(f"no job {job_id}")
        if write and not self.can_write(user, job):
            raise Forbidden(
                f"job {job_id} is shared with you read-only; only its owner can change it"
            )
        return job

    async def run_for(
        self, run_id: int, write: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The run and its job, if the caller may see (404) and change (403) them."""
        try:
            run = await self.store.run(self.store.get_run, run_id)
        except NotFound:
            raise NotFound(f"no run {run_id}") from None
        try:
            job = await self.job_for(run["job_id"], write=write)
        except NotFound:
            raise NotFound(f"no run {run_id}") from None
        return run, job

    def body(self) -> dict[str, Any]:
        """The JSON object in the request body (400 when it is not one; 413 when too big)."""
        return self.json_body(self.app.max_request_bytes)

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated API calls carry no XSRF cookie; cookie sessions only read."""

    def page(self) -> tuple[int | None, int]:
        """Cursor and limit query arguments (400 when malformed)."""
        cursor = self.get_argument("cursor", None)
        limit = self.get_argument("limit", str(PAGE_LIMIT))
        try:
            after = int(cursor) if cursor else None
            n = int(limit)
        except ValueError:
            raise BadRequest("cursor and limit must be whole numbers") from None
        if not 1 <= n <= MAX_PAGE_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE_LIMIT}, got {n}")
        return after, n

    def write_page(self, items: list[dict[str, Any]], limit: int, key: str) -> None:
        """A page of results with the cursor of the next page (null at the end)."""
        cursor = str(items[-1]["id"]) if len(items) == limit else None
        self.write_json({key: items, "next_cursor": cursor})

    def run_links(self, run: dict[str, Any]) -> dict[str, Any]:
        """A run with the URLs of its page and outputs."""
        base = url_path_join(self.app.public_prefix, "api", "runs", str(run["id"]))
        run = dict(run)
        run.pop("executor_ref", None)
        run["urls"] = {
            "self": base,
            "page": url_path_join(self.app.public_prefix, "runs", str(run["id"])),
            "notebook": base + "/output.ipynb" if run["has_output"] else None,
            "html": base + "/output.html" if run["has_output"] else None,
        }
        return run


def _int(value: Any, name: str, minimum: int = 0, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BadRequest(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value
