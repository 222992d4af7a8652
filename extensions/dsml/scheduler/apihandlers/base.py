"""The scheduler API's base handler: the caller through the hub, their rights, JSON in and out.

User requests are authenticated by the hub (a hub API token, or the OAuth cookie for pages);
rights are the scopes of the caller's token (`dsml.scopes`). Every error is JSON
`{"status", "message"}` with the status the exception names.

Bodies are streamed (`stream_request_body`), so each route's limit is checked against
Content-Length in `prepare`, before the body is read and before the caller is looked up.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.utils import url_path_join

from dsml.scheduler.exceptions import BadRequest, Forbidden, NotFound, TooLarge
from dsml.scopes import JOBS_ADMIN, JOBS_READ, JOBS_RUN, has_scope
from dsml.service.handlers import APIHandler, JSONHandler

MAX_ROW_ID = 2**31 - 1
"""Largest id any scheduler row can have (32-bit Integer columns on PostgreSQL)."""

MAX_NUMBER = 2**31 - 1
"""Largest whole number a job field holds (32-bit Integer columns on PostgreSQL)."""


class BodyLimit(JSONHandler):
    """A route's body limit checked from Content-Length before the body is read.

    Subclasses say their limit in `body_limit()`; the body arrives through `data_received`
    and `body()` / `raw_body()` read it.
    """

    _stream_request_body = True  # what @tornado.web.stream_request_body sets

    def body_limit(self) -> int:
        """Largest body this route reads, in bytes."""
        return int(self.service_app.max_request_bytes)

    def check_length(self) -> None:
        """413 when Content-Length is over the route's limit (nothing of the body read yet)."""
        self._chunks: list[bytes] = []
        self._received = 0
        limit = self.body_limit()
        length = self.request.headers.get("Content-Length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise BadRequest(f"Content-Length must be a whole number, got {length!r}") from None
            if size > limit:
                raise TooLarge(
                    f"request body is {size:,} bytes; the limit of {self.request.method} "
                    f"{self.request.path} is {limit:,} bytes"
                )

    def data_received(self, chunk: bytes) -> None:
        """Keep the body as it arrives, up to the limit (a chunked body may not say its size)."""
        self._received += len(chunk)
        if self._received <= self.body_limit():
            self._chunks.append(chunk)

    def raw_body(self) -> bytes:
        """The whole body, or 413 when more than the limit came."""
        limit = self.body_limit()
        if getattr(self, "_received", 0) > limit:
            raise TooLarge(
                f"request body is over the limit of {self.request.method} "
                f"{self.request.path}: {limit:,} bytes"
            )
        return b"".join(getattr(self, "_chunks", []))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """An error answered before the body was read closes the connection: a proxy that
        kept it open would send its next request into the rest of this body."""
        if not self.request.body and not getattr(self, "_chunks", None):
            self.set_header("Connection", "close")
        super().write_error(status_code, **kwargs)

    def body(self, limit: int | None = None) -> dict[str, Any]:
        """The JSON object in the body (400 not one, 413 too big, 415 not JSON)."""
        self.request.body = self.raw_body()
        return super().body(limit or self.body_limit())


def object_id(value: str, what: str) -> int:
    """An id from a URL; 404 for one no row can have (beyond 32 bits), never a 500."""
    number = int(value)
    if number > MAX_ROW_ID:
        raise NotFound(f"no {what} {value}")
    return number


class BaseHandler(BodyLimit, APIHandler):
    """Shared plumbing: app objects, JSON bodies, JSON errors, the caller and their rights."""

    async def prepare(self) -> None:
        """Refuse an oversized body first, then resolve the caller through the hub."""
        self.check_length()
        await super().prepare()

    @property
    def app(self) -> Any:
        """The SchedulerApp."""
        return self.service_app

    @property
    def store(self) -> Any:
        """The Store."""
        return self.app.store

    @property
    def manager(self) -> Any:
        """The RunManager."""
        return self.app.manager

    def is_admin(self, user: dict[str, Any]) -> bool:
        """Callers whose token holds the jobs admin scope see and change every job."""
        return has_scope(user, JOBS_ADMIN)

    def lists_all(self, user: dict[str, Any]) -> bool:
        """`?all=1` asked by a jobs admin, or by a token that may list every job (read-only)."""
        if self.get_argument("all", "") != "1":
            return False
        return self.is_admin(user) or has_scope(user, JOBS_READ)

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

    def shown(self, user: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        """The job as this caller may see it: read-only viewers do not see its notify."""
        if self.can_write(user, job):
            return job
        return {**job, "notify": None}

    async def check_may_run(self, user: dict[str, Any], job: dict[str, Any] | None) -> None:
        """403 unless the caller holds jobs:run (or admin) and the job's owner still does.

        Checked on every write that can make code run, as the hub says now.
        """
        if not self.is_admin(user) and not has_scope(user, JOBS_RUN):
            raise Forbidden(
                f"scheduling notebooks needs the scope {JOBS_RUN} (members of analysts, "
                "data-scientists, newcomers and platform-admins have it); this token does not"
            )
        owner = job["owner"] if job else user["name"]
        if job is None and user.get("kind") == "service":
            return
        reason = await self.manager.check_owner(owner)
        if reason is not None:
            raise Forbidden(f"this job cannot run: {reason}")

    def idempotency_key(self) -> str | None:
        """The Idempotency-Key header (at most 255 characters), or None."""
        key = self.request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 255:
            raise BadRequest(f"Idempotency-Key must be 1 to 255 characters, got {len(key)}")
        return key

    def write_listing(self, items: list[dict[str, Any]], limit: int, key: str, total: int) -> None:
        """A page of results, the cursor of the next page (null at the end) and the total."""
        cursor = str(items[-1]["id"]) if len(items) == limit else None
        self.write_json({key: items, "next_cursor": cursor, "total": total})

    async def job_for(self, job_id: int, write: bool = False) -> dict[str, Any]:
        """The job, if the caller may see it (404 otherwise) and change it (403 otherwise)."""
        user = self.user()
        if job_id > MAX_ROW_ID:
            raise NotFound(f"no job {job_id}")
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
        if run_id > MAX_ROW_ID:
            raise NotFound(f"no run {run_id}")
        try:
            run = await self.store.run(self.store.get_run, run_id)
        except NotFound:
            raise NotFound(f"no run {run_id}") from None
        try:
            job = await self.job_for(run["job_id"], write=write)
        except NotFound:
            raise NotFound(f"no run {run_id}") from None
        return run, job

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


def _int(
    value: Any,
    name: str,
    minimum: int = 0,
    allow_none: bool = True,
    maximum: int = MAX_NUMBER,
    limit_name: str = "",
) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BadRequest(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if value > maximum:
        why = f" (the {limit_name} limit)" if limit_name else ""
        raise BadRequest(f"{name} must be at most {maximum:,}{why}, got {value!r}")
    return value
