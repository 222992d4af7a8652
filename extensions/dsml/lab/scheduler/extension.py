"""jupyter-scheduler's server extension with handlers that pass the service's status through.

jupyter-scheduler's own handlers answer every error with 500; ours keep the service's 4xx and
its message, so the browser shows what was wrong. The environment listing puts the environment
of the notebook the page shows first, because the Create Job dialog pre-selects the first one.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_scheduler.environments import EnvironmentManager, EnvironmentRetrievalError
from jupyter_scheduler.exceptions import InputUriError
from jupyter_scheduler.extension import SchedulerApp
from jupyter_scheduler.handlers import RuntimeEnvironmentsHandler
from jupyter_scheduler.job_files_manager import JobFilesManager
from jupyter_scheduler.pydantic_v1 import ValidationError
from jupyter_scheduler.scheduler import BaseScheduler
from jupyter_server.utils import ensure_async
from tornado.web import HTTPError, authenticated
from traitlets import Type, default

from dsml.kernels import notebook_environment
from dsml.lab.scheduler.backend import (
    DsmlEnvironmentManager,
    DsmlJobFilesManager,
    DsmlScheduler,
    ServiceClient,
)
from dsml.lab.scheduler.mapping import (
    ServiceError,
    page_path,
)

FOLDER_NOTEBOOKS = 20
"""Most notebooks of a folder read to find the environment they share."""

NOTEBOOK_BYTES = 5 * 1024 * 1024
"""Notebooks larger than this (bytes) are not read for a hint."""


def _client_error(error: BaseException) -> HTTPError | None:
    """The 4xx an error behind one of jupyter-scheduler's 500s should have been, if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ServiceError):
            return HTTPError(seen.status, seen.message)
        if isinstance(seen, ValidationError | InputUriError):
            return HTTPError(400, str(seen))
        seen = seen.__cause__
    return None


class ServiceStatusMixin:
    """For jupyter-scheduler's handlers, which answer every exception with 500."""

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """Answer with the service's status and message (or 400 for an invalid request)."""
        exc_info = kwargs.get("exc_info")
        if exc_info and exc_info[1] is not None:
            error = _client_error(exc_info[1])
            if error is not None:
                status_code = error.status_code
                kwargs["exc_info"] = (HTTPError, error, exc_info[2])
        super().send_error(status_code, **kwargs)  # type: ignore[misc]


async def page_environment(contents_manager: Any, path: str) -> str | None:
    """The curated environment of the page's notebook, or the one its folder's notebooks share.

    Read through the server's contents manager, as this server's user, within its root and
    hidden-file rules. Right-clicking a notebook in the file browser leaves the folder in the
    page's URL, not the file: a folder whose notebooks name different environments gives none.
    """
    model = await ensure_async(contents_manager.get(path, content=False))
    if model["type"] == "notebook":
        candidates = [model]
    elif model["type"] == "directory":
        listing = await ensure_async(contents_manager.get(path, content=True, type="directory"))
        candidates = [child for child in listing["content"] if child["type"] == "notebook"]
        candidates = candidates[:FOLDER_NOTEBOOKS]
    else:
        return None
    found = set()
    for candidate in candidates:
        if (candidate.get("size") or 0) > NOTEBOOK_BYTES:
            continue
        notebook = await ensure_async(
            contents_manager.get(candidate["path"], content=True, type="file", format="text")
        )
        try:
            found.add(notebook_environment(json.loads(notebook["content"])))
        except ValueError:
            continue
    found.discard(None)
    return found.pop() if len(found) == 1 else None


class DsmlRuntimeEnvironmentsHandler(RuntimeEnvironmentsHandler):
    """jupyter-scheduler's environment listing, the page's notebook's environment first.

    The Create Job dialog asks for the list without saying which notebook it is for and
    pre-selects the first environment; the page it runs in (its URL, sent as the Referer) is
    the one hint of the notebook, best effort: a page whose URL shows no notebook or folder
    (a restored workspace) gets the service's order.
    """

    @authenticated
    async def get(self) -> None:
        """The curated environments with their output formats, as jupyter-scheduler lists them."""
        manager = self.environments_manager
        first = None
        path = page_path(self.request.headers.get("Referer"), self.base_url)
        if path is not None:
            try:
                first = await page_environment(self.contents_manager, path)
            except Exception as e:  # a hint never fails the listing
                self.log.debug("no environment hint from %s: %s", path, e)
        try:
            if isinstance(manager, DsmlEnvironmentManager):
                environments = await manager.list_environments(first=first)
            else:
                environments = await ensure_async(manager.list_environments())
            output_formats = await ensure_async(manager.output_formats_mapping())
        except EnvironmentRetrievalError as e:
            raise HTTPError(500, str(e)) from None
        response = []
        for environment in environments:
            env = environment.dict()
            env["output_formats"] = [
                {"name": f, "label": output_formats[f]} for f in env["output_formats"]
            ]
            response.append(env)
        self.finish(json.dumps(response))


def _with_service_status(handler: type) -> type:
    return type(
        handler.__name__,
        (ServiceStatusMixin, handler),
        {"__module__": __name__, "__doc__": f"jupyter-scheduler's {handler.__name__}."},
    )


class DsmlSchedulerApp(SchedulerApp):
    """jupyter-scheduler's server extension on the scheduler service.

    Same routes (`/scheduler/...`, which the UI calls), handlers that pass the service's error
    statuses on, and the classes of this module by default.
    """

    handlers = [
        (
            route[0],
            _with_service_status(
                DsmlRuntimeEnvironmentsHandler
                if route[1] is RuntimeEnvironmentsHandler
                else route[1]
            ),
            *route[2:],
        )
        for route in SchedulerApp.handlers
    ]

    scheduler_class = Type(
        default_value=DsmlScheduler,
        klass=BaseScheduler,
        config=True,
        help="The scheduler class: forwards to the hub's scheduler service.",
    )
    environment_manager_class = Type(
        default_value=DsmlEnvironmentManager,
        klass=EnvironmentManager,
        config=True,
        help="The runtime environments: the platform's curated environments.",
    )
    job_files_manager_class = Type(
        default_value=DsmlJobFilesManager,
        klass=JobFilesManager,
        config=True,
        help="Downloads a run's outputs from the scheduler service.",
    )

    @default("db_url")
    def _db_url_default(self) -> str:
        # jupyter-scheduler creates its tables at start; nothing is stored in them here
        return "sqlite://"

    async def stop_extension(self) -> None:
        """Close the connections to the service."""
        for key in ("scheduler", "environments_manager"):
            owner = self.settings.get(key)
            client = getattr(owner, "client", None)
            if isinstance(client, ServiceClient):
                await client.close()
