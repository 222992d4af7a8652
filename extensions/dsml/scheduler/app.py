"""The scheduler service as one traitlets Application: traits, initialize, make_app, start.

JupyterHub runs it as a managed service (`python -m dsml.scheduler`) and hands it its URL,
prefix and API token in the environment; every setting below is a trait with its unit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.traitlets import EntryPointType
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Integer, List, Unicode, default
from traitlets.config import Application

from dsml.kernels import kernel_metadata, kernel_name
from dsml.scheduler import apihandlers
from dsml.scheduler.executors import Executor
from dsml.scheduler.metrics import Metrics
from dsml.scheduler.notify import Notifier
from dsml.scheduler.outputs import Outputs
from dsml.scheduler.runs import RunManager
from dsml.scheduler.store import Store


class SchedulerApp(Application):
    """Hub-wide Papermill jobs: cron, queue, executors, run history, REST API and a page.

    Its parts are Configurables with this app as parent, so `c.RunManager.tick_seconds`,
    `c.Executor.capacity`, `c.LocalExecutor.warm_workers` or `c.Notifier.smtp_host` in a config
    file take effect. The hub writes the platform's settings into a JSON config file and names
    it with `--config-file`; an admin's own config file named after it wins over it.
    """

    name = "dsml-scheduler"
    description = "The dsml-platform scheduler service."

    config_file = List(
        Unicode(),
        config=True,
        help="Config files (Python or JSON) loaded in order: a later file wins over an earlier "
        "one, the command line over every file.",
    )
    data_dir = Unicode(
        config=True, help="Folder of the scheduler's database (SQLite) and run outputs."
    )

    @default("data_dir")
    def _data_dir(self) -> str:
        return os.path.abspath("scheduler-data")

    db_url = Unicode(config=True, help="SQLAlchemy URL of the scheduler database.")

    @default("db_url")
    def _db_url(self) -> str:
        return os.environ.get(
            "DSML_SCHEDULER_DB_URL", f"sqlite:///{Path(self.data_dir) / 'scheduler.sqlite'}"
        )

    service_url = Unicode(config=True, help="URL this service listens on (from the hub).")

    @default("service_url")
    def _service_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8790")

    service_prefix = Unicode(config=True, help="URL prefix of the service behind the proxy.")

    @default("service_prefix")
    def _service_prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/scheduler/")

    public_url = Unicode(
        "", config=True, help="Public URL of the platform (for links in notifications)."
    )
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
        8 * 1024 * 1024, config=True, help="Largest API request body, in bytes."
    )

    aliases = {
        "port": "SchedulerApp.service_url",
        "db-url": "SchedulerApp.db_url",
        "config-file": "SchedulerApp.config_file",
    }
    classes = List([RunManager, Notifier, Outputs, Executor])

    def load_config_files(self) -> None:
        """Load `config_file` in order, then apply the command line again so it wins."""
        for path in self.config_file:
            if not Path(path).is_file():
                raise SystemExit(f"dsml-scheduler: config file {path} does not exist")
            self.load_config_file(os.path.basename(path), path=os.path.dirname(path) or ".")
        self.update_config(self.cli_config)

    def initialize(self, argv: list[str] | None = None) -> None:
        """Read config, open (and migrate) the database, make the executor and run manager."""
        super().initialize(argv)
        self.load_config_files()
        logging.basicConfig(
            level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s"
        )
        self.log.setLevel(logging.INFO)
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        self.outputs = Outputs(parent=self)
        if not self.outputs.root:
            self.outputs.root = str(Path(self.data_dir) / "runs")
        Path(self.outputs.root).mkdir(parents=True, exist_ok=True)
        self.store = Store(self.db_url)
        self.store.migrate()
        self.executor_obj = self.make_executor()
        self.metrics = Metrics()
        self.manager = RunManager(
            self.store,
            self.executor_obj,
            self.outputs,
            self.worker_service_url,
            notifier=Notifier(parent=self),
            public_url=url_path_join(self.public_url or "", self.service_prefix),
            parent=self,
        )
        self.manager.metrics = self.metrics
        self._blocking = None

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

    async def run_blocking(self, fn: Any, *args: Any) -> Any:
        """Run CPU-bound or blocking work off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))

    def _cookie_secret(self) -> bytes:
        path = Path(self.data_dir) / "cookie_secret"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip().encode()

    def make_app(self) -> web.Application:
        """The tornado application with every route under the service prefix."""
        return web.Application(
            apihandlers.default_handlers(self.service_prefix),
            scheduler_app=self,
            cookie_secret=self._cookie_secret(),
            template_path=str(Path(__file__).parent / "templates"),
            login_url=url_path_join(self.service_prefix, "oauth_callback"),
            xsrf_cookies=False,
        )

    async def start_async(self) -> None:
        """Listen, reconcile, start the loop and the warm workers; run until a signal."""
        url = urlparse(self.service_url)
        server = HTTPServer(
            self.make_app(), max_body_size=max(self.max_request_bytes, self.max_output_bytes * 3)
        )
        server.listen(url.port or 80, url.hostname or "127.0.0.1")
        await self.manager.start()
        await self.executor_obj.prepare(self.environment_names())
        self.log.info("dsml scheduler listening on %s%s", self.service_url, self.service_prefix)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        self.log.info("dsml scheduler stopping")
        server.stop()
        await self.manager.stop()
        await self.manager.stop_active()
        await self.executor_obj.shutdown()
        self.store.close()

    def start(self) -> None:
        """Run the service."""
        asyncio.run(self.start_async())


main = SchedulerApp.launch_instance
"""Entry point of `python -m dsml.scheduler`."""
