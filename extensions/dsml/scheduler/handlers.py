"""HTTP handlers of the scheduler: the user API, the worker API, the service page, metrics.

User requests are authenticated by the hub (a hub API token, or the OAuth cookie for pages);
worker requests by the per-run token the worker was started with. Errors are JSON
`{"status", "message"}` with the status the exception names.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.log import app_log

from dsml import notebooks
from dsml.kernels import kernel_name
from dsml.scheduler import cron, params
from dsml.scheduler.exceptions import BadRequest, Forbidden, NotFound, SchedulerError, TooLarge
from dsml.scheduler.models import CATCH_UP, OVERLAP, utcnow
from dsml.scheduler.store import JOB_FIELDS, hash_token
from dsml.scopes import JOBS_ADMIN, JOBS_RUN, has_scope
from dsml.utils import write_atomic

PAGE_LIMIT = 50
MAX_PAGE_LIMIT = 500


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Shared plumbing: app objects, JSON bodies, JSON errors, the caller and their rights."""

    @property
    def app(self) -> Any:
        """The SchedulerApp."""
        return self.settings["scheduler_app"]

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

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated API calls carry no XSRF cookie; cookie sessions only read."""

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
        raw = self.request.body or b"{}"
        if len(raw) > self.app.max_request_bytes:
            raise TooLarge(
                f"request body is {len(raw):,} bytes; the limit is {self.app.max_request_bytes:,}"
            )
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest(f"request body must be a JSON object, found {type(data).__name__}")
        return data

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

    def write_json(self, data: Any, status: int = 200) -> None:
        """Answer with JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

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


def check_job_fields(
    data: dict[str, Any], environments: list[str], partial: bool
) -> dict[str, Any]:
    """Validate the settable job fields of a create (all) or update (partial) request."""
    allowed = set(JOB_FIELDS) | {"notebook", "notebook_name"}
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
        out["schedule"] = data["schedule"] or None
    if "timezone" in data:
        out["timezone"] = data["timezone"] or "UTC"
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
    for key, minimum in (
        ("catch_up_cap", 0),
        ("max_concurrent_runs", 1),
        ("retries", 0),
        ("retry_backoff_seconds", 0),
    ):
        if key in data:
            out[key] = _int(data[key], key, minimum, allow_none=False)
    for key in ("cell_timeout_seconds", "deadline_seconds", "keep_runs", "keep_days"):
        if key in data:
            out[key] = _int(data[key], key, 1)
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
    return out


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
    if not isinstance(name, str) or "/" in name or not name.endswith(".ipynb"):
        raise BadRequest(f"notebook_name must be a file name ending in .ipynb, got {name!r}")
    return name, text, hashlib.sha256(text.encode()).hexdigest(), parsed


class JobsHandler(BaseHandler):
    """GET: the caller's jobs (and those shared with them); POST: create a job."""

    async def get(self) -> None:
        """List jobs, newest first, with cursor pagination."""
        user = self.user()
        after, limit = self.page()
        owner = (
            None if (self.is_admin(user) and self.get_argument("all", "") == "1") else user["name"]
        )
        jobs = await self.store.run(
            self.store.list_jobs, owner, list(user.get("groups") or []), after, limit
        )
        self.write_page(jobs, limit, "jobs")

    async def post(self) -> None:
        """Create a job from a notebook snapshot; Idempotency-Key makes retries safe."""
        user = self.user()
        if not self.is_admin(user) and not has_scope(user, JOBS_RUN):
            raise Forbidden(
                f"scheduling notebooks needs the scope {JOBS_RUN} (members of analysts, "
                "data-scientists, newcomers and platform-admins have it); this token does not"
            )
        data = self.body()
        fields = check_job_fields(data, self.app.environment_names(), partial=False)
        name, text, sha, nb = _notebook_from(data, self.app.max_notebook_bytes)
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
        job, created = await self.store.run(
            self.store.create_job,
            user["name"],
            fields,
            name,
            text,
            sha,
            schema,
            next_run,
            self.request.headers.get("Idempotency-Key"),
        )
        job["parameter_schema"] = schema
        job["notebook_sha256"] = sha
        self.write_json(job, 201 if created else 200)


