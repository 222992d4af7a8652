"""`dsml check` for the notebook open in JupyterLab: a Jupyter server extension.

`GET <base_url>dsml/api/check?path=<notebook path relative to the server root>` reads the
notebook through the server's contents manager and checks its imports and installs against a
curated environment, as `dsml check` does, off the event loop. The environment is, in order:
`env=NAME` (like `--env`, must be a curated environment), the kernel the notebook runs now
(`kernel=dsml-NAME`, sent by the JupyterLab status bar item, so a kernel change is checked
before the notebook is saved), the notebook's kernelspec, else the settings'
`spawner.default_environment`.

The answer is JSON: `{path, environment, version, supported, counts, findings, ...}`; every
finding is one of `dsml check --json`'s, with `problem` and a one-line `message` (empty for a
satisfied request). Errors are JSON `{status, message}`: 400 for a missing or non-notebook
path, 404 for a notebook that is not there.

The user servers load it with `--ServerApp.jpserver_extensions=dsml.lab.check=True` and find the
platform's settings through `--DsmlCheck.settings_file` (see `dsml.hub.spawner`).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async, url_path_join
from tornado import web
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from dsml import kernels
from dsml.exceptions import DsmlError

ROUTE = "dsml/api/check"
"""Where the endpoint answers, under the server's base URL."""


class CheckRequestError(DsmlError):
    """A check request the endpoint cannot answer; `status` is its HTTP code."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class DsmlCheck(LoggingConfigurable):
    """Checks notebooks against the platform's curated environments (settings read once)."""

    settings_file = Unicode(
        config=True,
        help="Path of the platform settings file (YAML or the JSON `dsml up` resolves); "
        "empty means hub_config/settings.yaml.",
    )

    @default("settings_file")
    def _default_settings_file(self) -> str:
        return os.environ.get("DSML_SETTINGS_JSON") or os.environ.get("DSML_SETTINGS") or ""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._settings: dict[str, Any] | None = None

    def settings(self) -> dict[str, Any]:
        """The validated platform settings, read on first use (validation is slow to import)."""
        with self._lock:
            if self._settings is None:
                from dsml import settings as settings_mod

                self._settings = settings_mod.load(self.settings_file or None)
            return self._settings

    def check_notebook(
        self,
        nb: dict[str, Any],
        path: str,
        folder: Path,
        env: str | None = None,
        kernel: str | None = None,
    ) -> dict[str, Any]:
        """Check one notebook's requests; blocking (reads environment inventories).

        `nb` is the notebook JSON, `path` its API path (shown in findings), `folder` the folder
        it is in on disk (imports of modules next to it are the user's own).
        """
        from dsml.datadir import DataDir
        from dsml.environments import checker
        from dsml.environments.checker import describe
        from dsml.environments.spec import find_environment

        settings = self.settings()
        names = list(settings["environments"])
        if env is not None and env not in names:
            raise CheckRequestError(
                400,
                f"env={env!r} is not a curated environment of this platform; "
                f"expected one of: {', '.join(names)}",
            )
        source = checker.Source(folder / Path(path).name, path, "notebook")
        requests = notebook_requests(nb, source)
        kernel_env = kernels.notebook_environment(nb)
        running = kernels.environment_of(kernel)
        if env is not None:
            target, origin = env, "request"
        elif running in names:
            target, origin = running, "kernel"
        elif kernel_env in names:
            target, origin = kernel_env, "kernelspec"
        else:
            target, origin = settings["spawner"]["default_environment"], "settings"

        wanted = names + ([target] if target not in names else [])
        environments = [find_environment(name) for name in wanted]
        datadir = DataDir(settings["data_dir"], settings.get("environments_dir"))
        views = {v.name: v for v in checker.environment_views(environments, datadir)}
        display_names = {e.name: e.display_name for e in environments}
        view = views[target]
        findings = checker.check(requests, view, list(views.values()))
        ranking = checker.rank(requests, list(views.values()), prefer=target)

        problems = [f for f in findings if f.problem]
        optional_missing = [f for f in findings if f.optional and f.status not in checker.SATISFIED]
        return {
            "path": path,
            "environment": target,
            "display_name": view.env.display_name,
            "version": view.env.version,
            "built": view.built,
            "environment_from": origin,
            "kernel_environment": kernel_env,
            "supported": not problems,
            "counts": {
                "checked": len(findings),
                "supported": len(findings) - len(problems) - len(optional_missing),
                "problems": len(problems),
                "optional_missing": len(optional_missing),
                "by_status": dict(sorted(Counter(f.status for f in findings).items())),
            },
            "findings": [_finding_json(f, display_names, describe) for f in findings],
            "best_fit": ranking[0].to_json() if ranking else None,
        }


