"""Jobs: create, list, read, change, delete; their versions, runs and latest output; inspect.

A job snapshots its notebook (each change of notebook is a new version, kept for rollback),
with typed parameters, an environment and its version, and an optional cron schedule.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from jupyterhub.utils import url_path_join

from dsml.scheduler import cron, params
from dsml.scheduler.apihandlers.base import BaseHandler, _int, object_id
from dsml.scheduler.exceptions import BadRequest, Conflict, NotFound, TooLarge
from dsml.scheduler.models import CATCH_UP, OVERLAP, utcnow
from dsml.scheduler.store import JOB_FIELDS

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Control characters: never part of a one-line name."""

NOTEBOOK_NAME = re.compile(r"[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]*\.ipynb")
"""A notebook's file name: no folder, no hidden file, no control characters."""

MAX_NOTEBOOK_NAME = 200
"""Longest notebook_name, in bytes (a file name is at most 255, "output-" goes in front)."""


def check_job_fields(
    data: dict[str, Any], environments: list[str], partial: bool, app: Any = None
) -> dict[str, Any]:
    """Validate the settable job fields of a create (all) or update (partial) request.

    With the app, its limits apply (retries, deadline, e-mail recipients); the webhook's
    address is checked by the caller (it resolves a host name).
    """
    allowed = set(JOB_FIELDS) | {"notebook", "notebook_name", "input_files"}
    unknown = set(data) - allowed
    if unknown:
        raise BadRequest(
            f"unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}"
        )
    out: dict[str, Any] = {}
    if "name" in data or not partial:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("name must be a non-empty string of at most 255 characters")
        if CONTROL.search(name):
            # NUL is refused by PostgreSQL, line breaks forge log lines: a name is one line
            raise BadRequest(
                "name must be one line of text without control characters "
                f"(found {CONTROL.search(name).group()!r})"
            )
        out["name"] = name.strip()
    if "environment" in data or not partial:
        env = data.get("environment")
        if env not in environments:
            raise BadRequest(
                f"environment {env!r} is not a curated environment; "
                f"use one of {', '.join(environments)}"
            )
        out["environment"] = env
    if "environment_version" in data:
        version = data["environment_version"]
        if not isinstance(version, str) or not re.fullmatch(r"current|[0-9a-f]{12}", version):
            raise BadRequest(
                "environment_version must be 'current' or a 12-digit version "
                f"(see GET /api/environments), got {version!r}"
            )
        out["environment_version"] = version
    if "schedule" in data:
        schedule = data["schedule"] or None
        if schedule is not None and (not isinstance(schedule, str) or len(schedule) > 255):
            raise BadRequest(
                f"schedule must be a 5-field cron expression or null, got {schedule!r}"
            )
        out["schedule"] = schedule
    if "timezone" in data:
        timezone = data["timezone"] or "UTC"
        if not isinstance(timezone, str) or len(timezone) > 64:
            raise BadRequest(f"timezone must be an IANA timezone name, got {timezone!r}")
        out["timezone"] = timezone
    if out.get("schedule"):
        cron.check(out["schedule"], out.get("timezone", "UTC"))
    elif "timezone" in out:
        cron.check("* * * * *", out["timezone"])
    if "catch_up" in data:
        if data["catch_up"] not in CATCH_UP:
            raise BadRequest(
                f"catch_up must be one of {', '.join(CATCH_UP)}, got {data['catch_up']!r}"
            )
        out["catch_up"] = data["catch_up"]
    if "overlap" in data:
        if data["overlap"] not in OVERLAP:
            raise BadRequest(
                f"overlap must be one of {', '.join(OVERLAP)}, got {data['overlap']!r}"
            )
        out["overlap"] = data["overlap"]
    limits = {
        "retries": (getattr(app, "max_retries", 10**6), "max_retries"),
        "deadline_seconds": (getattr(app, "max_deadline_seconds", 10**9), "max_deadline_seconds"),
        "catch_up_cap": (1000, ""),
        "max_concurrent_runs": (1000, ""),
        "retry_backoff_seconds": (7 * 24 * 3600, ""),
        "cell_timeout_seconds": (10**9, ""),
        "keep_runs": (10**9, ""),
        "keep_days": (36500, ""),
    }
    for key, minimum in (
        ("catch_up_cap", 0),
        ("max_concurrent_runs", 1),
        ("retries", 0),
        ("retry_backoff_seconds", 0),
    ):
        if key in data:
            top, name = limits[key]
            out[key] = _int(data[key], key, minimum, False, top, name)
    for key in ("cell_timeout_seconds", "deadline_seconds", "keep_runs", "keep_days"):
        if key in data:
            top, name = limits[key]
            out[key] = _int(data[key], key, 1, True, top, name)
    for key in ("retry_on_user_error", "paused"):
        if key in data:
            if not isinstance(data[key], bool):
                raise BadRequest(f"{key} must be true or false, got {data[key]!r}")
            out[key] = data[key]
    if "notify" in data:
        notify = data["notify"] or {}
        if not isinstance(notify, dict) or set(notify) - {"on", "emails", "webhook"}:
            raise BadRequest("notify must be an object with keys on, emails, webhook")
        if notify.get("on", "failure") not in ("failure", "always", "never"):
            raise BadRequest("notify.on must be one of failure, always, never")
        if not isinstance(notify.get("emails", []), list):
            raise BadRequest("notify.emails must be a list of addresses")
        if app is not None:
            app.notifier.check_emails(notify.get("emails", []))
        hook = notify.get("webhook")
        if hook is not None and not (
            isinstance(hook, str) and hook.startswith(("http://", "https://"))
        ):
            raise BadRequest("notify.webhook must be an http(s) URL")
        out["notify"] = notify
    if "shared_with" in data:
        groups = data["shared_with"] or []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise BadRequest("shared_with must be a list of group names")
        out["shared_with"] = groups
    if "parameters" in data and not isinstance(data["parameters"], dict | None):
        raise BadRequest("parameters must be an object of name: value")
    return out


