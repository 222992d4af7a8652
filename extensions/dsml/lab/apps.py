"""Publish the notebook open in JupyterLab as an app: a Jupyter server extension.

JupyterLab's "Publish as app…" dialog (`@dsml/env-check`'s publish plugin) calls, under the
server's base URL:

* `GET dsml/api/apps/environments[?path=<notebook>][&kernel=<running kernel>]` ->
  `{"environments": [{name, display_name, version, kernel}...], "default": name | null}`: the
  curated environments (as the scheduler service lists them) and the one the dialog pre-selects
  (the kernel the notebook runs now, else its saved kernelspec's);
* `GET dsml/api/apps/for?path=<notebook>` -> `{"app": <App>, "version": <current Version>,
  "latest_version": n}` for the caller's own app last published from that notebook path (so
  re-publishing makes a new version of it), or `null`;
* `POST dsml/api/apps/publish` `{"path", "title", "description", "environment",
  "share_users": [...], "share_groups": [...], "everyone": bool, "slug"?}` -> the apps
  service's answer (`{app, version, url}`, 201).

Publishing reads the saved notebook through the contents manager and the files it names next to
it (relative paths written as string literals in its code cells, e.g.
`pd.read_csv("data/sales.csv")`, that are files under the notebook's folder), within
`MAX_FILES` files and `MAX_BYTES` bytes (413 beyond), and posts them to the apps service
(`$DSML_HUB_URL/services/apps/api/apps`) with this server's own `$JUPYTERHUB_API_TOKEN`, i.e. as
the server's owner. The service's errors come back with its status and message.

User servers load it with `--ServerApp.jpserver_extensions=dsml.lab.apps=True`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import posixpath
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async, url_path_join
from tornado import web

from dsml import kernels
from dsml.client import APPS, SCHEDULER, AsyncClient, service_api
from dsml.exceptions import DsmlError
from dsml.notebooks import files_named_by

ROUTE = "dsml/api/apps"
"""Where the endpoints answer, under the server's base URL."""

MAX_FILES = 20
"""Most files next to the notebook one app version takes along."""

MAX_BYTES = 20 * 1024 * 1024
"""Most bytes those files may hold together (20 MiB)."""

MAX_APPS = 200
"""Most of the caller's own apps looked through to find the one of a notebook."""


