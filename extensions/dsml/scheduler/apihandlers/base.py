"""The scheduler API's base handler: the caller through the hub, their rights, JSON in and out.

User requests are authenticated by the hub (a hub API token, or the OAuth cookie for pages);
rights are the scopes of the caller's token (`dsml.scopes`). Every error is JSON
`{"status", "message"}` with the status the exception names.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.utils import url_path_join

from dsml.scheduler.exceptions import BadRequest, Forbidden, NotFound
from dsml.scopes import JOBS_ADMIN, has_scope
from dsml.service.handlers import APIHandler


class BaseHandler(APIHandler):
    """Shared plumbing: app objects, JSON bodies, JSON errors, the caller and their rights."""

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