def _finding_json(finding: Any, display_names: dict[str, str], describe: Any) -> dict[str, Any]:
    """A finding as `dsml check --json` has it, plus `problem` and the CLI's one-line message."""
    from dsml.environments.checker import SATISFIED

    data = finding.to_json()
    data["problem"] = finding.problem
    message = ""
    if finding.status not in SATISFIED:
        message = describe(finding, display_names)
        # the cell and line are fields of their own; keep the message to what and why
        where = f"{finding.file}" + (f" cell {finding.cell}" if finding.cell is not None else "")
        message = message.removeprefix(f"{where} line {finding.line}: ")
    data["message"] = message
    return data


def notebook_requests(nb: dict[str, Any], source: Any) -> list[Any]:
    """The requests of a notebook already read (by the contents manager), cell by cell.

    Raises CheckRequestError(400) when the JSON is not an nbformat 4 notebook with text cells.
    """
    from dsml.environments import checker

    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise CheckRequestError(400, f"{source.display}: not a notebook (no list of cells)")
    requests: list[Any] = []
    for index, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        text = cell.get("source", "")
        if isinstance(text, list):
            text = "".join(str(part) for part in text)
        if not isinstance(text, str):
            raise CheckRequestError(400, f"{source.display}: cell {index} has no text source")
        requests.extend(checker._code_requests(text, source, index, tolerant=True))
    return requests


class CheckHandler(APIHandler):
    """`GET dsml/api/check?path=...[&env=NAME][&kernel=dsml-NAME]`: check one notebook."""

    auth_resource = "contents"  # it reads a file, as GET /api/contents does

    def initialize(self, checker: DsmlCheck) -> None:
        """Keep the extension's checker."""
        self.checker = checker

    def _error(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status, "message": message}))

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Read the notebook through the contents manager and check it off the event loop."""
        path = self.get_query_argument("path", "").strip().strip("/")
        env = self.get_query_argument("env", None) or None
        kernel = self.get_query_argument("kernel", None) or None
        if not path:
            return self._error(400, "path is required: ?path=<notebook path from the server root>")
        if not path.endswith(".ipynb"):
            return self._error(400, f"{path}: not a notebook; expected the path of a .ipynb file")
        cm = self.contents_manager
        try:
            model = await ensure_async(cm.get(path, content=True, type="notebook"))
        except web.HTTPError as e:
            status = e.status_code if e.status_code in (400, 403, 404) else 400
            message = e.log_message % e.args if e.args else (e.log_message or e.reason or "")
            if status == 404:
                message = f"{path}: no such notebook on this server"
            return self._error(status, message or f"{path}: cannot be read as a notebook")
        folder = Path(cm.root_dir, path).parent
        try:
            result = await asyncio.to_thread(
                self.checker.check_notebook, model["content"], path, folder, env, kernel
            )
        except CheckRequestError as e:
            return self._error(e.status, str(e))
        except DsmlError as e:  # settings or environment folders that cannot be read
            self.log.error("dsml check of %s failed: %s", path, e)
            return self._error(500, f"the platform cannot check notebooks right now: {e}")
        self.finish(json.dumps(result))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """This module is a Jupyter server extension."""
    return [{"module": "dsml.lab.check"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Add the check endpoint to the server."""
    checker = DsmlCheck(parent=serverapp)
    route = url_path_join(serverapp.web_app.settings["base_url"], ROUTE)
    serverapp.web_app.add_handlers(".*$", [(route, CheckHandler, {"checker": checker})])
    serverapp.log.info("dsml.lab.check: notebook environment check at %s", route)