class JobHandler(BaseHandler):
    """GET, PATCH (a new notebook makes a new version) and DELETE one job."""

    async def get(self, job_id: str) -> None:
        """One job with its current version's parameter schema and links."""
        job = await self.job_for(int(job_id))
        version = await self.store.run(self.store.get_version, job["id"], job["version"])
        latest = await self.store.run(self.store.latest_run, job["id"], "succeeded")
        job.update(
            parameter_schema=version["parameter_schema"],
            notebook_name=version["notebook_name"],
            notebook_sha256=version["sha256"],
            latest_success=self.run_links(latest) if latest else None,
        )
        self.write_json(job)

    async def patch(self, job_id: str) -> None:
        """Change settings; a `notebook` makes a new version (the old ones stay for rollback)."""
        job = await self.job_for(int(job_id), write=True)
        data = self.body()
        fields = check_job_fields(data, self.app.environment_names(), partial=True)
        notebook = None
        version = await self.store.run(self.store.get_version, job["id"], job["version"])
        schema = version["parameter_schema"]
        if "notebook" in data:
            name, text, sha, nb = _notebook_from(
                {"notebook_name": version["notebook_name"], **data}, self.app.max_notebook_bytes
            )
            schema = await self.app.run_blocking(params.infer_schema, nb)
            if sha != version["sha256"]:
                notebook = (name, text, sha, schema)
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
        updated = await self.store.run(self.store.update_job, job["id"], fields, notebook, next_run)
        if fields.get("paused") is True:
            await self.manager.cancel_queued(
                job["id"], "the job was paused before this run started"
            )
        self.write_json(updated)

    async def delete(self, job_id: str) -> None:
        """Delete the job, its versions, runs and outputs (409 while a run is in progress)."""
        job = await self.job_for(int(job_id), write=True)
        await self.store.run(self.store.delete_job, job["id"])
        self.set_status(204)
        self.finish()


class VersionsHandler(BaseHandler):
    """GET: a job's notebook versions; POST {"version": n}: roll back (or forward) to one."""

    async def get(self, job_id: str) -> None:
        """Every version, newest first."""
        job = await self.job_for(int(job_id))
        versions = await self.store.run(self.store.list_versions, job["id"])
        self.write_json({"current": job["version"], "versions": versions})

    async def post(self, job_id: str) -> None:
        """Point the job at another stored version."""
        job = await self.job_for(int(job_id), write=True)
        version = _int(self.body().get("version"), "version", 1, allow_none=False)
        self.write_json(await self.store.run(self.store.set_job_version, job["id"], version))


class JobRunsHandler(BaseHandler):
    """GET: a job's runs; POST {"parameters": {...}}: run it now."""

    async def get(self, job_id: str) -> None:
        """Runs of the job, newest first, with cursor pagination."""
        job = await self.job_for(int(job_id))
        after, limit = self.page()
        runs = await self.store.run(
            self.store.list_runs, job_id=job["id"], after=after, limit=limit
        )
        self.write_page([self.run_links(r) for r in runs], limit, "runs")

    async def post(self, job_id: str) -> None:
        """Queue a run with the job's parameters overridden by the request's."""
        user = self.user()
        job = await self.job_for(int(job_id), write=True)
        data = self.body()
        version = await self.store.run(self.store.get_version, job["id"], job["version"])
        overrides = params.validate(version["parameter_schema"], data.get("parameters"))
        run = await self.store.run(
            self.store.create_run,
            job,
            trigger="manual",
            parameters={**job["parameters"], **overrides},
            scheduled_for=None,
            idempotency_key=self.request.headers.get("Idempotency-Key"),
            owner=user["name"],
        )
        self.manager.wake()
        self.write_json(self.run_links(run), 201)