async def check_webhook(app: Any, fields: dict[str, Any]) -> None:
    """Refuse a webhook to a loopback, link-local or private address (unless allow-listed)."""
    hook = (fields.get("notify") or {}).get("webhook")
    if hook:
        await app.notifier.check_webhook(hook)


def _notebook_from(data: dict[str, Any], limit: int) -> tuple[str, str, str, Any]:
    """(name, JSON text, sha256, parsed) of the notebook in a request."""
    nb = data.get("notebook")
    if nb is None:
        raise BadRequest("notebook is required: the .ipynb content as a JSON object or string")
    text = nb if isinstance(nb, str) else json.dumps(nb)
    if len(text.encode()) > limit:
        raise TooLarge(f"notebook is {len(text.encode()):,} bytes; the limit is {limit:,}")
    parsed = params.parse_notebook(text)
    name = data.get("notebook_name") or "notebook.ipynb"
    # the worker writes the notebook under this name (and "output-" + it) in the run's folder
    if (
        not isinstance(name, str)
        or not NOTEBOOK_NAME.fullmatch(name)
        or len(name.encode()) > MAX_NOTEBOOK_NAME
    ):
        raise BadRequest(
            f"notebook_name must be a file name of at most {MAX_NOTEBOOK_NAME} bytes ending in "
            ".ipynb, without '/', '\\', control characters or a leading '.'; "
            f"got {str(name)[:80]!r}"
        )
    return name, text, hashlib.sha256(text.encode()).hexdigest(), parsed


class JobsHandler(BaseHandler):
    """GET: the caller's jobs (and those shared with them); POST: create a job."""

    async def get(self) -> None:
        """List jobs, newest first, with cursor pagination."""
        user = self.user()
        after, limit = self.page()
        owner = None if self.lists_all(user) else user["name"]
        groups = list(user.get("groups") or [])
        jobs = await self.store.run(self.store.list_jobs, owner, groups, after, limit)
        total = await self.store.run(self.store.count_jobs, owner, groups)
        self.write_listing([self.shown(user, j) for j in jobs], limit, "jobs", total)

    def body_limit(self) -> int:
        """A job carries its notebook and its input files."""
        return int(self.app.job_body_bytes())

    async def post(self) -> None:
        """Create a job from a notebook snapshot; Idempotency-Key makes retries safe."""
        user = self.user()
        await self.check_may_run(user, None)
        data = self.body()
        fields = check_job_fields(data, self.app.environment_names(), False, self.app)
        files = self.app.inputs.decode(data["input_files"]) if "input_files" in data else []
        await check_webhook(self.app, fields)
        name, text, sha, nb = await self.app.run_blocking(
            _notebook_from, data, self.app.max_notebook_bytes
        )
        schema = await self.app.run_blocking(params.infer_schema, nb)
        fields["parameters"] = params.validate(schema, data.get("parameters"))
        fields["environment_version"] = self.app.pin_version(
            fields["environment"], fields.get("environment_version", "current")
        )
        fields.setdefault("timezone", "UTC")
        next_run = (
            cron.next_tick(fields["schedule"], fields["timezone"], utcnow())
            if fields.get("schedule")
            else None
        )
        staging = await self.app.run_blocking(self.app.inputs.stage, files) if files else None
        try:
            job, created = await self.store.run(
                self.store.create_job,
                user["name"],
                fields,
                name,
                text,
                sha,
                schema,
                next_run,
                self.idempotency_key(),
                self.app.max_jobs_per_user,
            )
        except BaseException:
            self.app.inputs.discard(staging)
            raise
        if created and staging is not None:
            await self.app.run_blocking(self.app.inputs.commit, staging, job["id"], 1)
        else:
            self.app.inputs.discard(staging)
        job["parameter_schema"] = schema
        job["notebook_sha256"] = sha
        job["notebook_name"] = name
        job["input_files"] = self.app.inputs.manifest(job["id"], job["version"])
        self.write_json(job, 201 if created else 200)


