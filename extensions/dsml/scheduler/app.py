"""The scheduler service as one traitlets Application: traits, initialize, make_app, start.

JupyterHub runs it as a managed service (`python -m dsml.scheduler`) and hands it its URL,
prefix and API token in the environment; every setting below is a trait with its unit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyterhub.traitlets import EntryPointType
from jupyterhub.utils import url_path_join
from traitlets import Integer, List, Unicode, default

from dsml.kernels import kernel_metadata, kernel_name
from dsml.scheduler import apihandlers
from dsml.scheduler.executors import Executor
from dsml.scheduler.inputs import Inputs
from dsml.scheduler.metrics import Metrics
from dsml.scheduler.notify import Notifier
from dsml.scheduler.outputs import Outputs
from dsml.scheduler.rights import HubOwnerRights
from dsml.scheduler.runs import RunManager
from dsml.scheduler.store import Store
from dsml.service.app import ServiceApp
from dsml.service.handlers import Route


class SchedulerApp(ServiceApp):
    """Hub-wide Papermill jobs: cron, queue, executors, run history, REST API and a page.

    Its parts are Configurables with this app as parent, so `c.RunManager.tick_seconds`,
    `c.Executor.capacity`, `c.LocalExecutor.warm_workers` or `c.Notifier.smtp_host` in a config
    file take effect. The hub writes the platform's settings into a JSON config file and names
    it with `--config-file`; an admin's own config file named after it wins over it.
    """

    name = "dsml-scheduler"
    description = "The dsml-platform scheduler service."
    service_name = "scheduler"

    worker_service_url = Unicode(
        config=True,
        help="URL workers use to reach this service (default: service_url + prefix).",
    )

    @default("worker_service_url")
    def _worker_service_url(self) -> str:
        return url_path_join(self.service_url, self.service_prefix)

    executor_class = EntryPointType(
        default_value="dsml.scheduler.executors.local.LocalExecutor",
        klass=Executor,
        entry_point_group="dsml.executors",
        config=True,
        help="Executor that runs jobs: a short name (local, kubernetes) or a class.",
    )
    environments = List(
        Unicode(),
        config=True,
        help="Curated environments jobs may use (empty: every environment under images/).",
    )
    max_notebook_bytes = Integer(
        5 * 1024 * 1024, config=True, help="Largest notebook a job may snapshot, in bytes."
    )
    max_output_bytes = Integer(
        25 * 1024 * 1024,
        config=True,
        help="Largest executed notebook (or HTML) a run may keep, in bytes.",
    )
    max_request_bytes = Integer(
        8 * 1024 * 1024,
        config=True,
        help="Largest API request body, in bytes (a job's input files come on top).",
    )
    max_jobs_per_user = Integer(
        500, config=True, help="Jobs one user may have (a count); more are refused with 409."
    )
    max_retries = Integer(10, config=True, help="Largest `retries` a job may ask for (a count).")
    max_deadline_seconds = Integer(
        7 * 24 * 3600, config=True, help="Longest `deadline_seconds` a job may ask for, in seconds."
    )

    aliases = {
        "port": "SchedulerApp.service_url",
        "db-url": "SchedulerApp.db_url",
        "config-file": "SchedulerApp.config_file",
    }
    classes = List([RunManager, Notifier, Outputs, Inputs, HubOwnerRights, Executor])

    def initialize(self, argv: list[str] | None = None) -> None:
        """Read config, open (and migrate) the database, make the executor and run manager."""
        super().initialize(argv)
        self.outputs = Outputs(parent=self)
        if not self.outputs.root:
            self.outputs.root = str(Path(self.data_dir) / "runs")
        Path(self.outputs.root).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.inputs = Inputs(parent=self)
        if not self.inputs.root:
            self.inputs.root = str(Path(self.data_dir) / "inputs")
        Path(self.inputs.root).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.store = Store(self.db_url)
        self.store.migrate()
        self.executor_obj = self.make_executor()
        self.metrics = Metrics()
        self.notifier = Notifier(parent=self)
        self.rights = HubOwnerRights(
            parent=self, hub_api_url=self.hub_api_url, api_token=self.api_token
        )
        self.manager = RunManager(
            self.store,
            self.executor_obj,
            self.outputs,
            self.worker_service_url,
            notifier=self.notifier,
            public_url=url_path_join(self.public_url or "", self.service_prefix),
            rights=self.rights,
            parent=self,
        )
        self.manager.metrics = self.metrics

    def make_executor(self) -> Executor:
        """The executor `executor_class` names, configured by this app's config."""
        return self.executor_class(parent=self)

    @property
    def public_prefix(self) -> str:
        """Prefix of links handed to users (relative to the platform)."""
        return self.service_prefix.rstrip("/")

    def environment_names(self) -> list[str]:
        """Environments jobs may use."""
        if self.environments:
            return list(self.environments)
        return [e["name"] for e in self.environment_records()]

    def current_version(self, environment: str) -> str | None:
        """The version the environment's kernel runs now (None when it is not built here)."""
        meta = kernel_metadata(kernel_name(environment))
        return meta.get("version") if meta else None

    def pin_version(self, environment: str, wanted: str) -> str | None:
        """Resolve 'current' or check a version: it must be built here (BadRequest otherwise)."""
        from dsml.scheduler.exceptions import BadRequest

        if wanted == "current":
            return self.current_version(environment)
        if kernel_metadata(kernel_name(environment, wanted)) is None:
            raise BadRequest(
                f"environment {environment} has no built version {wanted}; "
                f"the current one is {self.current_version(environment)}"
            )
        return wanted

    def environment_records(self) -> list[dict[str, Any]]:
        """Name, display name, description and version of the allowed environments."""
        from dsml.environments import list_environments

        wanted = set(self.environments)
        return [
            {
                "name": e.name,
                "display_name": e.display_name,
                "description": e.description,
                "version": e.version,
                "current_version": self.current_version(e.name),
                "kernel": e.kernel_name,
            }
            for e in list_environments()
            if not wanted or e.name in wanted
        ]

    def handlers(self) -> list[Route]:
        """Every route of the service (relative to its prefix)."""
        return apihandlers.default_handlers()

    def template_paths(self) -> list[str]:
        """The scheduler's own page."""
        return [str(Path(__file__).parent / "templates")]

    def job_body_bytes(self) -> int:
        """Largest job create or change: a request plus its input files in base64 (4/3)."""
        return self.max_request_bytes + (self.inputs.max_input_bytes * 4) // 3 + 64 * 1024

    def max_body_bytes(self) -> int:
        """The server's ceiling; each route checks its own, smaller limit before reading."""
        return max(2 * self.max_request_bytes, 3 * self.max_output_bytes, self.job_body_bytes())

    async def started(self) -> None:
        """Reconcile runs a previous process left, start the loop and the warm workers."""
        await self.manager.start()
        await self.executor_obj.prepare(self.environment_names())

    async def stopping(self) -> None:
        """Stop the loop and every running worker (their runs end lost and are retried)."""
        await self.manager.stop()
        await self.manager.stop_active()
        await self.executor_obj.shutdown()
        self.store.close()


main = SchedulerApp.launch_instance
"""Entry point of `python -m dsml.scheduler`."""