class PublishError(DsmlError):
    """A request the endpoints refuse, or an answer of a service; `status` is its HTTP code."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ServiceClient(AsyncClient):
    """A platform service's API, called with this server's token (as the server's owner)."""

    def __init__(self, service: str, timeout: float = 120.0):
        self.service = service
        self.hub_url = os.environ.get("DSML_HUB_URL", "").rstrip("/")
        self.token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        super().__init__(self.hub_url + service_api(service), self.token, timeout=timeout)

    def error(self, status: int, message: str, call: str = "") -> Exception:
        """The service's status and its own message, as the dialog shows it."""
        return PublishError(status, message)

    def _client(self):  # type: ignore[no-untyped-def]
        if not self.hub_url:
            raise PublishError(
                503,
                f"DSML_HUB_URL is not set in this server's environment, so the {self.service} "
                "service cannot be found: start the server from the hub, which sets it",
            )
        if not self.token:
            raise PublishError(
                503,
                "JUPYTERHUB_API_TOKEN is not set in this server's environment: start the server "
                "from the hub",
            )
        return super()._client()


# the files a notebook names


def named_files(
    nb: dict[str, Any],
    folder: str,
    notebook_name: str,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
) -> dict[str, bytes]:
    """The files under `folder` the notebook's code names, by relative POSIX path, read.

    The rule is `dsml.notebooks.files_named_by`, the same as `dsml publish`'s; beyond a limit
    it is a PublishError 413 naming the count or size and the limit.
    """
    try:
        found = files_named_by(nb, Path(folder), max_files, max_bytes)
    except DsmlError as e:
        raise PublishError(413, f"{notebook_name}: {e}") from None
    found.pop(notebook_name, None)
    return {rel: path.read_bytes() for rel, path in found.items()}


# the service calls


async def curated_environments() -> list[dict[str, Any]]:
    """The curated environments, as the scheduler service lists them (the platform's list)."""
    async with ServiceClient(SCHEDULER, timeout=30.0) as client:
        body = await client.call("GET", "environments")
    return [
        {key: env.get(key) for key in ("name", "display_name", "version", "kernel", "description")}
        for env in body["environments"]
    ]


async def _own_apps(client: ServiceClient) -> list[dict[str, Any]]:
    apps: list[dict[str, Any]] = []
    params = {"owned": "1"}
    while len(apps) < MAX_APPS:
        page = await client.call("GET", "apps", params=params)
        apps.extend(page.get("apps") or [])
        cursor = page.get("next_cursor")
        if not cursor:
            break
        params = {"owned": "1", "cursor": str(cursor)}
    return apps[:MAX_APPS]


async def app_for_notebook(path: str) -> dict[str, Any] | None:
    """The caller's own app whose current version was published from `path`, or None.

    If several are, the one updated last. `latest_version` is the highest version number (a
    rolled back app's next version follows its newest, not its current one).
    """
    async with ServiceClient(APPS) as client:
        apps = await _own_apps(client)

        async def versions(app: dict[str, Any]) -> list[dict[str, Any]]:
            body = await client.call("GET", f"apps/{app['slug']}/versions")
            return body.get("versions") or []

        listed = await asyncio.gather(*(versions(app) for app in apps))
    found = []
    for app, app_versions in zip(apps, listed, strict=True):
        current = next(
            (v for v in app_versions if v.get("version") == app.get("current_version")), None
        )
        if current is not None and (current.get("notebook_path") or "").strip("/") == path:
            latest = max(int(v.get("version") or 0) for v in app_versions)
            found.append({"app": app, "version": current, "latest_version": latest})
    found.sort(key=lambda f: str(f["app"].get("updated") or ""), reverse=True)
    return found[0] if found else None


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PublishError(400, f'{key} must be a list of names, e.g. ["ana", "ben"]')
    return [v.strip() for v in value if v.strip()]


def publish_body(request: dict[str, Any], nb: dict[str, Any], files: dict[str, bytes]) -> dict:
    """The apps service's publish body for the dialog's request, the notebook and its files."""
    body: dict[str, Any] = {
        "notebook": nb,
        "notebook_path": request["path"],
        "title": request["title"],
        "share": {
            "users": _strings(request, "share_users"),
            "groups": _strings(request, "share_groups"),
            "everyone": bool(request.get("everyone")),
        },
    }
    if files:
        body["files"] = {p: base64.b64encode(data).decode("ascii") for p, data in files.items()}
    for key in ("description", "environment", "slug"):
        value = request.get(key)
        if value is not None and not isinstance(value, str):
            raise PublishError(400, f"{key} must be text, not {type(value).__name__}")
        if value and value.strip():
            body[key] = value.strip()
    return body


# the handlers


def _notebook_path(value: str | None) -> str:
    path = (value or "").strip().strip("/")
    if not path:
        raise PublishError(400, "path is required: the notebook's path from the server root")
    if not path.endswith(".ipynb"):
        raise PublishError(400, f"{path}: not a notebook; expected the path of a .ipynb file")
    return path


class AppsHandler(APIHandler):
    """What the three endpoints share: JSON errors with a status and a one-line message."""

    auth_resource = "contents"  # they read the user's notebooks, as GET /api/contents does

    def reply_error(self, status: int, message: str) -> None:
        """Answer `{"status", "message"}` with that status."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status, "message": message}))

    async def read_notebook(self, path: str) -> dict[str, Any]:
        """The saved notebook at `path`, through the contents manager (its root, its rules)."""
        try:
            model = await ensure_async(
                self.contents_manager.get(path, content=True, type="notebook")
            )
        except web.HTTPError as e:
            if e.status_code == 404:
                raise PublishError(404, f"{path}: no such notebook on this server") from None
            message = e.log_message % e.args if e.args else (e.log_message or e.reason or "")
            raise PublishError(
                e.status_code if e.status_code in (400, 403) else 400,
                message or f"{path}: cannot be read as a notebook",
            ) from None
        return model["content"]


class EnvironmentsHandler(AppsHandler):
    """`GET dsml/api/apps/environments[?path=...][&kernel=...]`: what the dialog offers."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The curated environments and the notebook's own one."""
        path = self.get_query_argument("path", "").strip().strip("/")
        kernel = self.get_query_argument("kernel", None)
        try:
            environments = await curated_environments()
            names = [env["name"] for env in environments]
            default = kernels.environment_of(kernel)
            if default not in names and path.endswith(".ipynb"):
                try:
                    default = kernels.notebook_environment(await self.read_notebook(path))
                except PublishError:
                    default = None  # a hint only: the list is still worth showing
            self.finish(
                json.dumps(
                    {"environments": environments, "default": default if default in names else None}
                )
            )
        except PublishError as e:
            self.reply_error(e.status, e.message)


class ForHandler(AppsHandler):
    """`GET dsml/api/apps/for?path=...`: the caller's app of that notebook, or null."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Ask the apps service for the caller's own apps and match the notebook path."""
        try:
            path = _notebook_path(self.get_query_argument("path", None))
            self.finish(json.dumps(await app_for_notebook(path)))
        except PublishError as e:
            self.reply_error(e.status, e.message)


class PublishHandler(AppsHandler):
    """`POST dsml/api/apps/publish`: publish the saved notebook and the files it names."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Read the notebook and its files, post them to the apps service, return its answer."""
        try:
            try:
                request = json.loads(self.request.body or b"{}")
            except ValueError:
                raise PublishError(400, 'the body must be JSON: {"path", "title", ...}') from None
            if not isinstance(request, dict):
                raise PublishError(400, 'the body must be a JSON object: {"path", "title", ...}')
            path = _notebook_path(request.get("path"))
            title = request.get("title")
            if not isinstance(title, str) or not title.strip():
                raise PublishError(400, "title is required: the app's name people see")
            request = {**request, "path": path, "title": title.strip()}
            nb = await self.read_notebook(path)
            cm = self.contents_manager
            folder = os.path.dirname(os.path.join(os.path.abspath(cm.root_dir), path))
            files = await asyncio.to_thread(
                named_files,
                nb,
                folder,
                posixpath.basename(path),
            )
            body = publish_body(request, json.loads(json.dumps(nb)), files)
            async with ServiceClient(APPS) as client:
                response = await client.request("POST", "apps", body)
            self.set_status(response.status_code)
            self.set_header("Content-Type", "application/json")
            self.finish(response.content)
            self.log.info(
                "dsml.lab.apps: published %s (%d files) as %s",
                path,
                len(files),
                (response.json().get("app") or {}).get("slug"),
            )
        except PublishError as e:
            self.reply_error(e.status, e.message)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """This module is a Jupyter server extension."""
    return [{"module": "dsml.lab.apps"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Add the publish endpoints to the server."""
    base = url_path_join(serverapp.web_app.settings["base_url"], ROUTE)
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "environments"), EnvironmentsHandler),
            (url_path_join(base, "for"), ForHandler),
            (url_path_join(base, "publish"), PublishHandler),
        ],
    )
    serverapp.log.info("dsml.lab.apps: publish notebooks as apps at %s", base)