class LatestHandler(BaseHandler):
    """The latest successful run of a job, or its output: a stable link for reports."""

    async def get(self, job_id: str, what: str | None = None) -> None:
        """JSON of the run, or redirect to its output.html / output.ipynb."""
        job = await self.job_for(int(job_id))
        run = await self.store.run(self.store.latest_run, job["id"], "succeeded")
        if run is None:
            raise NotFound(f"job {job_id} has no successful run yet")
        if what:
            self.redirect(
                url_path_join(self.app.public_prefix, "api", "runs", str(run["id"]), what)
            )
            return
        self.write_json(self.run_links(run))


class RunsHandler(BaseHandler):
    """GET: the caller's runs across jobs."""

    async def get(self) -> None:
        """Runs newest first, optionally filtered by ?state=a,b."""
        user = self.user()
        after, limit = self.page()
        states = tuple(s for s in self.get_argument("state", "").split(",") if s) or None
        owner = (
            None if (self.is_admin(user) and self.get_argument("all", "") == "1") else user["name"]
        )
        runs = await self.store.run(
            self.store.list_runs, owner=owner, states=states, after=after, limit=limit
        )
        self.write_page([self.run_links(r) for r in runs], limit, "runs")


class RunHandler(BaseHandler):
    """GET one run, with its state history."""

    async def get(self, run_id: str) -> None:
        """The run record, its events and links."""
        run, _job = await self.run_for(int(run_id))
        out = self.run_links(run)
        out["events"] = await self.store.run(self.store.events, run["id"])
        self.write_json(out)


class CancelHandler(BaseHandler):
    """POST: cancel an active run (409 when it has ended)."""

    async def post(self, run_id: str) -> None:
        """Stop the worker and record the run as cancelled."""
        run, _job = await self.run_for(int(run_id), write=True)
        self.write_json(self.run_links(await self.manager.cancel(run["id"])))


class OutputHandler(BaseHandler):
    """GET a run's executed notebook or its HTML render."""

    async def get(self, run_id: str, what: str) -> None:
        """Serve output.ipynb or output.html (404 when the run kept none)."""
        run, _job = await self.run_for(int(run_id))
        path = self.app.outputs / str(run["id"]) / what
        notebook = path.with_name("output.ipynb")
        if what == "output.html" and not path.exists() and notebook.exists():
            # the worker's render has not arrived (or failed): render it here, once
            await self.app.run_blocking(render_to, notebook, path)
        if not path.exists():
            raise NotFound(
                f"run {run_id} has no {what} ({run['state']}: {run['message'] or 'no output'})"
            )
        if what.endswith(".html"):
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header(
                "Content-Security-Policy",
                "sandbox allow-scripts; default-src 'self' 'unsafe-inline' data:",
            )
        else:
            self.set_header("Content-Type", "application/x-ipynb+json")
            self.set_header("Content-Disposition", f'attachment; filename="run-{run_id}.ipynb"')
        self.finish(path.read_bytes())


class EnvironmentsHandler(BaseHandler):
    """GET: the curated environments jobs can run in."""

    async def get(self) -> None:
        """Name, display name, description and version of each."""
        self.user()
        self.write_json({"environments": self.app.environment_records()})


class InspectHandler(BaseHandler):
    """POST a notebook: its parameter schema (what `dsml schedule` reads -p values with)."""

    async def post(self) -> None:
        """The typed parameters Papermill finds in the notebook's `parameters` cell."""
        self.user()
        _name, _text, sha, nb = _notebook_from(self.body(), self.app.max_notebook_bytes)
        schema = await self.app.run_blocking(params.infer_schema, nb)
        self.write_json({"parameters": schema, "sha256": sha})


