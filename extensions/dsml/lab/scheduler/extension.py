"""jupyter-scheduler's server extension with handlers that pass the service's status through.

jupyter-scheduler's own handlers answer every error with 500; ours keep the service's 4xx and
its message, so the browser shows what was wrong.
"""

from __future__ import annotations

from typing import Any

from jupyter_scheduler.environments import EnvironmentManager
from jupyter_scheduler.exceptions import InputUriError
from jupyter_scheduler.extension import SchedulerApp
from jupyter_scheduler.job_files_manager import JobFilesManager
from jupyter_scheduler.pydantic_v1 import ValidationError
from jupyter_scheduler.scheduler import BaseScheduler
from tornado.web import HTTPError
from traitlets import Type, default

from dsml.lab.scheduler.backend import (
    DsmlEnvironmentManager,
    DsmlJobFilesManager,
    DsmlScheduler,
    ServiceClient,
)
from dsml.lab.scheduler.mapping import (
    ServiceError,
)


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
        (route[0], _with_service_status(route[1]), *route[2:]) for route in SchedulerApp.handlers
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
