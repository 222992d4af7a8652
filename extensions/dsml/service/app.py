"""The base of every hub-managed service: one traitlets Application with the hub's settings.

JupyterHub starts a managed service with its URL, prefix and API token in the environment
(`JUPYTERHUB_SERVICE_URL`, `JUPYTERHUB_SERVICE_PREFIX`, `JUPYTERHUB_API_TOKEN`, ...): the
trait defaults below read them, and the hub passes everything else as `--Class.trait=value`
arguments. A subclass names itself (`service_name`), lists its routes (`handlers()`), opens
what it manages in `initialize`, and starts and stops its background work in `started()` and
`stopping()`. Nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub.services.auth import HubOAuth
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.log import access_log
from traitlets import Integer, List, Unicode, default
from traitlets.config import Application

from dsml.service.handlers import NotFoundHandler, OAuthCallbackHandler, Route

T = TypeVar("T")

PLATFORM_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
"""The platform's hub templates (page.html with the platform's navigation links)."""


def log_request(handler: web.RequestHandler) -> None:
    """One access log line per request, without the query string.

    tornado's own line has the whole URI: a `?token=` (which HubAuth accepts) or the OAuth
    callback's `?code=` would land in the log.
    """
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if status == 503:
        level = logging.WARNING  # unavailable for now (a busy database): no fault of ours
    access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        handler.request.method,
        handler.request.path,
        handler.request.remote_ip,
        1000 * handler.request.request_time(),
    )


class ServiceApp(Application):
    """A hub-managed service: traits, `initialize`, `make_app`, `start`, `launch_instance`."""

    service_name = "service"
    """The service's name in the hub (`/services/<name>/`); subclasses set it."""

    config_file = List(
        Unicode(),
        config=True,
        help="Config files (Python or JSON) loaded in order: a later file wins over an earlier "
        "one, the command line over every file.",
    )

    data_dir = Unicode(
        config=True, help="Folder of the service's own files (database, cookie secret), a path."
    )

    @default("data_dir")
    def _data_dir_default(self) -> str:
        return os.path.abspath(f"{self.service_name}-data")

    db_url = Unicode(
        config=True,
        help="SQLAlchemy URL of the service's database "
        "(default: $DSML_<NAME>_DB_URL, else SQLite in data_dir).",
    )

    @default("db_url")
    def _db_url_default(self) -> str:
        env = os.environ.get(f"DSML_{self.service_name.upper()}_DB_URL")
        return env or f"sqlite:///{Path(self.data_dir) / f'{self.service_name}.sqlite'}"

    service_url = Unicode(
        config=True, help="URL this service listens on, e.g. http://127.0.0.1:8790 (from the hub)."
    )

    @default("service_url")
    def _service_url_default(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8800")

    service_prefix = Unicode(
        config=True, help="URL path the proxy serves this service under, e.g. /services/portal/."
    )

    @default("service_prefix")
    def _service_prefix_default(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{self.service_name}/")

    public_url = Unicode(
        config=True,
        help="URL people open the platform at, e.g. http://127.0.0.1:8000 (empty: unknown).",
    )

    @default("public_url")
    def _public_url_default(self) -> str:
        return os.environ.get("DSML_PUBLIC_URL", "")

    hub_api_url = Unicode(
        config=True, help="URL of the hub's REST API as this service reaches it (from the hub)."
    )

    @default("hub_api_url")
    def _hub_api_url_default(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    api_token = Unicode(
        config=True, help="The service's own hub API token (from the hub); never logged."
    )

    @default("api_token")
    def _api_token_default(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    max_request_bytes = Integer(
        1024 * 1024, config=True, help="Largest request body an API call may send, in bytes."
    )

    def handlers(self) -> list[Route]:
        """The service's routes, relative to `service_prefix` (each module's default_handlers).

        Subclasses return the concatenation of their `apihandlers` modules' lists.
        """
        raise NotImplementedError

    def template_paths(self) -> list[str]:
        """Folders of the service's own templates, searched before the platform's hub look."""
        return []

    def initialize(self, argv: list[str] | None = None) -> None:
        """Read the command line and config; make the data dir. Subclasses open what they own."""
        super().initialize(argv)
        self.load_config_files()
        logging.basicConfig(
            level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s"
        )
        self.log.setLevel(logging.INFO)
        Path(self.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)

    def load_config_files(self) -> None:
        """Load `config_file` in order, then apply the command line again so it wins."""
        for path in self.config_file:
            if not Path(path).is_file():
                raise SystemExit(f"dsml {self.service_name}: config file {path} does not exist")
            self.load_config_file(os.path.basename(path), path=os.path.dirname(path) or ".")
        self.update_config(self.cli_config)

    async def started(self) -> None:
        """Called once the service listens: start background work here."""

    async def stopping(self) -> None:
        """Called on SIGTERM or SIGINT, after the server stopped accepting: stop and close."""

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (files, subprocesses, CPU) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))

    def cookie_secret(self) -> bytes:
        """The secret that signs this service's cookies, kept in data_dir (mode 0600)."""
        path = Path(self.data_dir) / "cookie_secret"
        if not path.exists():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32))
        return path.read_text().strip().encode()

    def make_hub_auth(self) -> HubOAuth:
        """How the service asks the hub who calls (tokens and the OAuth cookie of pages)."""
        return HubOAuth(
            parent=self,
            api_url=self.hub_api_url,
            api_token=self.api_token,
            base_url=self.service_prefix,
        )

    def make_jinja_env(self) -> Environment:
        """Templates: the service's, then the platform's hub look, then JupyterHub's own."""
        from jupyterhub._data import DATA_FILES_PATH

        hub_default = str(Path(DATA_FILES_PATH) / "templates")
        return Environment(
            loader=ChoiceLoader(
                [
                    PrefixLoader({"templates": FileSystemLoader([hub_default])}, "/"),
                    FileSystemLoader(
                        [*self.template_paths(), str(PLATFORM_TEMPLATES), hub_default]
                    ),
                ]
            ),
            autoescape=True,
        )

    def make_app(self) -> web.Application:
        """The tornado application: every route under the service prefix."""
        prefix = self.service_prefix.rstrip("/")
        routes: list[Any] = [(prefix + "/oauth_callback", OAuthCallbackHandler)]
        for route in self.handlers():
            routes.append((prefix + route[0], *route[1:]))
        self.jinja_env = self.make_jinja_env()
        return web.Application(
            routes,
            service_app=self,
            hub_auth=self.make_hub_auth(),
            cookie_secret=self.cookie_secret(),
            login_url=url_path_join(self.service_prefix, "oauth_callback"),
            default_handler_class=NotFoundHandler,
            xsrf_cookies=False,  # HubOAuth checks XSRF itself before a cookie counts
            log_function=log_request,
        )

    def max_body_bytes(self) -> int:
        """Largest body the HTTP server reads at all; above max_request_bytes so a 413 is JSON."""
        return 2 * self.max_request_bytes

    async def serve(self) -> None:
        """Listen, run `started()`, wait for SIGTERM or SIGINT, then run `stopping()`."""
        url = urlparse(self.service_url)
        server = HTTPServer(self.make_app(), max_body_size=self.max_body_bytes(), xheaders=True)
        server.listen(url.port or 80, url.hostname or "127.0.0.1")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.started()
        self.log.info(
            "dsml %s listening on %s%s", self.service_name, self.service_url, self.service_prefix
        )
        await stop.wait()
        self.log.info("dsml %s stopping", self.service_name)
        server.stop()
        await self.stopping()

    def start(self) -> None:
        """Run the service until a signal stops it."""
        asyncio.run(self.serve())