class HealthHandler(web.RequestHandler):
    """GET: 200 while the database answers and the loop runs."""

    async def get(self) -> None:
        """{"status": "ok", ...} or 503."""
        app = self.settings["scheduler_app"]
        try:
            queued = await app.store.run(app.store.count_runs, ("queued",))
            ok = app.manager._task is not None and not app.manager._task.done()
        except Exception as e:  # noqa: BLE001
            self.set_status(503)
            self.finish({"status": "failing", "message": str(e)})
            return
        self.set_status(200 if ok else 503)
        self.finish({"status": "ok" if ok else "failing", "queued": queued})


class MetricsHandler(web.RequestHandler):
    """GET: Prometheus metrics (runs by final state, duration histogram, queue depth)."""

    async def get(self) -> None:
        """The text exposition format."""
        app = self.settings["scheduler_app"]
        body, content_type = await app.metrics.render(app.store)
        self.set_header("Content-Type", content_type)
        self.finish(body)


class WorkerHandler(web.RequestHandler):
    """Base of the worker API: authenticated by the run's own token, nothing else."""

    def check_xsrf_cookie(self) -> None:
        """Workers send a run token header, no cookies."""

    @property
    def app(self) -> Any:
        """The SchedulerApp."""
        return self.settings["scheduler_app"]

    async def authorize(self, run_id: int) -> None:
        """403 unless X-Dsml-Run-Token matches the token the run was started with."""
        token = self.request.headers.get("X-Dsml-Run-Token", "")
        stored = await self.app.store.run(self.app.store.run_token_hash, run_id)
        if not token or not stored or not hmac.compare_digest(stored, hash_token(token)):
            raise Forbidden(f"not the worker of run {run_id}")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """JSON errors, as the user API."""
        BaseHandler.write_error(self, status_code, **kwargs)  # type: ignore[arg-type]

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, SchedulerError):
            self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    def log_exception(self, typ, value, tb):  # type: ignore[no-untyped-def]
        """Expected errors in one line."""
        if isinstance(value, SchedulerError):
            app_log.info("%s %s: %s", self.request.method, self.request.uri, value)
            return
        super().log_exception(typ, value, tb)

    def body(self) -> dict[str, Any]:
        """The JSON body (413 over the output limit)."""
        if len(self.request.body) > self.app.max_output_bytes * 3:
            raise TooLarge("worker report over the output size limit")
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise BadRequest("request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("request body must be a JSON object")
        return data


class WorkerInputHandler(WorkerHandler):
    """GET: the run's notebook, parameters, kernel and limits."""

    async def get(self, run_id: str) -> None:
        """What the worker executes."""
        rid = int(run_id)
        await self.authorize(rid)
        store = self.app.store
        run = await store.run(store.get_run, rid)
        job = await store.run(store.get_job, run["job_id"])
        version = await store.run(store.get_version, run["job_id"], run["job_version"])
        scheduled = run["scheduled_for"] or run["created_at"]
        self.finish(
            {
                "run_id": rid,
                "notebook_name": version["notebook_name"],
                "notebook": version["notebook"],
                "parameters": run["parameters"],
                "scheduled_for": scheduled,
                "kernel_name": kernel_name(run["environment"], run["environment_version"]),
                "cell_timeout_seconds": job["cell_timeout_seconds"],
                "max_output_bytes": self.app.max_output_bytes,
            }
        )


class WorkerProgressHandler(WorkerHandler):
    """POST: cell k of n and the log tail (409 tells the worker its run has ended)."""

    async def post(self, run_id: str) -> None:
        """Record progress."""
        rid = int(run_id)
        await self.authorize(rid)
        run = await self.app.manager.report_progress(rid, self.body())
        self.finish({"state": run["state"]})


class WorkerHtmlHandler(WorkerHandler):
    """POST: the HTML render of the executed notebook (sent right after the result)."""

    async def post(self, run_id: str) -> None:
        """Store output.html of the run."""
        rid = int(run_id)
        await self.authorize(rid)
        if len(self.request.body) > self.app.max_output_bytes:
            raise TooLarge(f"html is over the {self.app.max_output_bytes:,} byte output limit")
        folder = self.app.outputs / str(rid)
        if not (folder / "output.ipynb").exists():
            raise NotFound(f"run {rid} kept no notebook to go with this HTML")
        write_atomic(folder / "output.html", self.request.body)
        self.finish({"stored": True})


class WorkerResultHandler(WorkerHandler):
    """POST: the outcome, the executed notebook and its HTML."""

    async def post(self, run_id: str) -> None:
        """End the run."""
        rid = int(run_id)
        await self.authorize(rid)
        body = self.body()
        for key in ("notebook", "html"):
            if (
                isinstance(body.get(key), str)
                and len(body[key].encode()) > self.app.max_output_bytes
            ):
                raise TooLarge(f"{key} is over the {self.app.max_output_bytes:,} byte output limit")
        run = await self.app.manager.report_result(rid, body)
        self.finish({"state": run["state"]})


def render_to(notebook: Path, html: Path) -> None:
    """Render an executed notebook to standalone HTML next to it."""
    write_atomic(html, notebooks.render_html(notebook))


def _fmt_time(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value.rstrip("Z")).strftime("%Y-%m-%d %H:%M:%S")


class PageHandler(BaseHandler):
    """The service page: my jobs and runs, with status, duration and links to outputs."""

    @web.authenticated
    async def get(self, run_id: str | None = None) -> None:
        """Render the list (or one run) with live status."""
        user = self.user()
        jobs = await self.store.run(
            self.store.list_jobs, user["name"], list(user.get("groups") or []), None, 200
        )
        runs = await self.store.run(self.store.list_runs, owner=user["name"], after=None, limit=100)
        self.render(
            "scheduler.html",
            user=user,
            jobs=jobs,
            runs=[self.run_links(r) for r in runs],
            prefix=self.app.public_prefix,
            fmt=_fmt_time,
            names={j["id"]: j["name"] for j in jobs},
            focus=int(run_id) if run_id else None,
        )


def default_handlers(prefix: str) -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    """The scheduler's routes under the service prefix."""
    p = prefix.rstrip("/")
    return [
        (rf"{p}/?", PageHandler),
        (rf"{p}/runs/(\d+)/?", PageHandler),
        (rf"{p}/oauth_callback", HubOAuthCallbackHandler),
        (rf"{p}/api/health", HealthHandler),
        (rf"{p}/metrics", MetricsHandler),
        (rf"{p}/api/environments", EnvironmentsHandler),
        (rf"{p}/api/inspect", InspectHandler),
        (rf"{p}/api/jobs", JobsHandler),
        (rf"{p}/api/jobs/(\d+)", JobHandler),
        (rf"{p}/api/jobs/(\d+)/versions", VersionsHandler),
        (rf"{p}/api/jobs/(\d+)/runs", JobRunsHandler),
        (rf"{p}/api/jobs/(\d+)/latest", LatestHandler),
        (rf"{p}/api/jobs/(\d+)/latest/(output\.html|output\.ipynb)", LatestHandler),
        (rf"{p}/api/runs", RunsHandler),
        (rf"{p}/api/runs/(\d+)", RunHandler),
        (rf"{p}/api/runs/(\d+)/cancel", CancelHandler),
        (rf"{p}/api/runs/(\d+)/(output\.html|output\.ipynb)", OutputHandler),
        (rf"{p}/api/worker/runs/(\d+)", WorkerInputHandler),
        (rf"{p}/api/worker/runs/(\d+)/progress", WorkerProgressHandler),
        (rf"{p}/api/worker/runs/(\d+)/result", WorkerResultHandler),
        (rf"{p}/api/worker/runs/(\d+)/html", WorkerHtmlHandler),
    ]
