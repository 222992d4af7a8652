"""The app server: one published notebook served by Voila behind the hub's OAuth (issue #9).

JupyterHub spawns `python -m dsml.apps.server` as the owner's named server `app-<slug>`. It fetches
the app's bundle from the apps service (or takes `--bundle-dir`), unpacks it into a private temp
folder and serves it with Voila in this process:

- every handler (page, static files, websockets) admits only a signed-in hub user whose OAuth token
  grants `JUPYTERHUB_OAUTH_ACCESS_SCOPES` (so the hub's shares decide); revocation takes effect on
  the next page, websocket or kernel request, and open websockets are re-checked every 20 s;
- only the page, its assets, its own kernel's model (GET, for the viewer it was given to) and
  websocket, and Voila's kernel shutdown beacon are served: no tree, no contents, sessions or
  terminals, no kernels REST API;
- the page's kernel websocket lets through only widget comm messages and kernel info requests,
  never an `execute_request`;
- kernels are preheated (a small pool, the notebook already run) so a viewer waits for no kernel;
- a notebook that raises shows the viewer a clean error page; the error goes to the apps service,
  with views (viewer, version, render time) and this process's log tail, batched every 2 s;
- activity goes to the hub (at most once a minute, and every minute while a page is open or with
  `--always-on`) so the idle culler leaves an app in use alone.

Options (each also read from an environment variable; the option wins):
`--bundle-dir DIR` (DSML_APP_BUNDLE_DIR), `--kernel-name NAME` (DSML_APP_KERNEL), `--pool-size N`
(DSML_APP_POOL_SIZE, default 1), `--always-on` (DSML_APP_ALWAYS_ON=1), `--title T`
(DSML_APP_TITLE; else the notebook's metadata title, else the slug), `--apps-url URL`
(DSML_APPS_URL), `--slug S` (DSML_APP_SLUG), `--cull-idle-seconds N`
(DSML_APP_KERNEL_CULL_SECONDS, default 600). DSML_APP_VERSION names the version in --bundle-dir
mode. From JupyterHub: JUPYTERHUB_API_TOKEN, JUPYTERHUB_API_URL, JUPYTERHUB_CLIENT_ID,
JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_SERVICE_URL, JUPYTERHUB_OAUTH_ACCESS_SCOPES,
JUPYTERHUB_OAUTH_CALLBACK_URL, JUPYTERHUB_ACTIVITY_URL, JUPYTERHUB_SERVER_NAME (and JUPYTERHUB_HOST
when the hub is on another host). The API token is removed from the environment the kernels get.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import contextvars
import datetime
import hashlib
import html
import inspect
import io
import json
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.base.handlers import FileFindHandler
from jupyter_server.utils import url_path_join
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from jupyterlab_server.themes_handler import ThemesHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httputil import url_concat
from tornado.ioloop import PeriodicCallback
from traitlets.config import Config
from voila.app import Voila
from voila.request_info_handler import RequestInfoSocketHandler
from voila.static_file_handler import (
    AllowListFileHandler,
    MultiStaticFileHandler,
    TemplateStaticFileHandler,
)
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler
from voila.utils import get_voila_labextensions_path

from dsml.kernelclient import STEADY_KERNEL_CLIENT

log = logging.getLogger("dsml.apps.server")

ALLOWED_MESSAGE_TYPES = frozenset(
    {"comm_msg", "comm_open", "comm_close", "comm_info_request", "kernel_info_request"}
)
"""What a viewer's browser may send to the page's kernel: widget comms and kernel info, no code."""

BINARY_PROTOCOL = "v1.kernel.websocket.jupyter.org"
LOG_TAIL_LINES = 200
ACTIVITY_SECONDS = 60
RECHECK_SECONDS = 20
EVENTS_SECONDS = 2.0
LOG_ONLY_SECONDS = 30.0
AUTH_CACHE_SECONDS = 2
"""How long HubAuth may reuse the hub's answer for a token (static assets only, see AppHubOAuth).

