"""jupyter-scheduler's backend classes, forwarding every call to the scheduler service.

`DsmlScheduler` is the `BaseScheduler` the Notebook Jobs UI talks to; it reads notebooks (and,
for "Run job with input folder", the notebook's folder) under the server's root, as the user
this server runs as, and calls the service with the server's own token.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterable
from typing import Any

from jupyter_scheduler.environments import EnvironmentManager
from jupyter_scheduler.exceptions import InputUriError, SchedulerError
from jupyter_scheduler.executors import ExecutionManager
from jupyter_scheduler.job_files_manager import JobFilesManager
from jupyter_scheduler.models import (
    CountJobsQuery,
    CreateJob,
    CreateJobDefinition,
    CreateJobFromDefinition,
    DescribeJob,
    DescribeJobDefinition,
    JobFeature,
    JobFile,
    ListJobDefinitionsQuery,
    ListJobDefinitionsResponse,
    ListJobsQuery,
    ListJobsResponse,
    RuntimeEnvironment,
    Status,
    UpdateJob,
    UpdateJobDefinition,
)
from jupyter_scheduler.scheduler import BaseScheduler
from traitlets import Float, Int, Type, Unicode, default

from dsml.client import SCHEDULER, AsyncClient, service_api
from dsml.kernels import notebook_environment
from dsml.lab.scheduler.inputs import MAX_BYTES, MAX_FILES, packaged_paths, read_input_folder
from dsml.lab.scheduler.mapping import (
    AD_HOC_SUFFIX,
    JOB_PREFIX,
    OUTPUT_FORMATS,
    PAGE_LIMIT,
    RUN_PREFIX,
    STATUS_OF_STATE,
    ServiceError,
    _ms,
    _number,
    _page,
    _sorted,
    _texts,
    environment_name,
    first_environment,
    states_of,
    typed_parameters,
)
from dsml.notebooks import NotebookError, read_notebook
from dsml.utils import write_atomic


class ServiceClient(AsyncClient):
    """Async client of the scheduler service, authenticated as the user who owns this server."""

    hint_403 = (
        " (this server's token may not use the scheduler service: the hub must "
        "grant it access:services!service=scheduler in Spawner.server_token_scopes)"
    )

    def __init__(self, hub_url: str, token: str, timeout: float = 60.0):
        self.hub_url = hub_url.rstrip("/")
        self.api_url = self.hub_url + service_api(SCHEDULER)
        super().__init__(self.api_url, token, timeout=timeout)
        self.token = token

    @classmethod
    def from_environment(cls) -> ServiceClient:
        """A client from what the hub puts in a user server's environment."""
        return cls(os.environ.get("DSML_HUB_URL", ""), os.environ.get("JUPYTERHUB_API_TOKEN", ""))

    def error(self, status: int, message: str, call: str = "") -> Exception:
        """Errors carry the service's status and message through jupyter-scheduler's handlers."""
        return ServiceError(status, message)

    def _client(self):  # type: ignore[no-untyped-def]
        if not self.hub_url:
            raise ServiceError(
                503,
                "DSML_HUB_URL is not set in this server's environment, so the scheduler service "
                "cannot be found: the hub sets it for the servers it starts; set it to the hub's "
                "public URL (or configure DsmlScheduler.hub_url)",
            )
        if not self.token:
            raise ServiceError(
                503,
                "JUPYTERHUB_API_TOKEN is not set in this server's environment: start the server "
                "from the hub (or configure DsmlScheduler.api_token)",
            )
        return super()._client()

    async def collect(
        self, path: str, key: str, cap: int, params: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Follow `next_cursor` through a listing, newest first, up to `cap` items."""
        items: list[dict[str, Any]] = []
        async for item in self.pages(path, key, params, limit=min(PAGE_LIMIT, cap)):
            items.append(item)
            if len(items) >= cap:
                break
        return items


class DsmlExecutionManager(ExecutionManager):
    """Declares what the service supports; it never executes anything in the user server."""

    def execute(self) -> None:
        """Never called: runs execute in the scheduler service's workers."""
        raise SchedulerError("notebooks run in the hub's scheduler service, not in this server")

    # jupyter-scheduler calls this as `cls.supported_features(cls)`, so not a classmethod
    def supported_features(cls) -> dict[JobFeature, bool]:
        """What the UI can use: job definitions, parameters, stopping runs, idempotency."""
        return {
            JobFeature.job_name: True,
            JobFeature.parameters: True,
            # the service always keeps both output.ipynb and output.html
            JobFeature.output_formats: False,
            JobFeature.job_definition: True,
            JobFeature.idempotency_token: True,
            JobFeature.tags: False,
            # the service notifies by email/webhook and retries, but jupyter-scheduler's
            # models carry no fields for them: set them with `dsml schedule`
            JobFeature.email_notifications: False,
            JobFeature.timeout_seconds: False,
            JobFeature.retry_on_timeout: False,
            JobFeature.max_retries: False,
            JobFeature.min_retry_interval_millis: False,
            JobFeature.output_filename_template: False,
            JobFeature.stop_job: True,
            # runs stay in the job's history; deleting the job definition deletes them
            JobFeature.delete_job: False,
        }

    def validate(cls, input_path: str) -> bool:
        """Any notebook: the job names its environment, whatever the notebook's kernel."""
        return True


class DsmlEnvironmentManager(EnvironmentManager):
    """The curated environments jobs run in, as the scheduler service lists them."""

    def __init__(self, client: ServiceClient | None = None):
        self.client = client or ServiceClient.from_environment()

    async def list_environments(  # type: ignore[override]
        self, first: str | None = None
    ) -> list[RuntimeEnvironment]:
        """One runtime environment per curated environment, `first` (if curated) first.

        The Create Job dialog pre-selects the first environment listed, and shows an item as
        selected only when its `label` equals the model's value, which it sets to the first
        `name`: so `label` is the service's name (see `mapping.environment_name`), and the
        display name people know from the kernel picker leads the description (the tooltip).
        """
        body = await self.client.call("GET", "environments")
        return [
            RuntimeEnvironment(
                name=env["name"],
                label=env["name"],
                description=" ".join(
                    part
                    for part in (
                        f"{env['display_name']}:" if env.get("display_name") else "",
                        (env.get("description") or "").strip(),
                        f"(version {env['version']})" if env.get("version") else "",
                    )
                    if part
                ),
                file_extensions=["ipynb"],
                output_formats=list(OUTPUT_FORMATS),
                metadata={
                    key: str(env[key])
                    for key in ("display_name", "version", "kernel")
                    if env.get(key) is not None
                },
                compute_types=None,
                default_compute_type=None,
                utc_only=False,
            )
            for env in first_environment(body["environments"], first)
        ]

    def manage_environments_command(self) -> str:
        """No JupyterLab command: environments are managed by the platform team."""
        return ""

    def output_formats_mapping(self) -> dict[str, str]:
        """The formats every run keeps."""
        return dict(OUTPUT_FORMATS)


class DsmlScheduler(BaseScheduler):
    """jupyter-scheduler's scheduler API, forwarded to the hub's scheduler service."""

    hub_url = Unicode(
        config=True,
        help="Public URL of the hub, where /services/scheduler/ is found; default $DSML_HUB_URL.",
    )
    api_token = Unicode(
        config=True, help="Hub API token the service is called with; default $JUPYTERHUB_API_TOKEN."
    )
    request_timeout = Float(
        60.0, config=True, help="Seconds to wait for one answer of the scheduler service."
    )
    list_limit = Int(
        5000,
        config=True,
        help="Most runs or jobs (newest first) one listing in the UI reads from the service.",
    )
    input_folder_max_files = Int(
        MAX_FILES,
        config=True,
        help="Most files a job's input folder may hold (files; keep at most the service's limit).",
    )
    input_folder_max_bytes = Int(
        MAX_BYTES,
        config=True,
        help="Most bytes a job's input files may hold together (bytes; at most the service's).",
    )
    execution_manager_class = Type(
        default_value=DsmlExecutionManager,
        klass=ExecutionManager,
        allow_none=True,
        config=True,
        help="Declares the supported features; nothing executes in the user server.",
    )

    task_runner = None
    """No local task runner: the service owns the cron loop (SchedulerApp checks this)."""

    @default("hub_url")
    def _default_hub_url(self) -> str:
        return os.environ.get("DSML_HUB_URL", "")

    @default("api_token")
    def _default_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    def __init__(
        self,
        root_dir: str,
        environments_manager: EnvironmentManager,
        db_url: str | None = None,
        config: Any = None,
        **kwargs: Any,
    ):
        # db_url is what SchedulerApp passes every scheduler; there is no local database
        super().__init__(
            root_dir=root_dir, environments_manager=environments_manager, config=config, **kwargs
        )
        self.client = ServiceClient(self.hub_url, self.api_token, self.request_timeout)

    # reading and describing

    def _input(self, input_uri: str) -> tuple[str, dict[str, Any]]:
        """(file name, parsed notebook) of a notebook under the server's root."""
        if not self.file_exists(input_uri):
            raise InputUriError(input_uri)
        # as Jupyter's contents manager: no way out by `..`; symlinks are the user's own choice
        root = os.path.abspath(self.root_dir)
        path = os.path.abspath(os.path.join(root, input_uri))
        if os.path.commonpath([root, path]) != root:
            raise ServiceError(
                400,
                f"input file {input_uri!r} is outside this server's root folder; pick one in it",
            )
        try:
            notebook = read_notebook(path, display=input_uri)
        except NotebookError as e:
            raise ServiceError(400, str(e)) from None
        return os.path.basename(input_uri), notebook

    async def _snapshot(self, model: Any) -> dict[str, Any]:
        """The job body's notebook, its name, environment, typed parameters and input files.

        `input_files` is there only with "Run job with input folder": a service that predates
        it refuses the field, and jobs without it must keep working there.
        """
        name, notebook = await self._read_input(model.input_uri)
        parameters = (
            typed_parameters(await self._schema(name, notebook), model.parameters)
            if model.parameters
            else {}
        )
        body = {
            "notebook": notebook,
            "notebook_name": name,
            "environment": await self._environment(model.runtime_environment_name, notebook),
            "parameters": parameters,
        }
        if model.package_input_folder:
            body["input_files"] = await self._read_input_folder(model.input_uri)
        return body

    async def _read_input_folder(self, input_uri: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(
            read_input_folder,
            self.root_dir,
            input_uri,
            self.input_folder_max_files,
            self.input_folder_max_bytes,
        )

    async def _environment(self, sent: str | None, notebook: dict[str, Any] | None) -> str:
        """The service's name of the environment the dialog sent (see mapping.environment_name).

        Nothing sent (the dialog's list never loaded): the notebook's own environment. Anything
        unknown goes on as it is, so that the service refuses it naming the curated ones.
        """
        if not sent:
            return (notebook_environment(notebook) if notebook else None) or ""
        environments = (await self.client.call("GET", "environments"))["environments"]
        return environment_name(sent, environments) or sent

    async def _read_input(self, input_uri: str) -> tuple[str, dict[str, Any]]:
        return await asyncio.to_thread(self._input, input_uri)

    async def _schema(self, name: str, notebook: dict[str, Any]) -> dict[str, Any]:
        body = {"notebook": notebook, "notebook_name": name}
        return (await self.client.call("POST", "inspect", body=body))["parameters"]

    async def _job(self, job_id: int) -> dict[str, Any]:
        return await self.client.call("GET", f"jobs/{job_id}")

    async def _jobs(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Full job records (with notebook_name), fetched a few at a time; gone ones left out."""
        limit = asyncio.Semaphore(8)

        async def one(job_id: int) -> dict[str, Any] | None:
            async with limit:
                try:
                    return await self._job(job_id)
                except ServiceError as e:
                    if e.status == 404:
                        return None
                    raise

        found = await asyncio.gather(*(one(i) for i in sorted(set(ids))))
        return {job["id"]: job for job in found if job is not None}

    def _definition(self, job: dict[str, Any]) -> DescribeJobDefinition:
        packaged = packaged_paths(job)
        return DescribeJobDefinition(
            job_definition_id=f"{JOB_PREFIX}{job['id']}",
            name=job["name"],
            input_filename=job.get("notebook_name") or "notebook.ipynb",
            runtime_environment_name=job["environment"],
            runtime_environment_parameters=None,
            output_formats=list(OUTPUT_FORMATS),
            parameters=_texts(job.get("parameters")),
            tags=[],
            schedule=job.get("schedule"),
            timezone=job.get("timezone"),
            create_time=_ms(job["created_at"]),
            update_time=_ms(job["updated_at"]),
            active=not job.get("paused", False),
            package_input_folder=bool(packaged),
            packaged_files=packaged,
        )

    def _describe(self, run: dict[str, Any], job: dict[str, Any]) -> DescribeJob:
        status = STATUS_OF_STATE.get(run["state"], Status.FAILED)
        message = run.get("message")
        error = run.get("error") or {}
        if error.get("name"):
            at = f" at cell {error['cell_index']}" if error.get("cell_index") is not None else ""
            message = f"{error['name']}: {error.get('value') or ''}{at}" + (
                f" ({message})" if message else ""
            )
        ended = run.get("finished_at")
        packaged = packaged_paths(job)
        return DescribeJob(
            job_id=f"{RUN_PREFIX}{run['id']}",
            name=job["name"],
            input_filename=job.get("notebook_name") or "notebook.ipynb",
            runtime_environment_name=run["environment"],
            runtime_environment_parameters=None,
            output_formats=list(OUTPUT_FORMATS),
            parameters=_texts(run.get("parameters")),
            tags=[],
            job_definition_id=f"{JOB_PREFIX}{job['id']}" if job.get("schedule") else None,
            url=self.client.hub_url + run["urls"]["page"],
            create_time=_ms(run["created_at"]),
            update_time=_ms(ended or run.get("started_at") or run["created_at"]),
            start_time=_ms(run.get("started_at")),
            end_time=_ms(ended),
            status=status,
            status_message=message,
            package_input_folder=bool(packaged),
            packaged_files=packaged,
        )

    # jobs (service runs)

    async def create_job(self, model: CreateJob) -> str:  # type: ignore[override]
        """Run a notebook now: upsert its unscheduled `<name> (ad hoc)` job, queue one run."""
        if model.job_definition_id:
            return await self.create_job_from_definition(
                model.job_definition_id, CreateJobFromDefinition(parameters=model.parameters)
            )
        body = {"name": model.name + AD_HOC_SUFFIX, **await self._snapshot(model)}
        job = await self._find_job(body["name"])
        if job is None:
            job = await self.client.call(
                "POST", "jobs", body=body, headers={"Idempotency-Key": uuid.uuid4().hex}
            )
        elif job.get("schedule"):
            raise ServiceError(
                409,
                f"{body['name']!r} is the name of a scheduled job definition; "
                "give this run another job name",
            )
        else:
            if "input_files" not in body and packaged_paths(job):
                # this run goes without the folder an earlier "Run now" of the name took along
                body["input_files"] = []
            job = await self.client.call("PATCH", f"jobs/{job['id']}", body=body)
        run = await self.client.call(
            "POST",
            f"jobs/{job['id']}/runs",
            body={"parameters": body["parameters"]},
            headers={"Idempotency-Key": model.idempotency_token or uuid.uuid4().hex},
        )
        return f"{RUN_PREFIX}{run['id']}"

    async def _find_job(self, name: str) -> dict[str, Any] | None:
        """The caller's own job with this name, if any."""
        me = os.environ.get("JUPYTERHUB_USER")
        for job in await self.client.collect("jobs", "jobs", self.list_limit):
            if job["name"] == name and (me is None or job["owner"] == me):
                return job
        return None

    async def update_job(self, job_id: str, model: UpdateJob) -> None:  # type: ignore[override]
        """Runs cannot be renamed (their name is their job's); STOPPED goes to stop_job."""
        if model.status == Status.STOPPED:
            await self.stop_job(job_id)
            return
        if model.name is not None or model.compute_type is not None:
            raise ServiceError(
                400,
                "a run takes its name from its job and cannot be renamed: "
                "rename the job definition instead",
            )

    async def list_jobs(self, query: ListJobsQuery) -> ListJobsResponse:  # type: ignore[override]
        """Runs, newest first unless asked otherwise, filtered as the query asks."""
        if query.tags:
            return ListJobsResponse(jobs=[], total_count=0)
        params: dict[str, str] = {}
        if query.job_definition_id:
            job_id = _number(query.job_definition_id, JOB_PREFIX, "job definition")
            path = f"jobs/{job_id}/runs"
        else:
            path = "runs"
            if query.status:
                states = states_of(query.status)
                if not states:
                    return ListJobsResponse(jobs=[], total_count=0)
                params["state"] = ",".join(states)
        runs = await self.client.collect(path, "runs", self.list_limit, params)
        jobs = await self._jobs(run["job_id"] for run in runs)
        models = [self._describe(run, jobs[run["job_id"]]) for run in runs if run["job_id"] in jobs]
        if query.status:
            models = [m for m in models if m.status == query.status]
        if query.name:
            models = [m for m in models if m.name.startswith(query.name)]
        if query.start_time:
            models = [m for m in models if m.start_time and m.start_time >= query.start_time]
        models = _sorted(models, query.sort_by)
        page, next_token = _page(models, query)
        for model in page:
            self.add_job_files(model)
        return ListJobsResponse(jobs=page, total_count=len(models), next_token=next_token)

    async def count_jobs(self, query: CountJobsQuery) -> int:  # type: ignore[override]
        """How many of the caller's runs have this status."""
        states = states_of(query.status)
        if not states:
            return 0
        params = {"state": ",".join(states)}
        return len(await self.client.collect("runs", "runs", self.list_limit, params))

    async def get_job(  # type: ignore[override]
        self, job_id: str, job_files: bool | None = True
    ) -> DescribeJob:
        """One run, with its local output files when job_files."""
        run_id = _number(job_id, RUN_PREFIX, "job")
        run = await self.client.call("GET", f"runs/{run_id}")
        model = self._describe(run, await self._job(run["job_id"]))
        if job_files:
            self.add_job_files(model)
        return model

    async def delete_job(self, job_id: str) -> None:  # type: ignore[override]
        """Refused: the service keeps every run in its job's history."""
        _number(job_id, RUN_PREFIX, "job")
        raise ServiceError(
            405,
            "runs are kept in the job's run history and cannot be deleted one by one; "
            "delete the job definition to delete its runs",
        )

    async def stop_job(self, job_id: str) -> None:  # type: ignore[override]
        """Cancel a queued or running run."""
        run_id = _number(job_id, RUN_PREFIX, "job")
        await self.client.call("POST", f"runs/{run_id}/cancel")

    # job definitions (service jobs with a schedule)

    async def create_job_definition(  # type: ignore[override]
        self, model: CreateJobDefinition
    ) -> str:
        """Snapshot the notebook into a new scheduled service job."""
        body: dict[str, Any] = {
            "name": model.name,
            **await self._snapshot(model),
            "schedule": model.schedule,
            "timezone": model.timezone or "UTC",
            "paused": False,
        }
        job = await self.client.call(
            "POST", "jobs", body=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        return f"{JOB_PREFIX}{job['id']}"

    async def update_job_definition(  # type: ignore[override]
        self, job_definition_id: str, model: UpdateJobDefinition
    ) -> None:
        """Change name, environment, parameters, schedule, pause state or notebook.

        A new notebook of a definition that took its input folder along takes the new
        notebook's folder along (jupyter-scheduler's update model has no input-folder field).
        """
        job_id = _number(job_definition_id, JOB_PREFIX, "job definition")
        body: dict[str, Any] = {}
        if model.name is not None:
            body["name"] = model.name
        if model.runtime_environment_name is not None:
            body["environment"] = await self._environment(model.runtime_environment_name, None)
        if model.schedule is not None:
            body["schedule"] = model.schedule
        if model.timezone is not None:
            body["timezone"] = model.timezone
        if model.active is not None:
            body["paused"] = not model.active
        job = await self._job(job_id) if model.input_uri or model.parameters is not None else {}
        schema = job.get("parameter_schema")
        # the edit form sends the definition's own file name back when no new file was dropped
        # on it: as jupyter-scheduler does, that keeps the snapshot
        if model.input_uri and os.path.basename(model.input_uri) != job.get("notebook_name"):
            name, notebook = await self._read_input(model.input_uri)
            body.update(notebook=notebook, notebook_name=name)
            if packaged_paths(job):
                body["input_files"] = await self._read_input_folder(model.input_uri)
            if model.parameters is not None:
                schema = await self._schema(name, notebook)
        if model.parameters is not None:
            body["parameters"] = typed_parameters(schema or {}, model.parameters)
        if body:
            await self.client.call("PATCH", f"jobs/{job_id}", body=body)

    async def delete_job_definition(self, job_definition_id: str) -> None:  # type: ignore[override]
        """Delete the job with its versions, runs and outputs (409 while a run is active)."""
        job_id = _number(job_definition_id, JOB_PREFIX, "job definition")
        await self.client.request("DELETE", f"jobs/{job_id}")

    async def get_job_definition(  # type: ignore[override]
        self, job_definition_id: str
    ) -> DescribeJobDefinition:
        """One service job."""
        job_id = _number(job_definition_id, JOB_PREFIX, "job definition")
        return self._definition(await self._job(job_id))

    async def list_job_definitions(  # type: ignore[override]
        self, query: ListJobDefinitionsQuery
    ) -> ListJobDefinitionsResponse:
        """The caller's scheduled jobs (and those shared with them)."""
        if query.tags:
            return ListJobDefinitionsResponse(job_definitions=[], total_count=0)
        listed = await self.client.collect("jobs", "jobs", self.list_limit)
        scheduled = [job for job in listed if job.get("schedule")]
        # the listing has no notebook name; only the job itself does
        jobs = await self._jobs(job["id"] for job in scheduled)
        models = [self._definition(jobs[job["id"]]) for job in scheduled if job["id"] in jobs]
        if query.name:
            models = [m for m in models if m.name.startswith(query.name)]
        if query.create_time:
            models = [m for m in models if m.create_time >= query.create_time]
        models = _sorted(models, query.sort_by)
        page, next_token = _page(models, query)
        return ListJobDefinitionsResponse(
            job_definitions=page, total_count=len(models), next_token=next_token
        )

    async def create_job_from_definition(  # type: ignore[override]
        self, job_definition_id: str, model: CreateJobFromDefinition
    ) -> str:
        """Run a job definition now, its parameters overridden by the request's."""
        job_id = _number(job_definition_id, JOB_PREFIX, "job definition")
        parameters: dict[str, Any] = {}
        if model.parameters:
            schema = (await self._job(job_id))["parameter_schema"]
            parameters = typed_parameters(schema, model.parameters)
        run = await self.client.call(
            "POST",
            f"jobs/{job_id}/runs",
            body={"parameters": parameters},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        return f"{RUN_PREFIX}{run['id']}"

    # output files

    def get_staging_paths(self, model: DescribeJob | DescribeJobDefinition) -> dict[str, str]:
        """Service URLs of a run's outputs; definitions stage nothing here."""
        if not isinstance(model, DescribeJob):
            return {}
        run_id = _number(model.job_id, RUN_PREFIX, "job")
        return {fmt: f"{self.client.api_url}runs/{run_id}/output.{fmt}" for fmt in OUTPUT_FORMATS}

    def get_job_filenames(self, model: DescribeJob) -> dict[str, str | list[str]]:
        """Local names of a run's outputs (the service does not hand the input back)."""
        names = super().get_job_filenames(model)
        names.pop("input", None)
        return names

    def add_job_files(self, model: DescribeJob) -> None:
        """List the run's outputs with their local paths once downloaded."""
        names = self.get_job_filenames(model)
        folder = self.get_local_output_path(model, root_dir_relative=True)
        files = []
        for fmt, label in OUTPUT_FORMATS.items():
            path = os.path.join(folder, str(names[fmt]))
            files.append(
                JobFile(
                    display_name=label,
                    file_format=fmt,
                    file_path=path if self.file_exists(path) else None,
                )
            )
        model.job_files = files
        model.downloaded = all(f.file_path for f in files)

    async def download_outputs(self, job_id: str, redownload: bool = False) -> list[str]:
        """Fetch a run's outputs into its local output folder; return the paths written."""
        model = await self.get_job(job_id, job_files=False)
        run_id = _number(job_id, RUN_PREFIX, "job")
        names = self.get_job_filenames(model)
        folder = self.get_local_output_path(model)
        written = []
        for fmt in OUTPUT_FORMATS:
            path = os.path.join(folder, str(names[fmt]))
            if os.path.exists(path) and not redownload:
                continue
            response = await self.client.request("GET", f"runs/{run_id}/output.{fmt}")
            await asyncio.to_thread(write_atomic, path, response.content)
            written.append(path)
        return written

    async def close(self) -> None:
        """Close the connection to the service."""
        await self.client.close()


class DsmlJobFilesManager(JobFilesManager):
    """ "Download job files": fetch a run's outputs from the service (no staging area)."""

    async def copy_from_staging(self, job_id: str, redownload: Any = False) -> None:
        """Write the run's output.ipynb and output.html under jobs/ in the server's root."""
        # the handler passes the query argument as text: "false" must not mean True
        again = str(redownload).lower() not in ("", "0", "false", "no")
        await self.scheduler.download_outputs(job_id, redownload=again)