class JobHandler(BaseHandler):
    """GET, PATCH (a new notebook makes a new version) and DELETE one job."""

    def body_limit(self) -> int:
        """A job carries its notebook and its input files."""
        return int(self.app.job_body_bytes())

    async def get(self, job_id: str) -> None:
        """One job with its current version's parameter schema, input files and links."""
        user = self.user()
        job = await self.job_for(object_id(job_id, "job"))
        version = await self.store.run(self.store.get_version, job["id"], job["version"])
        latest = await self.store.run(self.store.latest_run, job["id"], "succeeded")
        job.update(
            parameter_schema=version["parameter_schema"],
            notebook_name=version["notebook_name"],
            notebook_sha256=version["sha256"],
            input_files=self.app.inputs.manifest(job["id"], job["version"]),
            latest_success=self.run_links(latest) if latest else None,
        )
        self.write_json(self.shown(user, job))

    async def patch(self, job_id: str) -> None:
        """Change settings; a `notebook` or new `input_files` make a new version (the old ones
        stay for rollback)."""
        user = self.user()
        job = await self.job_for(object_id(job_id, "job"), write=True)
        await self.check_may_run(user, job)
        data = self.body()
        fields = check_job_fields(data, self.app.environment_names(), True, self.app)
        await check_webhook(self.app, fields)
        if "environment_version" in fields or "environment" in fields:
            fields["environment_version"] = self.app.pin_version(
                fields.get("environment", job["environment"]),
                fields.get("environment_version", "current"),
            )
        if fields.get("paused") is False:
            fields["paused_reason"] = None
        notebook = None
        version = await self.store.run(self.store.get_version, job["id"], job["version"])
        schema = version["parameter_schema"]
        if "notebook" in data:
            name, text, sha, nb = await self.app.run_blocking(
                _notebook_from,
                {"notebook_name": version["notebook_name"], **data},
                self.app.max_notebook_bytes,
            )
            schema = await self.app.run_blocking(params.infer_schema, nb)
            if sha != version["sha256"]:
                notebook = (name, text, sha, schema)
        staging = None
        if "input_files" in data:
            files = self.app.inputs.decode(data["input_files"])
            old = self.app.inputs.manifest(job["id"], job["version"])
            if self.app.inputs.manifest_of(files) != old:
                staging = await self.app.run_blocking(self.app.inputs.stage, files)
                if notebook is None:
                    # new files alone make a new version of the same notebook
                    notebook = (
                        version["notebook_name"],
                        version["notebook"],
                        version["sha256"],
                        schema,
                    )
        if "parameters" in data or notebook is not None:
            fields["parameters"] = params.validate(
                schema, data.get("parameters", job["parameters"])
            )
        schedule = fields.get("schedule", job["schedule"])
        timezone = fields.get("timezone", job["timezone"])
        next_run: Any = False
        if "schedule" in fields or "timezone" in fields or fields.get("paused") is False:
            if schedule:
                cron.check(schedule, timezone)
            next_run = cron.next_tick(schedule, timezone, utcnow()) if schedule else None
        try:
            updated = await self.store.run(
                self.store.update_job, job["id"], fields, notebook, next_run
            )
        except BaseException:
            self.app.inputs.discard(staging)
            raise
        if staging is not None:
            await self.app.run_blocking(
                self.app.inputs.commit, staging, job["id"], updated["version"]
            )
        elif notebook is not None:
            await self.app.run_blocking(
                self.app.inputs.carry, job["id"], job["version"], updated["version"]
            )
        if fields.get("paused") is True:
            await self.manager.cancel_queued(
                job["id"], "the job was paused before this run started"
            )
        updated["input_files"] = self.app.inputs.manifest(updated["id"], updated["version"])
        self.write_json(updated)

    async def delete(self, job_id: str) -> None:
        """Delete the job, its versions, runs, outputs, input files and idempotency keys
        (409 while a run is in progress)."""
        job = await self.job_for(object_id(job_id, "job"), write=True)
        run_ids = await self.store.run(self.store.delete_job, job["id"])
        await self.app.outputs.remove(run_ids)
        await self.app.run_blocking(self.app.inputs.remove_job, job["id"])
        self.set_status(204)
        self.finish()