HubAuth caches the hub's answer per token for `cache_max_age` (default 300 s): a viewer whose share
was revoked would keep getting in for five minutes. 0 is no cure: `_ExpiringDict` reads 0 as
"cache forever". So the cache keeps answers 2 s, and only for Voila's own static assets (public
code, nothing of the app); the page, the kernel's model and websockets, the shutdown beacon and
the bundle's files always ask the hub, so a revoked viewer is out on the next such request.
"""

ERROR_MARKER = "dsml-app-cell-failed-3f9c1e"
"""Voila writes its cell error instruction into the page: we set it to this marker to notice a
notebook that raised (with show_tracebacks off, Voila keeps only 'There was an error when
executing cell [n]' plus this instruction, no traceback)."""

_FRESH: contextvars.ContextVar[bool] = contextvars.ContextVar("dsml_app_fresh", default=True)
_PAGE_VIEWER: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dsml_app_page_viewer", default=None
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Voila's lab template links Font Awesome from a CDN: a viewer's browser would ask a third party
# for it on every open, and on a network without one it waits for the stylesheet. The page's own
# bundle (voila.js) already carries Font Awesome, so the links go.
_CDN_LINK = re.compile(r'<link\b[^>]*\bhref="https?://[^"]*"[^>]*>', re.IGNORECASE)


_TASKS: set[asyncio.Future[Any]] = set()


def _background(coro: Any) -> None:
    """Run `coro` on the loop without waiting; keep a reference so it is not collected."""
    task = asyncio.ensure_future(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


def log_request(handler: web.RequestHandler) -> None:
    """Access log without query strings (a `?token=` must not reach the log the owner reads)."""
    status = handler.get_status()
    level = log.info if status < 400 else log.warning if status < 500 else log.error
    if status < 400 and "/voila/" in handler.request.path:
        level = log.debug  # Voila's own assets: noise in the tail the owner reads
    level(
        "%d %s %s %.1fms",
        status,
        handler.request.method,
        handler.request.path,
        1000 * handler.request.request_time(),
    )


class AppServerError(Exception):
    """The app server cannot start: one line saying what was wrong."""


# --------------------------------------------------------------------------- options and bundle


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; each falls back to its environment variable (module docstring)."""
    env = os.environ
    p = argparse.ArgumentParser(
        prog="python -m dsml.apps.server", description="Serve one published notebook with Voila."
    )
    p.add_argument(
        "--bundle-dir",
        default=env.get("DSML_APP_BUNDLE_DIR") or None,
        help="folder holding notebook.ipynb and its files (default: fetch the bundle from the "
        "apps service)",
    )
    p.add_argument(
        "--kernel-name",
        default=env.get("DSML_APP_KERNEL") or None,
        help="kernel to run the notebook on (default: X-Dsml-Kernel, else the notebook's)",
    )
    p.add_argument(
        "--always-on",
        action="store_true",
        default=env.get("DSML_APP_ALWAYS_ON", "").lower() in {"1", "true", "yes"},
        help="report activity every minute even when nobody uses the app",
    )
    p.add_argument(
        "--pool-size",
        type=int,
        default=int(env.get("DSML_APP_POOL_SIZE") or 1),
        help="preheated kernels kept ready (default 1; 0 starts a kernel per visit)",
    )
    p.add_argument("--title", default=env.get("DSML_APP_TITLE") or None, help="app title")
    p.add_argument("--apps-url", default=env.get("DSML_APPS_URL", ""))
    p.add_argument("--slug", default=env.get("DSML_APP_SLUG", ""))
    p.add_argument(
        "--cull-idle-seconds",
        type=int,
        default=int(env.get("DSML_APP_KERNEL_CULL_SECONDS") or 600),
        help="shut a viewer's kernel down after this long idle with no page attached",
    )
    args = p.parse_args(argv)
    if args.pool_size < 0 or args.pool_size > 16:
        p.error(f"--pool-size {args.pool_size}: allowed 0 to 16")
    if args.apps_url and not args.apps_url.endswith("/"):
        args.apps_url += "/"
    return args


def _safe_members(tar: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    """The bundle's members with their checked relative paths; refuses links and escapes."""
    members = []
    for member in tar.getmembers():
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in member.name:
            raise AppServerError(
                f"bundle member {member.name!r} is not a relative path inside the bundle"
            )
        if not (member.isfile() or member.isdir()):
            raise AppServerError(
                f"bundle member {member.name!r} is a link or special file; only files and "
                "folders are allowed"
            )
        members.append((member, path))
    return members


def unpack_bundle(data: bytes, dest: Path) -> None:
    """Unpack a gzip tar bundle into `dest` (files and folders only, nothing outside it)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member, rel in _safe_members(tar):
                target = dest.joinpath(*rel.parts)
                if member.isdir():
                    target.mkdir(mode=0o700, parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isfile() members always have data
                    raise AppServerError(f"bundle member {member.name!r} has no data")
                with source, open(target, "xb") as out:
                    shutil.copyfileobj(source, out)
                os.chmod(target, 0o600)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise AppServerError(f"the app bundle is not a readable gzip tar: {e}") from e


def fetch_bundle(apps_url: str, slug: str, token: str, dest: Path) -> dict[str, str]:
    """Download the current version's bundle into `dest`; returns its version and kernel headers."""
    url = f"{apps_url}api/apps/{slug}/bundle"
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
            headers = {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as e:
        raise AppServerError(f"GET {url} answered {e.code}: the app's bundle is needed") from e
    except (urllib.error.URLError, OSError) as e:
        raise AppServerError(f"GET {url} failed ({e}): the apps service must be reachable") from e
    expected = headers.get("x-dsml-sha256", "").strip().lower()
    actual = hashlib.sha256(data).hexdigest()
    if not expected:
        raise AppServerError(f"GET {url} sent no X-Dsml-Sha256 header; it is required")
    if expected != actual:
        raise AppServerError(
            f"the bundle's sha256 is {actual}, X-Dsml-Sha256 says {expected}: refusing it"
        )
    unpack_bundle(data, dest)
    return {
        "version": headers.get("x-dsml-app-version", ""),
        "kernel": headers.get("x-dsml-kernel", ""),
    }


def copy_bundle_dir(source: Path, dest: Path) -> None:
    """Copy a bundle folder (files and folders only; links are skipped) into `dest`."""
    if not (source / "notebook.ipynb").is_file():
        raise AppServerError(f"--bundle-dir {source}: it must hold notebook.ipynb")
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_symlink():
            continue
        target = dest / rel
        if path.is_dir():
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif path.is_file():
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            os.chmod(target, 0o600)


def set_kernel(notebook: Path, kernel_name: str) -> tuple[dict[str, Any], list[str]]:
    """Point the notebook's kernelspec at `kernel_name` (Voila needs its language too).

    Returns the notebook and the kernel environment's labextensions folder (if it has one): the
    widgets' browser code must match the kernel's ipywidgets, and the environment that runs the
    kernel ships the matching jupyterlab_widgets.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    nb = json.loads(notebook.read_text(encoding="utf8"))
    metadata = nb.setdefault("metadata", {})
    name = kernel_name or (metadata.get("kernelspec") or {}).get("name") or ""
    if not name:
        raise AppServerError("the notebook names no kernel and none was given (--kernel-name)")
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel as e:
        raise AppServerError(f"kernel {name!r} is not installed here (JUPYTER_PATH)") from e
    metadata["kernelspec"] = {
        "name": name,
        "display_name": spec.display_name,
        "language": spec.language,
    }
    notebook.write_text(json.dumps(nb), encoding="utf8")
    labextensions = []
    if spec.argv and os.path.isabs(spec.argv[0]):
        # not resolved: a venv's bin/python is a link to the base interpreter
        folder = Path(spec.argv[0]).parent.parent / "share" / "jupyter" / "labextensions"
        if folder.is_dir():
            labextensions.append(str(folder))
    return nb, labextensions


# --------------------------------------------------------------------------- log, events, activity


class LogTail(logging.Handler):
    """Keeps the last lines of this process's log and the last notebook error text."""

    def __init__(self, lines: int = LOG_TAIL_LINES) -> None:
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)
        self.changed = False
        self.last_error: str | None = None
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the formatted record; remember a cell's error text."""
        try:
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None and type(exc).__name__ in {"CellExecutionError", "CellTimeoutError"}:
                self.last_error = _ANSI.sub("", str(exc)).strip()[-4000:]
            for line in _ANSI.sub("", self.format(record)).splitlines():
                self.lines.append(line)
            self.changed = True
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


MAX_PENDING_VIEWS = 10_000
"""Views kept for the apps service while it does not answer; beyond that they are dropped."""


def _never_arrived(error: Exception) -> bool:
    """Whether a failed post surely did not reach the apps service (so it may be sent again):
    the connection was refused, or the proxy answered that nothing serves the service."""
    if isinstance(error, ConnectionError):
        return True
    if not isinstance(error, HTTPClientError):
        return False
    # 599 is any failure of tornado's curl client; errno 7 is curl's "could not connect"
    return error.code in (502, 503) or (error.code == 599 and getattr(error, "errno", 0) == 7)


class Reporter:
    """Sends views, the log tail and errors to the apps service, batched, never blocking a page."""

    def __init__(self, apps_url: str, slug: str, token: str, tail: LogTail) -> None:
        self.url = f"{apps_url}api/apps/{slug}/events" if apps_url and slug else ""
        self.token = token
        self.tail = tail
        self.views: list[dict[str, Any]] = []
        self.error: str | None = None
        self._error_sent = False
        self._last_post = 0.0
        self._busy = False

    @property
    def enabled(self) -> bool:
        """Whether there is an apps service to report to."""
        return bool(self.url)

    def view(self, viewer: str, version: int | None, seconds: float) -> None:
        """Count one page render."""
        if self.enabled:
            self.views.append(
                {"viewer": viewer, "version": version, "render_seconds": round(seconds, 4)}
            )

    def fail(self, text: str) -> None:
        """Report the notebook's (or the server's) error with the log tail."""
        self.error = text
        self._error_sent = False

    def _due(self) -> bool:
        if self.views or (self.error and not self._error_sent):
            return True
        return self.tail.changed and time.monotonic() - self._last_post >= LOG_ONLY_SECONDS

    async def flush(self) -> None:
        """Post what is pending (called every EVENTS_SECONDS); failures are logged, not raised."""
        if not self.enabled or self._busy or not self._due():
            return
        self._busy = True
        views, self.views = self.views[:500], self.views[500:]
        body, error_pending = self._body_with(views), self.error is not None
        self.tail.changed = False
        self._last_post = time.monotonic()
        try:
            request = HTTPRequest(
                self.url,
                method="POST",
                body=body,
                headers={
                    "Authorization": f"token {self.token}",
                    "Content-Type": "application/json",
                },
                request_timeout=10,
            )
            await AsyncHTTPClient().fetch(request)
            if error_pending:
                self._error_sent = True
        except Exception as e:
            if _never_arrived(e) and len(self.views) < MAX_PENDING_VIEWS:
                # the apps service is down (restarting, say): keep the views for the next post;
                # a post that may have arrived (a timeout) is not sent twice
                self.views[:0] = views
            log.warning("could not report events to the apps service: %s", e)
        finally:
            self._busy = False

    def _body_with(self, views: list[dict[str, Any]]) -> bytes:
        return json.dumps(
            {"views": views, "log": list(self.tail.lines), "error": self.error}
        ).encode()

    def post_now(self) -> None:
        """Post the error and the log tail synchronously (start-up failure, before exiting)."""
        if not self.enabled:
            return
        request = urllib.request.Request(
            self.url,
            data=self._body_with(self.views),
            method="POST",
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except Exception as e:
            print(f"could not report the error to {self.url}: {e}", file=sys.stderr)


class Activity:
    """Tells the hub the app is in use, as jupyterhub-singleuser does."""

    def __init__(self, url: str, token: str, server_name: str, always_on: bool) -> None:
        self.url = url
        self.token = token
        self.server_name = server_name
        self.always_on = always_on
        self.sockets = 0
        self._used = False
        self._last_sent = 0.0

    def touch(self) -> None:
        """A viewer used the app: report now unless reported within the last minute."""
        self._used = True
        if time.monotonic() - self._last_sent >= ACTIVITY_SECONDS:
            _background(self.send())

    async def tick(self) -> None:
        """Every minute: report while pages are open, when used since, or always when always-on."""
        if self.always_on or self.sockets or self._used:
            await self.send()

    async def send(self) -> None:
        """POST the activity to the hub (failures are logged)."""
        if not self.url:
            return
        self._last_sent = time.monotonic()
        self._used = False
        now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        body = {"servers": {self.server_name: {"last_activity": now}}, "last_activity": now}
        try:
            await AsyncHTTPClient().fetch(
                HTTPRequest(
                    self.url,
                    method="POST",
                    body=json.dumps(body),
                    headers={
                        "Authorization": f"token {self.token}",
                        "Content-Type": "application/json",
                    },
                    request_timeout=10,
                )
            )
        except Exception as e:
            log.warning("could not report activity to the hub: %s", e)


# --------------------------------------------------------------------------- auth


class AppHubOAuth(HubOAuth):
    """HubOAuth whose cached answers serve only requests marked not fresh (static assets)."""

    def user_for_token(self, token, use_cache=True, session_id="", *, sync=True):  # type: ignore[no-untyped-def]
        """Ask the hub every time, except for requests that opted into the short cache."""
        return super().user_for_token(
            token, use_cache=use_cache and not _FRESH.get(), session_id=session_id, sync=sync
        )


class QuietLog:
    """Errors logged without query strings or headers: the log's tail goes to the app's owner,
    and tornado's own lines carry `?token=` / `?code=` and, for uncaught errors, the cookies."""

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log method, path and message only."""
        request = self.request  # type: ignore[attr-defined]
        if isinstance(value, web.HTTPError):
            if value.log_message:
                message = value.log_message % value.args if value.args else value.log_message
                log.warning(
                    "%d %s %s: %s", value.status_code, request.method, request.path, message
                )
            return
        log.error("error in %s %s", request.method, request.path, exc_info=(typ, value, tb))


class OAuthCallbackHandler(QuietLog, HubOAuthCallbackHandler):
    """Completes the hub's OAuth for this server (`<prefix>oauth_callback`)."""

    def initialize(self, hub_auth: HubOAuth) -> None:
        """Use the server's HubOAuth, not HubOAuth's process-wide singleton."""
        self.hub_auth = hub_auth


class GateIdentity(IdentityProvider):
    """jupyter_server's view of the viewer the gate (ViewerGate.prepare) already admitted."""

    def get_user(self, handler: web.RequestHandler) -> User | None:
        """The admitted viewer, or None (the gate answers before any handler runs)."""
        viewer = getattr(handler, "dsml_viewer", None)
        return User(username=viewer["name"]) if viewer else None

    def validate_security(self, app: Any, ssl_options: Any = None) -> None:
        """The hub does the security here; nothing to warn about."""


PLATFORM_LAB_EXTENSIONS = ("@jupyterlab/scheduler", "jupyter_scheduler", "@dsml/")
"""JupyterLab extensions of the platform's own UI, installed beside Voila: not for app pages."""


def page_config_hook(page_config: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Leave the platform's JupyterLab extensions out of app pages (they fail there, noisily)."""
    page_config["federated_extensions"] = [
        ext
        for ext in page_config.get("federated_extensions", [])
        if not str(ext.get("name", "")).startswith(PLATFORM_LAB_EXTENSIONS)
    ]
    return page_config


def _clean_page(title: str, heading: str, text: str) -> str:
    t, h, x = html.escape(title), html.escape(heading), html.escape(text)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{t}</title><style>body{{font-family:system-ui,sans-serif;margin:4rem auto;"
        "max-width:36rem;color:#222;padding:0 1rem}h1{font-size:1.4rem}p{color:#555}</style>"
        f"</head><body><h1>{h}</h1><p>{x}</p></body></html>"
    )


class ViewerGate(QuietLog):
    """Mixin run before every handler: admits only hub users this server is shared with.

    Class attributes: `fresh` (ask the hub, skipping HubAuth's cache), `login_redirect` (an
    anonymous GET is sent to the hub's login instead of a 403).
    """

    fresh = True
    login_redirect = False
    dsml_viewer: dict[str, Any] | None = None

    @property
    def app_server(self) -> AppServer:
        """The running AppServer."""
        return self.settings["dsml_app_server"]  # type: ignore[attr-defined, no-any-return]

    async def prepare(self) -> None:
        """Admit the viewer, then run the handler's own prepare."""
        server = self.app_server
        hub_auth = server.hub_auth
        token = _FRESH.set(self.fresh)
        try:
            user = await hub_auth.get_user(self, sync=False)
        finally:
            _FRESH.reset(token)
        if user is None:
            if self.login_redirect and self.request.method in {"GET", "HEAD"}:  # type: ignore[attr-defined]
                state = hub_auth.set_state_cookie(self, next_url=self.request.uri)  # type: ignore[attr-defined]
                self.redirect(url_concat(hub_auth.login_url, {"state": state}))  # type: ignore[attr-defined]
                return
            raise web.HTTPError(403, "sign-in required")
        if not hub_auth.check_scopes(hub_auth.access_scopes, user):
            log.warning("refused %s: %s has no access to this app", self.request.path, user["name"])  # type: ignore[attr-defined]
            raise web.HTTPError(403, "no access")
        self.dsml_viewer = user
        self.dsml_token = hub_auth.get_token(self)
        server.activity.touch()
        result = super().prepare()  # type: ignore[misc]
        if inspect.isawaitable(result):
            await result

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A clean page (no traceback, no path) for every error."""
        server = self.settings.get("dsml_app_server")  # type: ignore[attr-defined]
        title = server.title if server else "App"
        if status_code == 403:
            heading = "You do not have access to this app"
            text = "Ask its owner to share it with you, then open the link again."
        elif status_code == 404:
            heading, text = "Not found", "This app serves only its own page."
        else:
            heading = title
            text = "This app failed to run; its owner has been told."
        self.set_header("Content-Type", "text/html; charset=utf-8")  # type: ignore[attr-defined]
        self.finish(_clean_page(title, heading, text))  # type: ignore[attr-defined]

    def owns_kernel(self, kernel_id: str) -> bool:
        """Whether this viewer's page was given `kernel_id`."""
        viewer = self.dsml_viewer or {}
        return self.app_server.kernel_owners.get(kernel_id) == viewer.get("name")


def _finished(pool_item: Any) -> bool:
    """Whether a Voila pool entry has its kernel up and its notebook run to the end."""
    if not pool_item.done() or pool_item.cancelled() or pool_item.exception() is not None:
        return False
    render = pool_item.result().get("task")
    return render is not None and render.done()


def _alive(km: Any, kernel_id: str) -> bool:
    """Whether a kernel is still managed and its process runs (a restarted one is replaced)."""
    try:
        kernel = km.get_kernel(kernel_id)
    except KeyError:
        return False
    if getattr(kernel, "dsml_died", False):
        return False
    process = getattr(getattr(kernel, "provisioner", None), "process", None)
    return process is None or process.poll() is None


def gated(cls: type, *, fresh: bool = True, login_redirect: bool = False) -> type:
    """`cls` behind the ViewerGate."""
    return type(
        f"Gated{cls.__name__}",
        (ViewerGate, cls),
        {"fresh": fresh, "login_redirect": login_redirect},
    )


# --------------------------------------------------------------------------- handlers


class AppPageHandler(ViewerGate, TornadoVoilaHandler):
    """The app's page: rendered whole (from a preheated kernel), or a clean error page."""

    login_redirect = True

    def should_use_rendered_notebook(  # type: ignore[override]
        self,
        notebook_data: dict[str, Any],
        pool_size: int,
        template_name: str,
        theme: str,
        request_args: dict[str, Any],
    ) -> bool:
        """Take a preheated kernel only when its notebook has finished running.

        Voila 0.5 otherwise hands the viewer the pool's head even while it is still starting
        (the refill after the last viewer) and finishes the run in the viewer's request: viewers
        arriving together then queue one behind the other on the refill. A page that finds no
        finished kernel starts its own, as plain Voila does, and the pool refills beside it.
        """
        if not super().should_use_rendered_notebook(
            notebook_data, pool_size, template_name, theme, request_args
        ):
            return False
        km = self.kernel_manager
        pool = getattr(km, "_pools", {}).get(self.notebook_path) or []
        # a preheated kernel that died is not handed out (the app server replaces it)
        return bool(pool) and _finished(pool[0]) and _alive(km, pool[0].result()["kernel_id"])

    async def get(self, path: str | None = None) -> None:  # type: ignore[override]
        """Render the notebook for this viewer and count the view."""
        server = self.app_server
        if path:
            raise web.HTTPError(404)
        viewer = (self.dsml_viewer or {}).get("name", "")
        # the kernel shutdown beacon and the kernel model request send the hub's xsrf token back
        self.xsrf_token  # noqa: B018 - reading it sets the _xsrf cookie
        started = time.monotonic()
        marker = _PAGE_VIEWER.set(viewer)
        chunks: list[str] = []
        try:
            async for chunk in self.get_generator(path=None):
                chunks.append(chunk)
        except Exception as e:
            log.exception("the app's page failed to render")
            server.reporter.fail(server.tail.last_error or f"{type(e).__name__}: {e}")
            raise web.HTTPError(500) from e
        finally:
            _PAGE_VIEWER.reset(marker)
        page = _CDN_LINK.sub("", "".join(chunks))
        if ERROR_MARKER in page:
            server.failed_render(page)
            raise web.HTTPError(500, "the notebook raised")
        self.finish(page)
        server.reporter.view(viewer, server.version, time.monotonic() - started)


class KernelModelHandler(ViewerGate, web.RequestHandler):
    """GET of the page's own kernel (its widget manager asks for it); nothing else of the API."""

    def get(self, kernel_id: str) -> None:
        """The kernel's id and name, for the viewer it was given to."""
        km = self.app_server.kernel_manager
        if not self.owns_kernel(kernel_id) or kernel_id not in km:
            raise web.HTTPError(404)
        kernel = km.get_kernel(kernel_id)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"id": kernel_id, "name": kernel.kernel_name}))


class ShutdownHandler(ViewerGate, web.RequestHandler):
    """Voila's beacon when the page closes: shut the viewer's own kernel down."""

    async def post(self, kernel_id: str) -> None:
        """Shut down the kernel if it is this viewer's."""
        server = self.app_server
        if not self.owns_kernel(kernel_id) or kernel_id not in server.kernel_manager:
            raise web.HTTPError(404)
        server.kernel_owners.pop(kernel_id, None)
        await server.kernel_manager.shutdown_kernel(kernel_id)
        self.set_status(204)
        self.finish()


def message_type(message: str | bytes, subprotocol: str | None) -> str | None:
    """The msg_type of a message from the browser (JSON or the v1 binary protocol), or None."""
    try:
        if subprotocol == BINARY_PROTOCOL:
            if not isinstance(message, bytes):
                return None
            count = int.from_bytes(message[:8], "little")
            offsets = [
                int.from_bytes(message[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)
            ]
            header = json.loads(message[offsets[1] : offsets[2]])
        else:
            if isinstance(message, bytes):
                # jupyter_server's legacy binary frame (buffers): the JSON message comes first
                count = int.from_bytes(message[:4], "big")
                offsets = [
                    int.from_bytes(message[4 * (i + 1) : 4 * (i + 2)], "big") for i in range(count)
                ]
                message = message[offsets[0] : offsets[1] if len(offsets) > 1 else None]
            header = json.loads(message)["header"]
        kind = header["msg_type"]
        return kind if isinstance(kind, str) else None
    except Exception:
        return None


VIEWER_ERROR = "This app hit an error; its owner has been told."
_ERROR_OR_STDERR = re.compile(rb'"msg_type":\s*"(error|stream)"')


def _split_v1(message: bytes) -> tuple[str, list[bytes]]:
    count = int.from_bytes(message[:8], "little")
    offsets = [int.from_bytes(message[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    channel = message[offsets[0] : offsets[1]].decode()
    return channel, [message[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]


def _clean_content(kind: str, content: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(content for the viewer or None to drop it, the error text for the owner)."""
    if kind == "error":
        text = "\n".join(content.get("traceback") or []) or (
            f"{content.get('ename')}: {content.get('evalue')}"
        )
        clean = {"ename": "Error", "evalue": VIEWER_ERROR, "traceback": [VIEWER_ERROR]}
        return clean, _ANSI.sub("", text).strip()[-4000:]
    if kind == "stream" and content.get("name") == "stderr":
        # warnings and errors printed by callbacks carry paths; Voila strips them from the
        # rendered page too
        log.info("app stderr: %s", str(content.get("text", ""))[:2000].rstrip())
        return None, None
    return content, None


def clean_outgoing(
    message: str | bytes, subprotocol: str | None
) -> tuple[str | bytes | None, str | None]:
    """A kernel message on its way to the viewer, without tracebacks or stderr.

    Returns the message to send (None: drop it) and the error text to give the owner instead.
    """
    raw = message.encode() if isinstance(message, str) else message
    if not _ERROR_OR_STDERR.search(raw[:4096]):
        return message, None
    try:
        if subprotocol == BINARY_PROTOCOL and isinstance(message, bytes):
            from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

            channel, parts = _split_v1(message)
            kind = json.loads(parts[0])["msg_type"]
            content, error = _clean_content(kind, json.loads(parts[3]))
            if content is None:
                return None, error
            parts[3] = json.dumps(content).encode()
            return serialize_msg_to_ws_v1(parts, channel), error
        if isinstance(message, str):
            msg = json.loads(message)
            content, error = _clean_content(msg["header"]["msg_type"], msg.get("content") or {})
            if content is None:
                return None, error
            msg["content"] = content
            return json.dumps(msg), error
    except Exception:
        log.warning("dropped a kernel message that could not be checked", exc_info=True)
        return None, None
    return message, None


class KernelSocketHandler(ViewerGate, VoilaKernelWebsocketHandler):
    """The page's own kernel websocket, filtered to what the page needs."""

    async def get(self, kernel_id: str) -> None:  # type: ignore[override]
        """Open only the viewer's own kernel."""
        if not self.owns_kernel(kernel_id):
            raise web.HTTPError(404)
        await super().get(kernel_id)

    async def open(self, kernel_id: str) -> None:  # type: ignore[override]
        """Count the open page (activity, re-checks)."""
        server = self.app_server
        server.sockets.add(self)
        server.activity.sockets = len(server.sockets)
        await super().open(kernel_id)

    def on_message(self, ws_message: str | bytes) -> None:  # type: ignore[override]
        """Forward only the allowed message types; an execute_request never reaches the kernel."""
        kind = message_type(ws_message, self.selected_subprotocol)
        if kind not in ALLOWED_MESSAGE_TYPES:
            log.warning(
                "refused a %r message from %s's browser (allowed: %s)",
                kind,
                (self.dsml_viewer or {}).get("name"),
                ", ".join(sorted(ALLOWED_MESSAGE_TYPES)),
            )
            return
        self.app_server.activity.touch()
        super().on_message(ws_message)

    def write_message(  # type: ignore[override]
        self, message: str | bytes | dict[str, Any], binary: bool = False
    ) -> Any:
        """Send kernel messages on, with errors cleaned (the owner gets the error text)."""
        if isinstance(message, str | bytes):
            cleaned, error = clean_outgoing(message, self.selected_subprotocol)
            if error:
                log.error("the notebook raised in a widget callback: %s", error.splitlines()[-1:])
                self.app_server.reporter.fail(error)
            if cleaned is None:
                return None
            message = cleaned
        return super().write_message(message, binary)

    def on_close(self) -> None:
        """Forget the page."""
        server = self.app_server
        server.sockets.discard(self)
        server.activity.sockets = len(server.sockets)
        super().on_close()


class RequestInfoHandler(ViewerGate, RequestInfoSocketHandler):
    """Voila's request-info socket (preheated kernels), for the viewer's own kernel only."""

    async def get(self, kernel_id: str) -> None:  # type: ignore[override]
        """Open only for the viewer's own kernel."""
        if not self.owns_kernel(kernel_id):
            raise web.HTTPError(404)
        await super().get(kernel_id)


class NotFoundHandler(ViewerGate, web.RequestHandler):
    """Everything else under the prefix: contents, sessions, terminals, tree, other files."""

    def get(self, *args: Any) -> None:
        """404 for a viewer (the gate already refused anyone else)."""
        raise web.HTTPError(404)

    post = put = patch = delete = get


# --------------------------------------------------------------------------- the server


class AppServer(Voila):
    """Voila serving one notebook behind the hub, with only the handlers an app page needs."""

    def setup_app(
        self,
        *,
        hub_auth: HubOAuth,
        title: str,
        version: int | None,
        reporter: Reporter,
        activity: Activity,
        tail: LogTail,
    ) -> None:
        """Give the server what it needs besides Voila's own config."""
        self.hub_auth = hub_auth
        self.title = title
        self.version = version
        self.reporter = reporter
        self.activity = activity
        self.tail = tail
        self.sockets: set[KernelSocketHandler] = set()
        self.kernel_owners: dict[str, str] = {}

    def init_settings(self) -> dict[str, Any]:  # type: ignore[override]
        """Voila's settings with our message filter, kernel ownership and the gate."""
        settings = super().init_settings()
        km = self.kernel_manager
        # jupyter_server's websocket connection drops other types too (both protocols); Voila's
        # own list also lets shutdown_request through, which a viewer has no business sending
        km.allowed_message_types = sorted(ALLOWED_MESSAGE_TYPES)
        self._track_kernel_owners(km)
        settings["dsml_app_server"] = self
        settings["log_function"] = log_request
        settings["login_url"] = self.hub_auth.login_url
        return settings

    def _track_kernel_owners(self, km: Any) -> None:
        """Remember which viewer's page each kernel went to (for its websocket and model)."""
        owners = self.kernel_owners

        if hasattr(km, "get_rendered_notebook"):
            get_rendered = km.get_rendered_notebook

            async def get_rendered_notebook(*args: Any, **kwargs: Any) -> Any:
                result = await get_rendered(*args, **kwargs)
                owners[result[2]] = _PAGE_VIEWER.get() or ""
                return result

            km.get_rendered_notebook = get_rendered_notebook

        start = km.start_kernel

        async def start_kernel(*args: Any, **kwargs: Any) -> str:
            # the pool refills through the class's method, so only a page's own start lands here
            kernel_id = await start(*args, **kwargs)
            viewer = _PAGE_VIEWER.get()
            if viewer is not None:
                owners[kernel_id] = viewer
                self._watch_kernel(kernel_id)
            return kernel_id

        km.start_kernel = start_kernel

        initialize = getattr(km, "_initialize", None)
        if initialize is not None:

            async def _initialize(*args: Any, **kwargs: Any) -> Any:
                # a pool entry: its kernel started and its notebook runs
                content = await initialize(*args, **kwargs)
                if isinstance(content, dict) and content.get("kernel_id"):
                    self._watch_kernel(content["kernel_id"])
                return content

            km._initialize = _initialize

    def _watch_kernel(self, kernel_id: str) -> None:
        """Replace the kernel if it dies: jupyter_client restarts it empty (no notebook run, no
        widgets), so a preheated one would hand the next viewer a page that never answers."""
        km = self.kernel_manager

        def died() -> None:
            log.warning("kernel %s died; it is shut down and the pool refilled", kernel_id)
            with contextlib.suppress(KeyError):
                km.get_kernel(kernel_id).dsml_died = True  # never handed out again
            self.kernel_owners.pop(kernel_id, None)
            _background(self._replace_kernel(kernel_id))

        km.add_restart_callback(kernel_id, died, "restart")

    async def _replace_kernel(self, kernel_id: str) -> None:
        """Shut a restarted (empty) kernel down and refill the preheated pool."""
        km = self.kernel_manager
        if kernel_id in km:
            await km.shutdown_kernel(kernel_id)  # Voila's drops it from its pool too
        for notebook in list(getattr(km, "_pools", {})):
            km.fill_if_needed(delay=0, notebook_name=notebook)

    def init_handlers(self) -> list[Any]:  # type: ignore[override]
        """Only the page, its assets, its kernel's model and websocket, and the OAuth callback."""
        prefix = self.server_url
        kid = r"(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)"
        notebook = os.path.relpath(self.notebook_path, self.root_dir)
        handlers: list[Any] = [
            (prefix, AppPageHandler, self._page_kwargs(notebook)),
            (prefix.rstrip("/") or "/", web.RedirectHandler, {"url": prefix}),
            (
                url_path_join(prefix, "oauth_callback"),
                OAuthCallbackHandler,
                {"hub_auth": self.hub_auth},
            ),
            (url_path_join(prefix, rf"api/kernels/{kid}"), KernelModelHandler),
            (url_path_join(prefix, rf"api/kernels/{kid}/channels"), KernelSocketHandler),
            (url_path_join(prefix, rf"voila/api/shutdown/{kid}"), ShutdownHandler),
            (
                url_path_join(prefix, r"voila/templates/(.*)"),
                gated(TemplateStaticFileHandler, fresh=False),
            ),
            (
                url_path_join(prefix, r"voila/static/(.*)"),
                gated(MultiStaticFileHandler, fresh=False),
                {"paths": self.static_paths, "default_filename": "index.html"},
            ),
            (
                url_path_join(prefix, r"voila/api/themes/(.*)"),
                gated(ThemesHandler, fresh=False),
                {
                    "themes_url": "/voila/api/themes",
                    "path": self.themes_dir,
                    "labextensions_path": get_voila_labextensions_path(
                        self.voila_configuration.extra_labextensions_path
                    ),
                    "no_cache_paths": ["/"],
                },
            ),
            (
                url_path_join(prefix, r"voila/labextensions/(.*)"),
                gated(FileFindHandler, fresh=False),
                {"path": self.labextensions_path, "no_cache_paths": ["/"]},
            ),
            (
                # images next to the notebook that its markdown shows (Voila's allowlist)
                url_path_join(prefix, r"voila/files/(.*)"),
                gated(AllowListFileHandler),
                {
                    "allowlist": self.voila_configuration.file_allowlist,
                    "denylist": self.voila_configuration.file_denylist,
                    "path": self.root_dir,
                },
            ),
        ]
        if self.voila_configuration.preheat_kernel:
            handlers.append((url_path_join(prefix, rf"voila/query/{kid}"), RequestInfoHandler))
        handlers.append((url_path_join(prefix, r"(.*)"), NotFoundHandler))
        return handlers

    def _page_kwargs(self, notebook: str) -> dict[str, Any]:
        return {
            "notebook_path": notebook,
            "template_paths": self.template_paths,
            "config": self.config,
            "voila_configuration": self.voila_configuration,
        }

    def failed_render(self, page: str) -> None:
        """A render hit a notebook error: tell the owner, free the kernel the page was given."""
        error = self.tail.last_error or "a cell of the notebook raised an error"
        log.error("the notebook raised while rendering the app: %s", error.splitlines()[-1:])
        self.reporter.fail(error)
        found = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', page)
        if found and found.group(1) in self.kernel_manager:
            self.kernel_owners.pop(found.group(1), None)
            _background(self.kernel_manager.shutdown_kernel(found.group(1)))

    async def recheck_sockets(self) -> None:
        """Close the websockets of viewers who lost access (a revoked share)."""
        for socket in list(self.sockets):
            token = getattr(socket, "dsml_token", None)
            user = None
            if token:
                try:
                    user = await self.hub_auth.user_for_token(token, use_cache=False, sync=False)
                except Exception as e:
                    log.warning("could not re-check a viewer with the hub: %s", e)
                    continue
            if not user or not self.hub_auth.check_scopes(self.hub_auth.access_scopes, user):
                log.info("closing the page of a viewer who lost access")
                socket.close(4403, "access to this app was revoked")
                self.sockets.discard(socket)
                # the page's shutdown beacon will be refused now: free its kernel here
                kernel_id = getattr(socket, "kernel_id", None)
                if kernel_id and self.kernel_owners.pop(kernel_id, None) is not None:
                    if kernel_id in self.kernel_manager:
                        _background(self.kernel_manager.shutdown_kernel(kernel_id))
        self.activity.sockets = len(self.sockets)
        # kernels culled or gone otherwise: forget who they were given to
        for kernel_id in [k for k in self.kernel_owners if k not in self.kernel_manager]:
            self.kernel_owners.pop(kernel_id, None)

    def listen(self) -> None:
        """Start the periodic jobs, then listen on the one port the hub gave (no retries)."""
        for job, seconds in (
            (self.recheck_sockets, RECHECK_SECONDS),
            (self.activity.tick, ACTIVITY_SECONDS),
            (self.reporter.flush, EVENTS_SECONDS),
        ):
            PeriodicCallback(job, seconds * 1000).start()
        super().listen()


# --------------------------------------------------------------------------- main


def _service_address() -> tuple[str, int, str]:
    """Host, port and URL prefix from JupyterHub's environment."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    if not prefix.endswith("/"):
        prefix += "/"
    url = os.environ.get("JUPYTERHUB_SERVICE_URL", "")
    if not url:
        raise AppServerError("JUPYTERHUB_SERVICE_URL is not set: the hub spawns this server")
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return ("" if host in {"0.0.0.0", "::"} else host), port, prefix


def _title(args: argparse.Namespace, nb: dict[str, Any]) -> str:
    if args.title:
        return str(args.title)
    title = (nb.get("metadata") or {}).get("title")
    return str(title) if isinstance(title, str) and title.strip() else (args.slug or "App")


def build_server(
    args: argparse.Namespace, token: str, tail: LogTail, reporter: Reporter
) -> AppServer:
    """Fetch or copy the bundle, then configure (not start) the Voila app server."""
    if not token:
        raise AppServerError("JUPYTERHUB_API_TOKEN is not set: the hub spawns this server")
    host, port, prefix = _service_address()
    # mode 0700: this account only; the bundle in app/, kernel connection files beside it
    base = Path(tempfile.mkdtemp(prefix="dsml-app-"))
    workdir = base / "app"
    workdir.mkdir(mode=0o700)
    info = {"version": os.environ.get("DSML_APP_VERSION", ""), "kernel": ""}
    if args.bundle_dir:
        copy_bundle_dir(Path(args.bundle_dir), workdir)
    else:
        if not (args.apps_url and args.slug):
            raise AppServerError(
                "DSML_APPS_URL and DSML_APP_SLUG must be set (or give --bundle-dir)"
            )
        info = fetch_bundle(args.apps_url, args.slug, token, workdir)
    notebook = workdir / "notebook.ipynb"
    if not notebook.is_file():
        raise AppServerError("the bundle holds no notebook.ipynb")
    nb, labextensions = set_kernel(notebook, args.kernel_name or info["kernel"])
    version = int(info["version"]) if str(info["version"]).isdigit() else None

    c = Config()
    c.Voila.config_file_paths = []  # no voila.py from the account's home or cwd
    c.Voila.notebook_path = str(notebook)
    c.Voila.root_dir = str(workdir)
    c.Voila.ip = host
    c.Voila.port = port
    c.Voila.port_retries = 0
    c.Voila.base_url = prefix
    c.Voila.open_browser = False
    c.Voila.connection_dir_root = str(base)
    c.VoilaConfiguration.strip_sources = True
    c.VoilaConfiguration.show_tracebacks = False
    c.VoilaConfiguration.preheat_kernel = args.pool_size > 0
    c.VoilaConfiguration.default_pool_size = args.pool_size
    c.VoilaConfiguration.allow_template_override = "NO"
    c.VoilaConfiguration.allow_theme_override = "NO"
    c.VoilaConfiguration.extra_labextensions_path = labextensions
    c.VoilaConfiguration.page_config_hook = page_config_hook
    c.VoilaExecutor.cell_error_instruction = ERROR_MARKER
    c.VoilaExecutor.cell_timeout_instruction = ERROR_MARKER
    # a viewer who closed the page without the beacon leaves an idle kernel: shut it down
    c.MappingKernelManager.cull_idle_timeout = args.cull_idle_seconds
    c.MappingKernelManager.cull_interval = 60
    c.Voila.identity_provider_class = GateIdentity
    # kernels talk over unix sockets in the private folder, not loopback TCP ports that any
    # local account could connect to. No shared `ip` prefix: jupyter_client numbers a prefix's
    # sockets by the files already there, so kernels started together would take the same
    # sockets; each kernel's prefix is its own connection file's name (0700 folder below base)
    c.KernelManager.transport = "ipc"
    c.AsyncKernelManager.client_class = STEADY_KERNEL_CLIENT

    server = AppServer(config=c)
    server.workdir = base
    hub_auth = AppHubOAuth(parent=server, api_token=token, cache_max_age=AUTH_CACHE_SECONDS)
    activity = Activity(
        os.environ.get("JUPYTERHUB_ACTIVITY_URL", ""),
        token,
        os.environ.get("JUPYTERHUB_SERVER_NAME", ""),
        args.always_on,
    )
    server.setup_app(
        hub_auth=hub_auth,
        title=_title(args, nb),
        version=version,
        reporter=reporter,
        activity=activity,
        tail=tail,
    )
    server.initialize(argv=[])
    server.log.addHandler(tail)
    log.info(
        "serving %s (version %s, kernel %s, %d preheated) at %s:%s%s",
        args.slug or args.bundle_dir,
        version,
        nb["metadata"]["kernelspec"]["name"],
        args.pool_size,
        host or "*",
        port,
        prefix,
    )
    return server


def main(argv: list[str] | None = None) -> None:
    """Run the app server; a start-up failure is reported to the apps service, exit status 1."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s"
    )
    tail = LogTail()
    logging.getLogger().addHandler(tail)
    token = os.environ.get("JUPYTERHUB_API_TOKEN") or os.environ.get("JPY_API_TOKEN", "")
    # the notebook's kernels inherit this environment: they must not hold the owner's token
    # (the app's own code would act as the owner for whoever views it)
    for name in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"):
        os.environ.pop(name, None)
    reporter = Reporter(args.apps_url, args.slug, token, tail)
    server = None
    try:
        server = build_server(args, token, tail, reporter)
        server.start()
    except KeyboardInterrupt:
        pass
    except BaseException as e:
        if isinstance(e, SystemExit) and not e.code:
            raise
        message = str(e) if isinstance(e, AppServerError) else f"{type(e).__name__}: {e}"
        log.error(
            "the app server failed to start: %s",
            message,
            exc_info=not isinstance(e, AppServerError),
        )
        reporter.fail(f"the app server failed to start: {message}")
        reporter.post_now()
        sys.exit(1)
    finally:
        if server is not None:
            shutil.rmtree(server.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