class VersionsHandler(BaseHandler):
    """GET: a job's notebook versions; POST {"version": n}: roll back (or forward) to one."""

    async def get(self, job_id: str) -> None:
        """Every version, newest first."""
        job = await self.job_for(object_id(job_id, "job"))
        versions = await self.store.run(self.store.list_versions, job["id"])
        self.write_json({"current": job["version"], "versions": versions})

    async def post(self, job_id: str) -> None:
        """Point the job at another stored version."""
        user = self.user()
        job = await self.job_for(object_id(job_id, "job"), write=True)
        await self.check_may_run(user, job)
        version = _int(self.body().get("version"), "version", 1, allow_none=False)
        self.write_json(await self.store.run(self.store.set_job_version, job["id"], version))


class JobRunsHandler(BaseHandler):
    """GET: a job's runs; POST {"parameters": {...}}: run it now."""

    async def get(self, job_id: str) -> None:
        """Runs of the job, newest first, with cursor pagination."""
        job = await self.job_for(object_id(job_id, "job"))
        after, limit = self.page()
        runs = await self.store.run(
            self.store.list_runs, job_id=job["id"], after=after, limit=limit
        )
        total = await self.store.run(self.store.count_filtered_runs, job_id=job["id"])
        self.write_listing([self.run_links(r) for r in runs], limit, "runs", total)

    async def post(self, job_id: str) -> None:
        """Queue a run with the job's parameters overridden by the request's."""
        user = self.user()
        job = await self.job_for(object_id(job_id, "job"), write=True)
        await self.check_may_run(user, job)
        data = self.body()
        version = await self.store.run(self.store.get_version, job["id"], job["version"])
        overrides = params.validate(version["parameter_schema"], data.get("parameters"))
        limit = self.manager.max_output_bytes_per_user
        if limit:
            kept = await self.store.run(self.store.output_bytes_of, job["owner"])
            if kept >= limit:
                raise Conflict(
                    f"{job['owner']}'s runs keep {kept:,} bytes of outputs; the limit "
                    f"(max_output_bytes_per_user) is {limit:,}: delete old runs first"
                )
        run = await self.store.run(
            self.store.create_run,
            job,
            trigger="manual",
            parameters={**job["parameters"], **overrides},
            scheduled_for=None,
            idempotency_key=self.idempotency_key(),
            owner=user["name"],
            max_queued=self.manager.max_queued_runs_per_user,
        )
        self.manager.wake()
        self.write_json(self.run_links(run), 201)


class LatestHandler(BaseHandler):
    """The latest successful run of a job, or its output: a stable link for reports."""

    async def get(self, job_id: str, what: str | None = None) -> None:
        """JSON of the run, or redirect to its output.html / output.ipynb."""
        job = await self.job_for(object_id(job_id, "job"))
        run = await self.store.run(self.store.latest_run, job["id"], "succeeded")
        if run is None:
            raise NotFound(f"job {job_id} has no successful run yet")
        if what:
            self.redirect(
                url_path_join(self.app.public_prefix, "api", "runs", str(run["id"]), what)
            )
            return
        self.write_json(self.run_links(run))


class InspectHandler(BaseHandler):
    """POST a notebook: its parameter schema (what `dsml schedule` reads -p values with)."""

    async def post(self) -> None:
        """The typed parameters Papermill finds in the notebook's `parameters` cell."""
        self.user()
        _name, _text, sha, nb = await self.app.run_blocking(
            _notebook_from, self.body(), self.app.max_notebook_bytes
        )
        schema = await self.app.run_blocking(params.infer_schema, nb)
        self.write_json({"parameters": schema, "sha256": sha})


default_handlers = [
    (r"/api/jobs", JobsHandler),
    (r"/api/jobs/(\d+)", JobHandler),
    (r"/api/jobs/(\d+)/versions", VersionsHandler),
    (r"/api/jobs/(\d+)/runs", JobRunsHandler),
    (r"/api/jobs/(\d+)/latest", LatestHandler),
    (r"/api/jobs/(\d+)/latest/(output\.html|output\.ipynb)", LatestHandler),
    (r"/api/inspect", InspectHandler),
]
